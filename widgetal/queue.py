"""The labelling queue: exactly-once hand-out with leases, append-only labels, set-based reorder."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import consensus, labelsets, project, review, sql
from .db import Database
from .errors import (
    InvalidInput,
    ItemAlreadyLabelled,
    LabelNotInLabelSet,
    LabelSetMismatch,
    NothingToUndo,
    NotInitialised,
    UnknownItem,
)
from .schema import RUN_STATUSES, create_or_check, utcnow

if TYPE_CHECKING:  # pandas (and numpy, imported where used) only where tables come in or go
    import numpy as np
    import pandas as pd  # out: a labeller's kernel needs neither (numpy alone costs it 11 MB)

    from .imports import AddResult, OnConflict

DEFAULT_URL = "sqlite:///widgetal.db"
_CHUNK = 10_000  # bind parameters per statement stay well under SQLite's 32,766
_OVERLAP_TTL_S = 2.0  # how stale the hand-out's idea of K may be after `init --overlap`
#: What a labeller submits: one label, or in a multi-label project a list or set of labels.
Answer = str | Sequence[str] | set[str] | frozenset[str]


@dataclass(frozen=True)
class Item:
    """One text handed to a labeller."""

    item_id: int
    external_id: str
    text: str
    meta: dict[str, Any] | None = None
    priority: float = 0.0
    ranked_by: int | None = None
    #: The label the model of run ``ranked_by`` finds likeliest, and its probability (None
    #: until a model has ranked the item).
    guess_label: str | None = None
    guess_proba: float | None = None
    #: Handed out as an audit item (drawn at random, see :mod:`widgetal.audit`): its labels
    #: test the models and never train them.
    audit: bool = False


@dataclass(frozen=True)
class Progress:
    """Counts for a progress bar: cheap enough to read on every click."""

    total: int
    done: int
    per_label: dict[str, int] = field(default_factory=dict)
    per_labeller: dict[str, int] = field(default_factory=dict)
    mine: int | None = None
    awaiting_review: int = 0

    @property
    def left(self) -> int:
        return self.total - self.done

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


class Queue:
    """A labelling queue in one SQL database (SQLite file or PostgreSQL).

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///labels.db`` or ``postgresql://user:pw@host/db``.
    labels : list of str, optional
        The label set, in order. Stored on first use; must match the stored one afterwards.
    instructions : str, optional
        Shown to labellers; stored in the database.
    lease_seconds : float
        How long a popped item stays reserved for its labeller.

    Examples
    --------
    >>> q = Queue("sqlite://", labels=["negative", "positive"])
    >>> q.add(["great film", "dull film"]).added
    2
    >>> item = q.pop("ana")
    >>> q.submit(item.item_id, "positive", "ana")
    >>> q.progress().done
    1
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        labels: Sequence[str] | None = None,
        instructions: str | None = None,
        lease_seconds: float = 600,
        multi_label: bool | None = None,
    ):
        self.db = Database(url)
        self.url = self.db.url
        self.engine = self.db.engine
        self.lease_seconds = lease_seconds
        self._overlap_value, self._overlap_read_at = 1, float("-inf")
        self._audit_value, self._audit_read_at = 0.0, float("-inf")
        self._audit_draw = random.Random()  # whether a pop serves the audit sample
        with self.db.write() as conn:
            create_or_check(conn)
            if labels is None:
                stored = conn.execute(sql.read_setting, {"key": "labels"}).scalar_one_or_none()
            else:
                stored = _store_label_set(conn, labels)
            if instructions is not None:
                _write_setting(conn, "instructions", instructions)
            if multi_label is not None:
                project.set_multi_label(conn, multi_label)
            self._multi_label = bool(project.read_setting(conn, "multi_label", False))
        self._labels: list[str] = list(stored or [])

    def __repr__(self) -> str:
        return f"Queue({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- settings ---------------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        """The label set, in order (empty until ``widgetal init``)."""
        return list(self._labels)

    @property
    def multi_label(self) -> bool:
        """Whether an answer is a set of labels (stored as :mod:`widgetal.labelsets` strings)."""
        return self._multi_label

    @property
    def instructions(self) -> str:
        with self.db.read() as conn:
            return conn.execute(sql.read_setting, {"key": "instructions"}).scalar() or ""

    @property
    def dialect(self) -> str:
        return self.db.dialect

    def adopt_labels(self, labels: Sequence[str]) -> list[str]:
        """Store ``labels`` as the label set if the project has none yet; return the set in force.

        For importers that discover the labels in their source. An existing, different label
        set is never replaced.

        Raises
        ------
        LabelSetMismatch
            If another label set is already stored.
        """
        with self.db.write() as conn:
            self._labels = _store_label_set(conn, labels)
        return list(self._labels)

    # -- adding texts -----------------------------------------------------------------------

    def add(
        self,
        data: pd.DataFrame | Sequence[str] | str,
        text: str = "text",
        id: str | None = None,  # noqa: A002 - mirrors the CLI's --id-col
        label: str | None = None,
        labeller: str = "import",
        encoding: str = "utf-8",
        progress: bool = False,
        *,
        labeller_col: str | None = None,
        on_conflict: OnConflict = "error",
        keep_stored_text: bool = False,
        label_sep: str | None = None,
    ) -> AddResult:
        """Add texts from a DataFrame, a list of strings, or a CSV / JSONL / Parquet path.

        Validation happens first; on any error or conflict nothing is added. Items whose
        external id is already stored are not added twice, but a label the row brings is
        recorded if the item has none (see :func:`widgetal.imports.store` for conflicts).
        Labels are recorded as given by ``labeller``, or by the file's ``labeller_col``
        (a ``labeller`` column is used when present). A file `widgetal export` wrote is
        recognised by its ``external_id`` column and read back without options.

        In a multi-label project a label cell is a set: a JSON list (``["a","b"]``; ``[]`` is
        "none of these"), a list value, or labels joined by ``label_sep``; an empty cell is a
        text not labelled yet (see :mod:`widgetal.labelset_io`).
        """
        import pandas as pd

        from . import imports, io  # io reads files; imports stores rows; the queue hands out

        if isinstance(data, str) or hasattr(data, "__fspath__"):
            frame = io.read_table(data, encoding=encoding)
        elif isinstance(data, pd.DataFrame):
            frame = data
        else:
            frame = pd.DataFrame({text: list(data)}, dtype=object)
        if label_sep is not None and not self._multi_label:
            raise InvalidInput(
                "--label-sep is for multi-label projects, where a label cell holds several "
                "labels; this project takes one label per text. Nothing was imported."
            )
        columns = io.detect_columns(frame, text=text, id=id, label=label, labeller=labeller_col,
                                    label_sep=label_sep)
        if columns.label is not None and not self._labels:
            raise NotInitialised(_NOT_INITIALISED)
        rows = io.prepare_rows(frame, labels=self._labels, columns=columns,
                               multi_label=self._multi_label)
        if not len(rows):
            return imports.AddResult(0, 0, 0)
        labeller = _check_labeller(labeller)
        with self.db.write() as conn:
            result = imports.store(
                conn, self.db, rows, labeller=labeller, now=utcnow(),
                on_conflict=on_conflict, keep_stored_text=keep_stored_text,
                overlap=self._overlap(conn, fresh=True),
                on_disagreement=project.read_setting(conn, "on_disagreement", "review"),
            )
        self.db.refresh_statistics(result.added)
        return result

    # -- the labeller's verbs ---------------------------------------------------------------

    def pop(self, labeller: str) -> Item | None:
        """Lease the best free item to ``labeller``; None when nothing is left for them.

        A labeller who already holds a live lease gets that same item back, so a reloaded
        page does not strand it. With an audit share set, that share of pops (each by its own
        draw) serves the audit reserve in key order instead, marking the item ``audit`` (see
        :mod:`widgetal.audit`).
        """
        labeller = _check_labeller(labeller)
        with self.db.write(durable=False) as conn:
            return self._lease_next(conn, labeller, utcnow())

    def submit(self, item_id: int, label: Answer, labeller: str,
               seconds: float | None = None) -> None:
        """Record ``label`` for an item. The first label wins.

        In a multi-label project ``label`` is a list (or set) of labels, possibly empty
        ("none of these"); one submission is one event holding the whole set.

        Raises
        ------
        LabelNotInLabelSet
            If ``label`` is not one of the project's labels.
        ItemAlreadyLabelled
            If the item was labelled first by someone (or something) else.
        UnknownItem
            If there is no such item.
        """
        labeller, label = self._check_submission(label, labeller)
        with self.db.write() as conn:
            self._record_label(conn, item_id, label, labeller, seconds, utcnow())

    def submit_and_pop(
        self, item_id: int, label: Answer, labeller: str, seconds: float | None = None
    ) -> Item | None:
        """``submit`` then ``pop`` with one commit per click instead of two.

        The label and the lease are all or nothing: if the label is refused (same errors as
        ``submit``) or the database is unreachable, no label is recorded and no item is leased.
        (On PostgreSQL the usual click is one statement committed on its own; only when every
        free item is held by others does the wait for one follow the stored label.)
        """
        labeller, label = self._check_submission(label, labeller)
        now = utcnow()
        # A project last seen with overlap goes straight to the locked path, which reads K
        # afresh: no empty write transaction first on every click.
        if self._overlap_value == 1:
            with self.db.write_each() as conn:
                if self._overlap(conn) == 1:  # the usual click: one statement on PostgreSQL
                    params = self._lease_params(conn, labeller, now)
                    audit = self._draws_audit(conn)
                    row = {"item_id": item_id, "label": label, "labeller": labeller,
                           "now": now, "seconds": seconds}
                    recorded, leased = self.db.label_and_lease(conn, row, params, audit)
                    if recorded:
                        return self._lease_rest(conn, params, audit, leased)
        # Overlap, an item a reviewer sent back, or a refusal the locked path explains (the
        # usual click above wrote nothing then).
        with self.db.write() as conn:
            self._record_label_locked(conn, item_id, label, labeller, seconds, now,
                                      self._overlap(conn, fresh=True))
            return self._lease_next(conn, labeller, now)

    def _check_submission(self, label: Answer, labeller: str) -> tuple[str, str]:
        """The verified labeller and the answer as stored (a label, or a label-set string)."""
        labeller = _check_labeller(labeller)
        if not self._labels:
            raise NotInitialised(_NOT_INITIALISED)
        if self._multi_label:
            return labeller, labelsets.encode(label, self._labels)
        if not isinstance(label, str):
            raise LabelNotInLabelSet(
                f"This project takes one label per text, not {label!r}; nothing was saved. "
                "(A project takes sets of labels when initialised with --multi-label.)"
            )
        if label not in self._labels:
            raise LabelNotInLabelSet(
                f"'{label}' is not in this project's label set {self._labels}; nothing was saved."
            )
        return labeller, label

    def _record_label(
        self,
        conn: sa.Connection,
        item_id: int,
        label: str,
        labeller: str,
        seconds: float | None,
        now: datetime,
    ) -> None:
        overlap = self._overlap(conn)
        if overlap == 1:
            # One statement decides who wins: the fast path every single-labeller click takes.
            row = {"item_id": item_id, "label": label, "labeller": labeller, "now": now,
                   "seconds": seconds}
            if self.db.record_first_label(conn, row):
                return
        self._record_label_locked(conn, item_id, label, labeller, seconds, now,
                                  self._overlap(conn, fresh=True))

    def _record_label_locked(
        self, conn: sa.Connection, item_id: int, label: str, labeller: str,
        seconds: float | None, now: datetime, overlap: int,
    ) -> None:
        """Overlap K > 1, or an item a reviewer sent back: lock the item row, then count."""
        item = conn.execute(sql.lock_item, {"item_id": item_id}).first()
        if item is None:
            raise UnknownItem(f"There is no item {item_id}; nothing was saved.")
        if item.done_at is not None:
            raise ItemAlreadyLabelled(
                f"Item {item_id} was already labelled by someone else, so your label "
                f"'{label}' was not recorded. Take the next text."
                if overlap == 1 else
                f"Item {item_id} already has all the labels it needs, so your label "
                f"'{label}' was not recorded. Take the next text."
            )
        active = conn.execute(sql.item_labels, {"item_id": item_id}).all()
        if any(r.labeller == labeller for r in active):
            raise ItemAlreadyLabelled(
                f"You already labelled item {item_id}, so '{label}' was not recorded; use "
                "Undo to change your label."
            )
        params = {"item_id": item_id, "labeller": labeller}
        lease = conn.execute(sql.read_lease, params).first()
        served = lease if lease is not None else (item.served_priority, item.served_ranked_by)
        conn.execute(sql.insert_label, _label_row(item_id, label, labeller, seconds, now,
                                                  served[0], served[1], item.audit))
        conn.execute(sql.delete_lease, params)
        if len(active) + 1 >= overlap + item.extra_labels:
            given = [r.label for r in active] + [label]
            policy = project.read_setting(conn, "on_disagreement", "review")
            conn.execute(sql.complete_item, {
                "item_id": item_id, "now": now,
                "needs_review": consensus.needs_review(given, policy),
            })
            conn.execute(sql.delete_item_leases, {"item_id": item_id})

    def _overlap(self, conn: sa.Connection, fresh: bool = False) -> int:
        """K, re-read at most every few seconds on the hot path (a PostgreSQL round trip per
        click otherwise). A stale K=1 cannot complete an item wrongly: ``mark_item_done``
        checks the stored K itself, and the locked path reads it ``fresh``."""
        now = time.monotonic()
        if fresh or now - self._overlap_read_at > _OVERLAP_TTL_S:
            self._overlap_value = int(project.read_setting(conn, "overlap", 1))
            self._overlap_read_at = now
        return self._overlap_value

    def _audit_share(self, conn: sa.Connection, fresh: bool = False) -> float:
        """The audit share, re-read at most every few seconds on the hot path (as K is)."""
        now = time.monotonic()
        if fresh or now - self._audit_read_at > _OVERLAP_TTL_S:
            self._audit_value = float(project.read_setting(conn, "audit_share", 0.0))
            self._audit_read_at = now
        return self._audit_value

    def _draws_audit(self, conn: sa.Connection) -> bool:
        """Whether this pop serves the audit sample: with probability ``audit_share``, each pop
        on its own (no counter shared between processes to contend for)."""
        share = self._audit_share(conn)
        return share > 0 and self._audit_draw.random() < share

    def _lease_params(self, conn: sa.Connection, labeller: str, now: datetime) -> dict:
        return {"labeller": labeller, "now": now, "expires_at": self._expiry(now),
                "audit_share": self._audit_share(conn)}

    def _lease_next(self, conn: sa.Connection, labeller: str, now: datetime) -> Item | None:
        params = self._lease_params(conn, labeller, now)
        overlap = self._overlap(conn)
        if overlap > 1:
            return self._lease_slot(conn, params, overlap)
        audit = self._draws_audit(conn)
        return self._lease_rest(conn, params, audit,
                                self.db.lease_own_or_next(conn, params, audit))

    def _lease_rest(self, conn: sa.Connection, params: dict, audit: bool,
                    row: sa.Row | None) -> Item | None:
        """Overlap 1, after the labeller's own lease, else the drawn kind's skipping hand-out
        (``row``, None if neither gave an item): the drawn kind waiting for locked rows; when
        none of that kind is left, the other (an exhausted reserve, or an exhausted rest once
        only reserve items remain)."""
        drawn = (sql.lease_next_item, sql.lease_next_item_waiting)
        other = (sql.lease_next_audit_item, sql.lease_next_audit_item_waiting)
        if audit:
            drawn, other = other, drawn
        if row is None:
            row = self.db.wait_for_held(conn, drawn[1], params)
        if row is None:
            row = self.db.hand_out(conn, *other, params)
        return None if row is None else _item(row)

    def _lease_slot(self, conn: sa.Connection, params: dict, overlap: int) -> Item | None:
        """Overlap: one of the K slots of the best item this labeller has not seen (or, drawn
        for the audit sample, of the reserve item of smallest key)."""
        own = conn.execute(sql.find_own_lease_overlap, params).scalar()
        if own is None:
            slot = {**params, "overlap": overlap}
            kinds = [(sql.next_open_slot, sql.next_open_slot_waiting, False),
                     (sql.next_open_audit_slot, sql.next_open_audit_slot_waiting, True)]
            if self._draws_audit(conn):
                kinds.reverse()
            for skipping, waiting, audit in kinds:
                row = self.db.hand_out(conn, skipping, waiting, slot)
                own = None if row is None else row[0]
                if own is not None:
                    if audit:
                        conn.execute(sql.mark_item_audit, {"item_id": own})
                    break
            if own is None:
                return None
        conn.execute(sql.delete_lease, {**params, "item_id": own})
        conn.execute(sql.insert_lease, {**params, "item_id": own})
        return _item(conn.execute(sql.read_items, {"item_ids": [own]}).one())

    def skip(self, item_id: int, labeller: str) -> None:
        """Give the item back to the queue; this labeller is not shown it again (unless they
        undo the skip)."""
        labeller = _check_labeller(labeller)
        params = {"item_id": item_id, "labeller": labeller}
        with self.db.write() as conn:
            if conn.execute(sql.item_exists, params).first() is None:
                raise UnknownItem(f"There is no item {item_id}.")
            if conn.execute(sql.find_skip, params).first() is None:
                conn.execute(sql.insert_skip, {**params, "created_at": utcnow()})
            conn.execute(sql.release_lease, params)
            conn.execute(sql.delete_lease, params)

    def undo(self, labeller: str, skips: bool = True) -> Item:
        """Take back this labeller's latest action, a label or a skip, and hand its item back.

        With ``skips=False`` only labels are taken back (superintendent's semantics, for its
        adapter: there a skip is not an action one undoes).

        The label (or skip) stays in the history, marked undone, and the item is leased to the
        labeller. Any other item the labeller held is released to the queue. A label under a
        reviewer's decision cannot be undone: the reviewer undoes the decision first. A skipped
        text that others have meanwhile labelled in full cannot come back: the skip is taken
        back all the same, and ``NothingToUndo`` says so.
        """
        labeller = _check_labeller(labeller)
        now = utcnow()
        gone = None
        with self.db.write() as conn:
            latest = conn.execute(sql.find_latest_label, {"labeller": labeller}).first()
            skipped = (conn.execute(sql.find_latest_skip, {"labeller": labeller}).first()
                       if skips else None)
            if skipped is not None and (latest is None or skipped.created_at >= latest.created_at):
                item = self._undo_skip(conn, labeller, skipped, now)
                if item is not None:
                    return item
                gone = skipped.item_id
            elif latest is None:
                raise NothingToUndo(
                    "Nothing to undo: you have no label or skip left to take back."
                )
            else:
                return self._undo_label(conn, labeller, latest, now)
        raise NothingToUndo(
            f"Your skip of item {gone} was taken back, but that text has meanwhile gone to "
            "others (labelled, or on another labeller's screen), so it cannot come back. "
            "Press Undo again to take back your action before it."
        )

    def _undo_skip(self, conn: sa.Connection, labeller: str, skipped: Any,
                   now: datetime) -> Item | None:
        """Mark the skip undone and lease its item to the labeller; None if it is done or
        another labeller holds it."""
        item_id = skipped.item_id
        conn.execute(sql.lock_item, {"item_id": item_id})
        conn.execute(sql.mark_skip_undone, {"skip_id": skipped.id, "now": now})
        if conn.execute(sql.item_exists, {"item_id": item_id}).one().done_at is not None:
            return None
        params = {"item_id": item_id, "labeller": labeller, "expires_at": self._expiry(now),
                  "now": now}
        self._release_other_lease(conn, labeller, item_id, now)
        if self._overlap(conn, fresh=True) == 1:
            if conn.execute(sql.lease_item, {**params, "now": now}).rowcount == 0:
                return None  # another labeller holds it now
        else:
            conn.execute(sql.delete_lease, params)
            conn.execute(sql.insert_lease, params)
        return _item(conn.execute(sql.read_items, {"item_ids": [item_id]}).one())

    def _release_other_lease(self, conn: sa.Connection, labeller: str, item_id: int,
                             now: datetime) -> None:
        held = conn.execute(sql.find_own_lease, {"labeller": labeller, "now": now}).scalar()
        if held is not None and held != item_id:
            conn.execute(sql.release_lease, {"item_id": held, "labeller": labeller})

    def _undo_label(self, conn: sa.Connection, labeller: str, latest: Any, now: datetime) -> Item:
        """Mark the label undone, reopen its item and lease it to the labeller."""
        item_id = latest.item_id
        conn.execute(sql.lock_item, {"item_id": item_id})
        decided = conn.execute(sql.find_active_decision, {"item_id": item_id}).first()
        if decided is not None:
            raise NothingToUndo(
                f"Item {item_id} was already decided by reviewer {decided.reviewer}, so "
                "your label stays; ask them to undo the decision first."
            )
        overlap = self._overlap(conn, fresh=True)
        self._release_other_lease(conn, labeller, item_id, now)
        conn.execute(sql.mark_label_undone, {"label_id": latest.id, "now": now})
        conn.execute(sql.reopen_for_labels, {"item_id": item_id})
        params = {"item_id": item_id, "labeller": labeller, "expires_at": self._expiry(now)}
        if overlap == 1:
            row = conn.execute(sql.reopen_item, params).one()
            return _item(row)
        conn.execute(sql.delete_lease, params)
        conn.execute(sql.insert_lease, params)
        return _item(conn.execute(sql.read_items, {"item_ids": [item_id]}).one())

    # -- team settings and review ----------------------------------------------------------

    @property
    def overlap(self) -> int:
        """K: how many distinct labellers label each item (1: one label per item)."""
        with self.db.read() as conn:
            return self._overlap(conn, fresh=True)

    @property
    def on_disagreement(self) -> str:
        """``review`` (disagreeing items wait for a reviewer) or ``majority``."""
        with self.db.read() as conn:
            return project.read_setting(conn, "on_disagreement", "review")

    def setting(self, key: str, default: Any = None) -> Any:
        """A stored project setting (``default`` when it was never set)."""
        with self.db.read() as conn:
            return project.read_setting(conn, key, default)

    @property
    def audit_share(self) -> float:
        """The share of hand-outs drawn at random for the audit sample (0: off)."""
        with self.db.read() as conn:
            return self._audit_share(conn, fresh=True)

    def configure(self, overlap: int | None = None, on_disagreement: str | None = None,
                  audit_share: float | None = None) -> None:
        """Change the overlap K, the disagreement rule or the audit share; items already
        complete stay so, and items already served as audit items stay audit items."""
        if overlap is not None:
            project.check_overlap(overlap)
        if on_disagreement is not None:
            project.check_on_disagreement(on_disagreement)
        if audit_share is not None:
            audit_share = project.check_audit_share(audit_share)
        with self.db.write() as conn:
            if overlap is not None:
                project.write_setting(conn, "overlap", overlap)
            if on_disagreement is not None:
                project.write_setting(conn, "on_disagreement", on_disagreement)
            if audit_share is not None:
                project.write_setting(conn, "audit_share", audit_share)
        # this process sees the change at once
        self._overlap_read_at = self._audit_read_at = float("-inf")

    def add_person(self, name: str, reviewer: bool = False) -> project.Person:
        """Register a labeller (or a reviewer, who may also label)."""
        with self.db.write() as conn:
            return project.add_person(conn, name, "reviewer" if reviewer else "labeller",
                                      utcnow())

    def set_person_active(self, name: str, active: bool) -> project.Person:
        with self.db.write() as conn:
            return project.set_active(conn, name, active)

    def people(self) -> list[project.Person]:
        with self.db.read() as conn:
            return project.people(conn)

    def pop_review(self, reviewer: str) -> review.ReviewItem | None:
        """Lease the best item awaiting review to ``reviewer``; None when none is waiting."""
        reviewer = _check_labeller(reviewer)
        with self.db.write(durable=False) as conn:
            project.check_reviewer(conn, reviewer)
            lease = timedelta(seconds=self.lease_seconds)
            return review.lease_next(conn, reviewer, utcnow(), lease, self.db)

    def review(self, item_id: int, label: Answer | None, reviewer: str,
               seconds: float | None = None) -> None:
        """Decide an item's final label, or (``label=None``) send it back for one more label.

        Raises
        ------
        NotAReviewer
            If ``reviewer`` is not a registered, active reviewer.
        NotAwaitingReview
            If the item's labels do not disagree (or someone decided it first).
        LabelNotInLabelSet
            If ``label`` is not one of the project's labels.
        """
        reviewer = _check_labeller(reviewer)
        if label is not None:
            label = self._check_submission(label, reviewer)[1]
        with self.db.write() as conn:
            project.check_reviewer(conn, reviewer)
            review.decide(conn, item_id, reviewer, label, seconds, utcnow())

    def undo_review(self, reviewer: str) -> review.ReviewItem:
        """Take back ``reviewer``'s latest decision; the item returns to review, held by them."""
        reviewer = _check_labeller(reviewer)
        now = utcnow()
        with self.db.write() as conn:
            project.check_reviewer(conn, reviewer)
            lease = timedelta(seconds=self.lease_seconds)
            return review.undo(conn, reviewer, now, lease, self._overlap(conn, fresh=True))

    def review_item(self, item_id: int) -> review.ReviewItem:
        """An item with every active label and who gave it."""
        with self.db.read() as conn:
            return review.details(conn, item_id)

    # -- the orchestrator's verbs ------------------------------------------------------------

    def reorder(
        self,
        item_ids: Sequence[int],
        scores: Sequence[float],
        ranked_by: int | None = None,
        guesses: tuple[Sequence[str], Sequence[float]] | None = None,
    ) -> int:
        """Set priorities (higher = served sooner) in one set-based transaction.

        Only items not done change; leases stay as they are. Returns how many items changed.

        Parameters
        ----------
        guesses : (labels, probabilities), optional
            Per item, the label the ranking model finds likeliest and its probability,
            published beside the priority for the labelling app to show. Without them the
            items' guesses are cleared: a guess always belongs to the run in ``ranked_by``.
        """
        import numpy as np

        ids = np.asarray(item_ids, dtype=np.int64)
        vals = np.asarray(scores, dtype=np.float64)
        if ids.shape != vals.shape or ids.ndim != 1:
            raise ValueError(
                f"item_ids and scores must be 1-D and the same length, got {ids.shape} and "
                f"{vals.shape}."
            )
        if not np.all(np.isfinite(vals)):
            raise ValueError("scores must be finite numbers (no NaN or infinity).")
        if not (ids[1:] > ids[:-1]).all():
            # Written in key order: an orchestrator's scores come in pool order, and SQLite
            # took twice as long to take a million of them in that order (5.4 s against 2.6).
            order = np.argsort(ids, kind="stable")
            ids, vals = ids[order], vals[order]
            if guesses is not None and all(hasattr(g, "__len__") and len(g) == len(order)
                                           for g in guesses):
                guesses = tuple(np.asarray(g)[order] for g in guesses)
        if (ids[1:] == ids[:-1]).any():  # sorted: (numpy's unique hashes, several times slower)
            raise ValueError("item_ids must be distinct: each item gets one score.")
        labels, probas = self._check_guesses(guesses, len(ids))
        return self.db.write_priorities(ids, vals, ranked_by, labels, probas)

    def _check_guesses(
        self, guesses: tuple[Sequence[str], Sequence[float]] | None, n: int
    ) -> tuple[list[str] | None, np.ndarray | None]:
        if guesses is None:
            return None, None
        import numpy as np

        labels, probas = guesses
        labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
        if not all(type(x) is str for x in labels):
            labels = [str(x) for x in labels]
        values = np.asarray(probas, dtype=np.float64)
        if len(labels) != n or values.shape != (n,):
            raise ValueError(
                f"guesses must give one label and one probability per item ({n}), got "
                f"{len(labels)} labels and probabilities of shape {values.shape}."
            )
        if not np.all((values >= 0) & (values <= 1)):  # NaN fails too
            raise ValueError("guess probabilities must lie between 0 and 1.")
        if self._multi_label:  # each guess is a label set: its labels must be known
            unknown = {x for value in set(labels) for x in labelsets.decode(value)}
            unknown = unknown.difference(self._labels)
        else:
            unknown = set(labels).difference(self._labels)
        if unknown:
            raise LabelNotInLabelSet(
                f"guesses hold labels {sorted(unknown)} outside the label set {self._labels}."
            )
        return labels, values

    # -- reading ----------------------------------------------------------------------------

    def progress(self, labeller: str | None = None) -> Progress:
        """Totals, per label (in label-set order), per labeller, and ``labeller``'s own count.

        ``per_label`` counts the labels that count (not undone): with overlap, every
        labeller's. In a multi-label project it counts, per label, the answers containing it,
        and under the key ``"[]"`` (last) the answers "none of these"; a set of two labels
        counts once for each.
        """
        # K = 1 reads one statement (and K, now and then): no snapshot across them is needed.
        with self.db.read(snapshot=self._overlap_value > 1) as conn:
            total, per_label, per_labeller = 0, {}, {}
            for row in self.db.hot(conn, sql.read_progress):
                if row.labeller is None:
                    total = row.n
                    continue
                per_label[row.label] = per_label.get(row.label, 0) + row.n
                per_labeller[row.labeller] = per_labeller.get(row.labeller, 0) + row.n
            # K = 1: an item is done exactly while one label counts, so the label counts give
            # "done" without counting items (nor can labels disagree); with overlap, labels
            # outnumber items and these two counts are worth their cost.
            waiting = done = 0
            if self._overlap(conn) == 1:
                done = sum(per_label.values())
            else:
                done = conn.execute(sql.count_done_items).scalar_one()
                waiting = conn.execute(sql.count_awaiting_review).scalar_one()
        if self._multi_label:  # one count per distinct set: a few rows to split, not labels
            ordered = labelsets.count_labels(per_label, self._labels)
        else:
            ordered = {name: per_label.pop(name, 0) for name in self._labels}
            ordered.update(per_label)
        mine = per_labeller.get(labeller, 0) if labeller is not None else None
        return Progress(total, done, ordered, per_labeller, mine, waiting)

    def count_label_events(self) -> int:
        """All labels ever given, undone ones included: grows with every submit."""
        with self.db.read() as conn:
            return conn.execute(sql.count_label_events).scalar_one()

    def labelled(self, audit_column: bool = False) -> pd.DataFrame:
        """The final label of every item that has one: what training and export use.

        One row per item: ``label`` is the reviewer's decision, else the label every labeller
        gave, else the strict majority where the project allows it; items still awaiting
        review are left out. ``labeller`` names who gave the final label (the reviewer, or the
        agreeing labellers, comma-joined); ``source`` says which rule decided. With
        ``audit_column`` a last column ``audit`` says which items were served as audit items:
        the orchestrator tests on those and trains on the others.
        """
        columns = ["item_id", "external_id", "text", "label", "labeller", "created_at",
                   "seconds", "source"] + (["audit"] if audit_column else [])
        import pandas as pd

        with self.db.read() as conn:
            rows = conn.execute(sql.read_done_labels).all()
            decisions = conn.execute(sql.read_decisions).all()
            policy = project.read_setting(conn, "on_disagreement", "review")
        given = pd.DataFrame(rows, columns=[*columns[:7], "audit"])
        given["audit"] = given["audit"].astype(bool)
        given["created_at"] = pd.to_datetime(given["created_at"], utc=True)
        if given["item_id"].is_unique and not decisions:  # one label per item: it is final
            return given.assign(source="labels")[columns]  # (K = 1: every cycle comes here)
        decided = pd.DataFrame(decisions, columns=["item_id", "label", "reviewer", "created_at"])
        final = consensus.final_labels(given, decided, policy)
        per_item = given.groupby("item_id").agg(
            external_id=("external_id", "first"), text=("text", "first"),
            created_at=("created_at", "max"), seconds=("seconds", "sum"),
            audit=("audit", "first"),
        )
        frame = final.rename(columns={"by": "labeller"}).join(per_item, on="item_id")
        if not decided.empty:  # a decision's time is when the final label was given
            when = pd.to_datetime(decided.set_index("item_id")["created_at"], utc=True)
            reviewed = frame["source"] == "review"
            frame.loc[reviewed, "created_at"] = frame.loc[reviewed, "item_id"].map(when)
        return frame[columns].reset_index(drop=True)

    def label_table(self) -> pd.DataFrame:
        """Every active label (``item_id``, ``labeller``, ``label``): agreement's input."""
        import pandas as pd

        with self.db.read() as conn:
            rows = conn.execute(sql.read_active_label_table).all()
        return pd.DataFrame(rows, columns=["item_id", "labeller", "label"])

    def agreement(self, min_shared: int = 10):
        """Agreement between labellers and with the final labels (see :mod:`widgetal.agreement`)."""
        from .agreement import agreement

        final = self.labelled().set_index("item_id")["label"]
        return agreement(self.label_table(), final, self._labels, min_shared=min_shared,
                         multi_label=self._multi_label)

    def events(self) -> pd.DataFrame:
        """Every event, oldest first: labels, undos, skips, reviews and review undos."""
        with self.db.read() as conn:
            label_rows = conn.execute(sql.read_label_events).all()
            skip_rows = conn.execute(sql.read_skip_events).all()
            review_rows = conn.execute(sql.read_review_events).all()
        return _events(label_rows, skip_rows, review_rows)

    def awaiting_review(self) -> int:
        """How many complete items wait for a reviewer (their labels disagree)."""
        with self.db.read() as conn:
            return conn.execute(sql.count_awaiting_review).scalar_one()

    def undone(self) -> pd.DataFrame:
        """Every item not done (``item_id``, ``text``), in current queue order."""
        import pandas as pd

        with self.db.read() as conn:
            rows = conn.execute(sql.read_undone_items).all()
        return pd.DataFrame(rows, columns=["item_id", "text"])

    def find_external_ids(self, external_ids: Sequence[str]) -> dict[str, tuple[int, bool]]:
        """``{external_id: (item_id, done)}`` for those of ``external_ids`` that are stored."""
        found: dict[str, tuple[int, bool]] = {}
        with self.db.read() as conn:
            for chunk in _chunks([str(e) for e in external_ids]):
                params = {"external_ids": chunk}
                for row in conn.execute(sql.find_items_by_external_id, params):
                    found[row.external_id] = (row.id, row.done_at is not None)
        return found

    def items(self, item_ids: Sequence[int]) -> list[Item]:
        """Items by id, in the order asked for (unknown ids are left out)."""
        found: dict[int, Item] = {}
        with self.db.read() as conn:
            for chunk in _chunks(list(item_ids)):
                for row in conn.execute(sql.read_items, {"item_ids": chunk}):
                    found[row.id] = _item(row)
        return [found[i] for i in item_ids if i in found]

    # -- runs -------------------------------------------------------------------------------

    def start_run(self, **fields: Any) -> int:
        """Open a run record, with status ``running``; returns its id."""
        with self.db.write() as conn:
            params = {"started_at": utcnow(), "status": "running", **fields}
            return conn.execute(sql.insert_run, params).scalar_one()

    def finish_run(self, run_id: int, status: str, **fields: Any) -> None:
        """Close a run record with its outcome (``trained``, ``cold-start``, ``skipped`` or
        ``failed``; see :data:`widgetal.schema.RUN_STATUSES`) and what the cycle did
        (``reason=`` why it trained no model)."""
        finished = RUN_STATUSES[1:]  # every status but "running"
        if status not in finished:
            raise ValueError(f"A run finishes as one of {list(finished)}, not {status!r}.")
        with self.db.write() as conn:
            params = {"run_id": run_id, "finished_at": utcnow(), "status": status, **fields}
            conn.execute(sql.finish_run, params)

    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Run records, newest first."""
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(sql.read_runs, {"limit": limit})]

    # -- feature cache ----------------------------------------------------------------------

    def cached_features(self, featurizer: str, item_ids: Sequence[int]) -> dict[int, bytes]:
        """Stored vectors (as bytes) for those of ``item_ids`` that have one."""
        out: dict[int, bytes] = {}
        with self.db.read() as conn:
            for chunk in _chunks([int(i) for i in item_ids]):
                params = {"featurizer": featurizer, "item_ids": chunk}
                out.update(conn.execute(sql.read_features, params).all())
        return out

    def store_features(self, featurizer: str, vectors: dict[int, bytes]) -> None:
        """Cache vectors; the caller stores only ids it did not find."""
        rows = [
            {"featurizer": featurizer, "item_id": int(i), "vector": v} for i, v in vectors.items()
        ]
        with self.db.write() as conn:
            for start in range(0, len(rows), _CHUNK):
                conn.execute(sql.insert_features, rows[start : start + _CHUNK])

    # -- plumbing ---------------------------------------------------------------------------

    def _expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease_seconds)


_NOT_INITIALISED = (
    "This database has no label set yet. Run `widgetal init --labels a,b` "
    "or open it with Queue(url, labels=[...])."
)


def _store_label_set(conn: sa.Connection, labels: Sequence[str]) -> list[str]:
    """Store the label set if none is stored yet; an existing, different one is never replaced."""
    labels = _check_label_set(labels)
    stored = conn.execute(sql.read_setting, {"key": "labels"}).scalar_one_or_none()
    if stored is None:
        _write_setting(conn, "labels", labels)
    elif list(stored) != labels:
        raise LabelSetMismatch(
            f"This database's label set is {stored}, not {labels}; it was left as it is. Open "
            "it without labels= to use the stored set, or use another database."
        )
    return labels


def _write_setting(conn: sa.Connection, key: str, value: Any) -> None:
    conn.execute(sql.delete_setting, {"key": key})
    conn.execute(sql.insert_setting, {"key": key, "value": value})


def _check_label_set(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise ValueError("labels must be a list of strings, e.g. ['negative', 'positive'].")
    cleaned = [str(x).strip() for x in labels]
    if len(cleaned) < 2:
        raise ValueError(f"A label set needs at least two labels, got {cleaned}.")
    if any(not x for x in cleaned):
        raise ValueError("Labels cannot be empty strings.")
    if len(set(cleaned)) != len(cleaned):
        raise ValueError(f"Labels must be distinct, got {cleaned}.")
    return cleaned


def _check_labeller(labeller: str) -> str:
    if not isinstance(labeller, str) or not labeller.strip():
        raise ValueError("Every label needs a labeller: pass a non-empty name.")
    return labeller.strip()


def _events(label_rows: list, skip_rows: list, review_rows: list) -> pd.DataFrame:
    """One table of events; an undo is its own row, at the time it happened."""
    import pandas as pd

    cols = ["time", "event", "item_id", "external_id", "label", "labeller", "seconds",
            "ranked_by", "priority"]
    out = []
    for r in label_rows:
        out.append((r.created_at, "label", r.item_id, r.external_id, r.label, r.labeller,
                    r.seconds, r.ranked_by, r.priority))
        if r.undone_at is not None:
            out.append((r.undone_at, "undo", r.item_id, r.external_id, r.label, r.labeller,
                        None, None, None))
    for r in skip_rows:
        out.append((r.created_at, "skip", r.item_id, r.external_id, None, r.labeller,
                    None, None, None))
        if r.undone_at is not None:
            out.append((r.undone_at, "undo-skip", r.item_id, r.external_id, None, r.labeller,
                        None, None, None))
    for r in review_rows:
        kind = "review" if r.label is not None else "send-back"
        out.append((r.created_at, kind, r.item_id, r.external_id, r.label, r.reviewer,
                    r.seconds, None, None))
        if r.undone_at is not None:
            out.append((r.undone_at, f"undo-{kind}", r.item_id, r.external_id, r.label,
                        r.reviewer, None, None, None))
    frame = pd.DataFrame(out, columns=cols)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def _label_row(item_id: int, label: str, labeller: str, seconds: float | None, now: datetime,
               priority: float | None, ranked_by: int | None,
               audit: bool = False) -> dict[str, Any]:
    return {"item_id": item_id, "label": label, "labeller": labeller, "created_at": now,
            "seconds": seconds, "priority": priority, "ranked_by": ranked_by,
            "audit": bool(audit)}


def _item(row: Any) -> Item:
    proba = row.guess_proba
    return Item(row.id, row.external_id, row.text, row.meta, float(row.priority), row.ranked_by,
                row.guess_label, None if proba is None else float(proba), bool(row.audit))


def _chunks(values: list, size: int = _CHUNK) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def __getattr__(name: str):
    # AddResult lives with the import code (which needs pandas); loaded when asked for.
    if name == "AddResult":
        from .imports import AddResult

        return AddResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Queue", "Item", "Progress", "AddResult", "DEFAULT_URL"]
