"""Coming from superintendent 0.6: copy its database in, or run its widget on widgetal's queue.

superintendent keeps everything in one table (``superintendentdata``: the lower-cased name of
its ``SuperintendentData`` SQLModel class). Each row holds ``input`` and ``output`` as JSON
written by its ``serialization.data_dumps`` (``json.dumps`` with an encoder that turns numpy
arrays, pandas Series and DataFrames into ``{"__type__": ..., "__content__": ...}`` objects),
an integer ``priority`` served lowest first, and ``completed_at`` / ``worker_id`` for labels.

This module reads that table; it does not need superintendent installed. The adapter
:class:`SuperintendentQueue` is for notebooks that already use superintendent's widget.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from .db import normalise_url
from .errors import DatabaseUnavailable, InvalidInput, ItemAlreadyLabelled, NotInitialised
from .queue import Item, Queue

#: The table superintendent 0.6 creates (SQLModel names it after the class, lower-cased). The
#: underscored spelling is accepted too, for databases made by hand from its docs.
SOURCE_TABLES = ("superintendentdata", "superintendent_data")
#: External ids of imported items: re-importing finds them and adds nothing twice.
EXTERNAL_ID_PREFIX = "superintendent:"
#: Labeller recorded for labels whose superintendent row has no worker_id.
DEFAULT_LABELLER = "superintendent"


@dataclass(frozen=True)
class SuperintendentImport:
    """What :func:`import_superintendent` did."""

    rows: int
    added: int
    already_present: int
    labels_added: int
    labels_already_present: int
    prioritised: int
    label_set: list[str]


def import_superintendent(source_url: str, queue: Queue) -> SuperintendentImport:
    """Copy a superintendent 0.6 database's texts, labels and priorities into ``queue``.

    Each row becomes an item with external id ``superintendent:<id>``, so importing again
    adds nothing twice; a row labelled in superintendent since the last import gets its label
    then. A label's labeller is the row's ``worker_id`` (or ``"superintendent"``). Priorities
    are converted (superintendent serves the lowest first, widgetal the highest) and applied
    only to items this import added, so a second import never overrides the orchestrator.

    If the project has no label set yet, the distinct labels found (sorted) become the label
    set; with no labels in the source, texts are imported and the label set stays unset.

    Raises
    ------
    InvalidInput
        No superintendent table, an input that is not a text, an empty text, or labels outside
        the project's label set. Nothing is changed.
    DatabaseUnavailable
        The source database cannot be reached.
    """
    rows, dialect = _read_source(source_url)
    texts = [_text_of(r) for r in rows]
    labels = [_label_of(r) for r in rows]
    empty = [r["id"] for r, t in zip(rows, texts, strict=True) if not t.strip()]
    if empty:
        raise InvalidInput(
            f"superintendent rows {empty[:10]} have empty texts; nothing was imported."
        )
    _adopt_label_set(queue, labels)
    external = [f"{EXTERNAL_ID_PREFIX}{r['id']}" for r in rows]
    before = queue.find_external_ids(external)
    frame = _frame(rows, external, texts, labels)
    labels_added, labels_present = _add_rows(queue, frame)
    after = queue.find_external_ids(external)

    new_ids, scores = _scores([after[e][0] for e in external], rows, dialect, set(before), external)
    prioritised = queue.reorder(new_ids, scores) if new_ids else 0
    return SuperintendentImport(
        rows=len(rows),
        added=len(rows) - len(before),
        already_present=len(before),
        labels_added=labels_added,
        labels_already_present=labels_present,
        prioritised=prioritised,
        label_set=queue.labels,
    )


def _adopt_label_set(queue: Queue, labels: list[str | None]) -> None:
    """The project's label set, from the source's labels if it has none; refuses labels
    outside it before anything is imported."""
    found = sorted({lab for lab in labels if lab is not None})
    label_set = queue.labels
    if not label_set and found:
        if len(found) < 2:
            raise NotInitialised(
                f"The superintendent database has only the label {found}; a label set needs "
                "two. Run `widgetal init --labels ...` first, then import again."
            )
        label_set = found  # stored at the end, once everything has been checked
    outside = sorted(set(found) - set(label_set))
    if outside:
        raise InvalidInput(
            f"The superintendent database has labels {outside} outside this project's label "
            f"set {label_set}. Import into a project with those labels (widgetal init --labels "
            f"{','.join(found)}); nothing was imported."
        )
    if label_set != queue.labels:
        queue.adopt_labels(label_set)


def _frame(rows: list[dict], external: list[str], texts: list[str],
           labels: list[str | None]) -> pd.DataFrame:
    """One row per superintendent row: its text, label, labeller and timestamps."""
    return pd.DataFrame(
        {
            "external_id": external,
            "text": texts,
            "label": labels,
            "labeller": [r["worker_id"] or DEFAULT_LABELLER for r in rows],
            "superintendent_id": [r["id"] for r in rows],
            "inserted_at": [_iso(r["inserted_at"]) for r in rows],
            "completed_at": [
                _iso(r["completed_at"]) if lab else None
                for r, lab in zip(rows, labels, strict=True)
            ],
        }
    )


def _add_rows(queue: Queue, frame: pd.DataFrame) -> tuple[int, int]:
    """Queue every row; returns the labels added and those widgetal already held."""
    meta_cols = ["external_id", "text", "superintendent_id", "inserted_at", "completed_at"]
    # Labelled rows arrive with their label, one transaction per labeller; the rest unlabelled.
    # A label superintendent gave after an earlier import reaches its (already stored) item the
    # same way; where widgetal already holds another label for it, widgetal's is kept.
    labels_added = labels_present = 0
    labelled = frame[frame["label"].notna()]
    for labeller, group in labelled.groupby("labeller", sort=True):
        result = queue.add(group[[*meta_cols, "label"]], text="text", id="external_id",
                           label="label", labeller=str(labeller), on_conflict="keep")
        labels_added += result.labels_added + result.labels_added_existing
        labels_present += result.labels_already_present + len(result.label_conflicts)
    queue.add(frame.loc[frame["label"].isna(), meta_cols], text="text", id="external_id")
    return labels_added, labels_present


class LabelNotRecorded(UserWarning):
    """A label :class:`SuperintendentQueue` could not record; the labeller is told why."""


#: Shown above the text again after a refused label (ipyannotations renders it as Markdown).
REFUSED_NOTICE = "⚠️ **Not saved:** {reason}\n\n"


class SuperintendentQueue:
    """Run superintendent's own ``Superintendent(queue=...)`` widget on a widgetal queue.

    The widget keeps its interface; the hand-out becomes widgetal's (exactly once, leased,
    highest priority first), so several labellers can share one queue. Implements what
    superintendent 0.6's widget and its ``DatabaseQueue`` tests use: ``enqueue``, ``pop``
    (and iteration), ``submit``, ``undo``, ``reorder`` / ``set_priorities``, ``list_all`` /
    ``list_completed`` / ``list_uncompleted``, ``progress``, ``len`` and the counts.

    Parameters
    ----------
    queue : Queue
        The widgetal queue. Its label set decides which labels are accepted.
    labeller : str
        Recorded with every label; superintendent's ``worker_id`` is the same thing. Name the
        labeller here: superintendent 0.6's widget given ``worker_id="name"`` stores the name
        but never starts its labelling loop (``worker_id=True``, which asks, does work).

    Notes
    -----
    Where this adapter behaves as superintendent's ``DatabaseQueue`` does:

    - ``pop`` raises ``IndexError`` when nothing is left; ``submit`` raises ``ValueError`` for
      an item this adapter did not hand out (or handed out and then took back with ``undo``);
      ``enqueue`` of an empty batch does nothing; ``progress`` is ``nan`` for an empty queue.
    - ``list_all``, ``list_completed`` and ``list_uncompleted`` return items in id order
      (insertion order), so ``y`` lines up with the features superintendent's ``retrain()``
      builds; ``list_uncompleted`` includes items leased to other labellers, as
      superintendent lists popped items.
    - Undo after the end (``pop`` found nothing) takes back the latest label, as
      superintendent's ``undo`` does. Its widget's ``retrain()`` and ``add_features()`` call
      ``undo`` once to put back the item on screen, so on a widget showing "Finished",
      ``add_features()`` hands the latest labelled item out again and ``retrain()`` without
      an acquisition function takes back the latest label, then raises ``StopIteration``
      (with one, it raises sklearn's ``ValueError`` on the empty pool first). Both happen
      with superintendent's own queue too: make a new widget instead.
    - The adapter is always truthy, even over a finished or empty queue: superintendent's
      widget does ``queue or DatabaseQueue(...)`` and would otherwise drop it.

    Where it deliberately differs, and why:

    - **Labels outside the label set are refused, never stored, and the widget survives.**
      ipyannotations' ``ClassLabeller`` offers a free-text box by default. A label outside
      ``queue.labels`` (or a list of labels, or ``None``) is not stored; ``submit`` warns with
      :class:`LabelNotRecorded` instead of raising (an exception would end superintendent's
      labelling loop), keeps the item leased to the labeller, and the next ``pop`` hands the
      same item back with :data:`REFUSED_NOTICE` above its text, so the labeller sees why.
      Give ``ClassLabeller(options=queue.labels, allow_freetext=False)`` to avoid it.
    - **A label someone else gave first wins.** ``submit`` then warns with
      :class:`LabelNotRecorded` and moves on; superintendent overwrites the earlier label.
    - **A skip passes the item on at once.** Asking for the next item while one is shown
      and not labelled (superintendent's skip) gives it back to the queue for other
      labellers straight away and never shows it to this labeller again. superintendent
      hands a skipped item to anyone, its skipper included, ``timeout`` seconds (10 minutes)
      later. A skip cannot be undone: undo after a skip takes back the label before it
      (superintendent shows the skipped item again). A lone labeller thus finishes with
      their skipped items unlabelled; they stay in ``list_uncompleted()`` and keep
      ``progress`` below 1. ``pop``'s ``timeout`` is
      ignored: the queue's lease (``Queue(lease_seconds=...)``) decides when an abandoned
      item returns.
    - **A reorder applies from the next new item.** After ``retrain()`` the item on screen
      stays (it is leased to this labeller, and a reorder never touches leases); the new
      order applies from the item after it. superintendent shows the new top item at once.
    - **The same text is one item.** ``enqueue`` identifies a text by its content, so
      running a ``Superintendent(features=...)`` cell again, or every labeller's notebook
      enqueueing the same texts, adds nothing twice; superintendent adds a row per call.
    - **Texts only.** ``enqueue`` takes strings (a list, array or Series), or a DataFrame
      with a ``text`` column; other inputs, empty texts and texts holding a
      NUL character raise ``InvalidInput`` and add nothing. ``labels`` must be as long as
      the features (superintendent silently drops the rest); ``priorities`` are not taken
      (use ``reorder`` after enqueueing). ``drop_table`` is not offered: the database is
      shared, drop it with the database's own tools.

    Examples
    --------
    >>> from superintendent import Superintendent  # doctest: +SKIP
    >>> from ipyannotations.text import ClassLabeller  # doctest: +SKIP
    >>> Superintendent(  # doctest: +SKIP
    ...     queue=SuperintendentQueue(q, "ana"),
    ...     labelling_widget=ClassLabeller(options=q.labels, allow_freetext=False),
    ... )
    """

    def __init__(self, queue: Queue, labeller: str):
        self.queue = queue
        self.labeller = labeller
        self._handed: set[int] = set()  # handed out and not taken back: may be labelled
        self._popped: list[int] = []  # the stack undo pops: handed out, not skipped
        self._submitted: set[int] = set()  # labelled through this adapter, not undone
        self._shown: int | None = None  # handed out, neither submitted nor undone yet
        self._notice: str | None = None  # why the last label was refused, shown on next pop

    # superintendent's widget reads these two attributes
    @property
    def url(self) -> str:
        return self.queue.url

    @property
    def worker_id(self) -> str:
        return self.labeller

    @worker_id.setter
    def worker_id(self, value: str) -> None:
        self.labeller = value

    def __bool__(self) -> bool:
        return True  # never falsy, so `queue or DatabaseQueue(...)` keeps this adapter

    # -- hand-out -------------------------------------------------------------------------------

    def pop(self, timeout: int | None = None) -> tuple[int, str]:
        """The next ``(item_id, text)`` for this labeller.

        Asking for another item while one is shown and not labelled means superintendent's
        skip (its widget sends no label): the shown item is skipped for this labeller. After
        a refused label the same item comes back, with the reason above its text.
        ``timeout`` is ignored: the queue's lease decides when an abandoned item returns.

        Raises
        ------
        IndexError
            When nothing is left for this labeller (as superintendent's queue does).
        """
        notice, self._notice = self._notice, None
        if self._shown is not None and notice is None:
            self.queue.skip(self._shown, self.labeller)
            if self._shown in self._popped:  # gone to others: undo goes to the label before
                self._popped.remove(self._shown)
            self._shown = None
        item = self.queue.pop(self.labeller)
        if item is None:
            raise IndexError("Nothing left to label in this queue.")
        if not self._popped or self._popped[-1] != item.item_id:  # not the same one again
            self._popped.append(item.item_id)
        self._handed.add(item.item_id)
        self._shown = item.item_id
        return item.item_id, (notice or "") + item.text

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return self

    def __next__(self) -> tuple[int, str]:
        try:
            return self.pop()
        except IndexError:
            raise StopIteration from None

    def submit(self, id_: int, label: Any) -> None:
        """Record ``label`` for an item this adapter handed out.

        A label outside the label set is not stored: a :class:`LabelNotRecorded` warning,
        and the item comes back with the reason on the next ``pop``. If someone else
        labelled the item first, their label stays: a warning, and the next ``pop`` moves on.

        Raises
        ------
        ValueError
            If this adapter did not hand out the item (as superintendent's queue does).
        """
        item_id = int(id_)
        if item_id not in self._handed:
            raise ValueError(
                f"Item {item_id} was not popped by this queue (or was taken back with undo); "
                "you cannot label it."
            )
        reason = self._refusal(label)
        if reason is not None:
            self._notice = REFUSED_NOTICE.format(reason=reason)
            warnings.warn(reason, LabelNotRecorded, stacklevel=2)
            return
        try:
            self.queue.submit(item_id, _as_label(label), self.labeller)
        except ItemAlreadyLabelled as exc:
            warnings.warn(str(exc), LabelNotRecorded, stacklevel=2)
        else:
            self._submitted.add(item_id)
        if self._shown == item_id:
            self._shown = None

    def _refusal(self, label: Any) -> str | None:
        """Why ``label`` cannot be stored, or None if it can."""
        labels = self.queue.labels
        choose = (
            f"Choose one of {', '.join(labels)}." if labels
            else "This project has no label set yet: run `widgetal init --labels a,b`."
        )
        if label is None or isinstance(label, (list, tuple, set, dict, np.ndarray)):
            return f"widgetal takes exactly one label per text, not {label!r}. {choose}"
        if _as_label(label) not in labels:
            return f"{_as_label(label)!r} is not one of this project's labels. {choose}"
        return None

    def undo(self) -> None:
        """Take back the latest item handed out: unlabel it if it was labelled.

        superintendent's widget calls this twice on its undo key (once for the item on screen,
        once for the previous one). The item on screen stays leased to this labeller; the
        labelled one is handed back by widgetal's undo, which also releases the other.
        After the end (``pop`` found nothing) it takes back the latest label, as superintendent's
        queue does; see the class notes for what that means for ``retrain()``.
        """
        if not self._popped:
            return
        item_id = self._popped.pop()
        self._handed.discard(item_id)
        self._shown = None  # shown again next, not skipped
        self._notice = None
        if item_id in self._submitted:
            self._submitted.discard(item_id)
            self.queue.undo(self.labeller, skips=False)  # superintendent undoes labels only

    # -- adding and reordering ------------------------------------------------------------------

    def enqueue(self, features: Any, labels: Any = None, priorities: Any = None) -> None:
        """Add texts (a list, array or Series of strings, or a DataFrame with a ``text``
        column), optionally with labels (``None`` for unlabelled). An empty batch does nothing;
        a text already in the queue is not added again.

        Raises
        ------
        InvalidInput
            Inputs that are not texts, empty texts, texts with a NUL character,
            labels outside the label set, or labels not one per text. Nothing is added.
        """
        if priorities is not None:
            raise ValueError(
                "widgetal's queue takes priorities through reorder(); enqueue without them."
            )
        if isinstance(features, pd.DataFrame):
            if "text" not in features.columns:
                raise InvalidInput("Give a DataFrame with a 'text' column, or a list of texts.")
            texts = features["text"].tolist()
        else:
            texts = list(features)
        if not texts:
            return
        self._check_texts(texts)
        frame = pd.DataFrame({"text": [str(t) for t in texts]}, dtype=object)
        if labels is not None:
            labels = list(labels)
            if len(labels) != len(texts):
                raise InvalidInput(
                    f"{len(labels)} labels for {len(texts)} texts: give one label (or None) "
                    "per text. Nothing was added."
                )
            frame["label"] = [None if _missing(lab) else _as_label(lab) for lab in labels]
            self.queue.add(frame, label="label", labeller=self.labeller)
        else:
            self.queue.add(frame)

    def _check_texts(self, texts: list[Any]) -> None:
        bad = [i for i, t in enumerate(texts, 1) if not isinstance(t, str)]
        if bad:
            raise InvalidInput(
                f"Inputs {bad[:10]} are {type(texts[bad[0] - 1]).__name__}, not texts; widgetal "
                "labels texts. Nothing was added."
            )
        # NUL characters are refused by Queue.add itself, on both databases.

    def reorder(self, priorities: dict[int, float]) -> None:
        """superintendent's ``{id: priority}``, lowest first, as widgetal scores (highest first)."""
        self.set_priorities(list(priorities.keys()), list(priorities.values()))

    def set_priorities(self, ids: Sequence[int], priorities: Sequence[float]) -> None:
        """Set priorities given superintendent's way round (lowest is served first)."""
        scores = -np.asarray(priorities, dtype=np.float64)
        self.queue.reorder([int(i) for i in ids], scores)

    # -- reading ------------------------------------------------------------------------------

    def list_completed(self) -> tuple[list[int], list[str], list[str]]:
        """Ids, texts and labels of everything labelled (by anyone), in id order."""
        frame = self.queue.labelled().sort_values("item_id", kind="stable")
        return frame["item_id"].tolist(), frame["text"].tolist(), frame["label"].tolist()

    def list_uncompleted(self) -> tuple[list[int], list[str]]:
        """Ids and texts of everything not yet labelled, in id order."""
        frame = self.queue.undone().sort_values("item_id", kind="stable")
        return frame["item_id"].tolist(), frame["text"].tolist()

    def list_all(self) -> tuple[list[int], list[str], list[str | None]]:
        """Everything in id order, with its label or None: ``y`` lines up with ``x``."""
        open_ids, open_x = self.list_uncompleted()  # read first: an item labelled meanwhile
        done_ids, done_x, done_y = self.list_completed()  # then appears here, and wins
        rows = {i: (x, None) for i, x in zip(open_ids, open_x)}
        rows.update({i: (x, y) for i, x, y in zip(done_ids, done_x, done_y)})
        ids = sorted(rows)
        return ids, [rows[i][0] for i in ids], [rows[i][1] for i in ids]

    def _labelled_count(self) -> int:
        return self.queue.progress().done

    def _unlabelled_count(self) -> int:
        return self.queue.progress().left

    def _total_count(self) -> int:
        return self.queue.progress().total

    @property
    def progress(self) -> float:
        """Fraction labelled, for superintendent's progress bar; ``nan`` for an empty queue."""
        counts = self.queue.progress()
        return counts.done / counts.total if counts.total else float("nan")

    def __len__(self) -> int:
        return self.queue.progress().left

    def items(self, item_ids: Sequence[int]) -> list[Item]:
        return self.queue.items(item_ids)


# -- reading the source database ---------------------------------------------------------------
# The source is superintendent's schema, not widgetal's, so its one query lives here (widgetal's
# own statements are all in sql.py). The table is reflected, never declared, so the query
# follows whatever column types the source's SQLModel version created.


def _read_source(source_url: str) -> tuple[list[dict[str, Any]], str]:
    try:
        engine = sa.create_engine(normalise_url(source_url))
    except (sa.exc.ArgumentError, ModuleNotFoundError) as exc:
        raise DatabaseUnavailable(f"'{source_url}' is not a usable database URL: {exc}") from exc
    where = engine.url.render_as_string(hide_password=True)
    path = engine.url.database
    if engine.dialect.name == "sqlite" and path not in (None, "", ":memory:"):
        if not Path(path).exists():  # SQLite would create an empty file and find no table
            raise InvalidInput(f"No such superintendent database file: {path}")
    try:
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            name = next((n for n in SOURCE_TABLES if n in names), None)
            if name is None:
                raise InvalidInput(
                    f"{where} has no superintendent table ({' or '.join(SOURCE_TABLES)}); is "
                    "this the database superintendent wrote to?"
                )
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            # read_superintendent_rows: every row, oldest first, with the columns we copy.
            read_superintendent_rows = sa.select(
                *(table.c[c] for c in _SOURCE_COLUMNS)
            ).order_by(table.c.id)
            rows = [dict(r._mapping) for r in conn.execute(read_superintendent_rows)]
    except KeyError as exc:
        raise InvalidInput(f"{where}'s superintendent table lacks the column {exc}.") from exc
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"Cannot read the superintendent database at {where}: "
            f"{str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}"
        ) from exc
    finally:
        engine.dispose()
    return rows, engine.dialect.name


_SOURCE_COLUMNS = ("id", "input", "output", "inserted_at", "priority", "completed_at", "worker_id")


def _decode(raw: str | None) -> Any:
    """JSON as superintendent's data_dumps wrote it; its typed objects become plain values."""
    if raw is None:
        return None
    return json.loads(raw, object_hook=_plain)


def _plain(obj: dict) -> Any:
    kind = obj.get("__type__")
    content = obj.get("__content__")
    if kind == "__pd.Series__":  # {"index": [...], "data": [...], ...}
        return dict(zip(content["index"], content["data"], strict=False))
    if kind == "__pd.DataFrame__" and len(content.get("data", [])) == 1:  # one row, split form
        return dict(zip(content["columns"], content["data"][0], strict=False))
    if kind == "__np.ndarray__":
        return content
    return obj


def _text_of(row: dict[str, Any]) -> str:
    value = _decode(row["input"])
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return value["text"]
    if isinstance(value, str):
        return value
    raise InvalidInput(
        f"superintendent row {row['id']} holds {type(value).__name__} data, not a text; widgetal "
        "labels texts (a string, or a record with a 'text' field). Nothing was imported."
    )


def _label_of(row: dict[str, Any]) -> str | None:
    # superintendent counts a row as labelled when both output and completed_at are set.
    if row["output"] is None or row["completed_at"] is None:
        return None
    value = _decode(row["output"])
    if value is None:
        return None
    if isinstance(value, (list, dict)):
        raise InvalidInput(
            f"superintendent row {row['id']} has the label {value!r}; widgetal takes one label "
            "per text. Nothing was imported."
        )
    return _as_label(value)


def _as_label(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value.item() if hasattr(value, "item") else value)


def _missing(value: Any) -> bool:
    """None or NaN: no label given for this row."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def _scores(
    item_ids: list[int],
    rows: list[dict[str, Any]],
    dialect: str,
    present: set[str],
    external: list[str],
) -> tuple[list[int], list[float]]:
    """Scores for new, prioritised items: superintendent's priority negated.

    Rows without a priority go where superintendent's ORDER BY priority put them: first on
    SQLite (NULLs sort low), last on PostgreSQL. If no row has one there is nothing to copy.
    """
    triples = zip(item_ids, rows, external, strict=True)
    new = [(i, r["priority"]) for i, r, e in triples if e not in present]
    known = [-float(p) for _, p in new if p is not None]
    if not known:
        return [], []
    unset = max(known) + 1 if dialect == "sqlite" else min(known) - 1
    return [i for i, _ in new], [unset if p is None else -float(p) for _, p in new]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


__all__ = [
    "import_superintendent",
    "LabelNotRecorded",
    "SuperintendentImport",
    "SuperintendentQueue",
]
