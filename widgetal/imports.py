"""Storing an import: new texts, labels for texts already queued, and every conflict reported.

The file was validated by :mod:`widgetal.io`; here rows meet the database. Everything happens in
the caller's one write transaction, so an import that is refused changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from . import sql
from .errors import ImportConflict
from .io import PreparedRows

if TYPE_CHECKING:
    from .db import Database

_CHUNK = 10_000  # bind parameters per statement stay well under SQLite's 32,766
_SHOW = 10  # conflicts listed in a message; the count says how many more

OnConflict = Literal["error", "keep", "replace"]
ON_CONFLICT = ("error", "keep", "replace")


@dataclass(frozen=True)
class LabelConflict:
    """A row whose label differs from the one already stored for its item."""

    external_id: str
    old: str
    new: str


@dataclass(frozen=True)
class AddResult:
    """What an import did, accounting for every row of the file.

    ``added + already_present + merged_duplicates`` is the number of rows read. Of the rows
    already present, ``labels_added_existing`` brought a label to an item that had none,
    ``labels_already_present`` repeated the stored label, and ``label_conflicts`` differed
    from it (kept or replaced, as asked).
    """

    added: int
    already_present: int
    labels_added: int
    merged_duplicates: int = 0
    labels_added_existing: int = 0
    labels_already_present: int = 0
    label_conflicts: list[LabelConflict] = field(default_factory=list)
    conflicts_replaced: bool = False
    text_conflicts: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.added + self.already_present + self.merged_duplicates

    def summary(self) -> str:
        """One line a person can check against the file."""
        parts = [
            f"Read {self.rows} rows: added {self.added} texts ({self.labels_added} with labels)",
            f"{self.already_present} were already there",
        ]
        if self.labels_added_existing:
            parts.append(f"{self.labels_added_existing} labels added to texts already there")
        if self.labels_already_present:
            parts.append(f"{self.labels_already_present} labels already present")
        if self.label_conflicts:
            how = "replaced (old ones kept as undone)" if self.conflicts_replaced else "kept"
            parts.append(f"{len(self.label_conflicts)} conflicting labels: stored ones {how}")
        if self.text_conflicts:
            parts.append(f"{len(self.text_conflicts)} ids with another text: stored texts kept")
        if self.merged_duplicates:
            parts.append(f"{self.merged_duplicates} repeated texts merged")
        return "; ".join(parts) + "."


def store(
    conn: sa.Connection,
    db: Database,
    rows: PreparedRows,
    *,
    labeller: str,
    now: datetime,
    on_conflict: OnConflict = "error",
    keep_stored_text: bool = False,
    overlap: int = 1,
    on_disagreement: str = "review",
) -> AddResult:
    """Store validated rows; raise :class:`ImportConflict` (the caller rolls back) on conflicts.

    A label for an item already queued is recorded like one for a new item; an equal label
    counts as already present; a different one is a conflict, refused unless ``on_conflict``
    says to keep the stored label or replace it (the old one stays in the history, undone).

    With overlap K > 1 an imported label is one of the K, given by the row's labeller: it is
    added while the item has a free slot; one equal to the item's final label, or to that
    labeller's own, is already present; anything else is a conflict (only a labeller's own
    label can be replaced: a complete item's labels by others are kept).
    """
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, not {on_conflict!r}.")
    added = present = n_labels = 0
    existing_labelled: list[tuple[int, Any]] = []  # (row, stored item) for rows with a label
    text_conflicts: list[str] = []
    for start in range(0, len(rows), _CHUNK):
        ext = rows.external_ids[start : start + _CHUNK]
        found = {r.external_id: r for r in conn.execute(sql.find_items_for_import,
                                                        {"external_ids": ext})}
        new = [i for i, e in enumerate(ext, start) if e not in found]
        for i, e in enumerate(ext, start):
            row = found.get(e)
            if row is None:
                continue
            if row.text != rows.texts[i]:
                text_conflicts.append(e)
            if rows.labels[i] is not None:
                existing_labelled.append((i, row))
        present += len(ext) - len(new)
        if not new:
            continue
        ids = _insert_items(conn, db, rows, new, now, complete=overlap == 1)
        labelled = [(i, ids[rows.external_ids[i]]) for i in new if rows.labels[i] is not None]
        _insert_labels(conn, db, rows, labelled, labeller, now)
        added += len(new)
        n_labels += len(labelled)
    conn.execute(sql.add_to_item_count, {"n": added})

    if text_conflicts and not keep_stored_text:
        shown = ", ".join(repr(e) for e in text_conflicts[:_SHOW])
        more = f" and {len(text_conflicts) - _SHOW} more" if len(text_conflicts) > _SHOW else ""
        raise ImportConflict(
            f"{len(text_conflicts)} ids are already stored with a different text ({shown}{more}). "
            "Nothing was imported. Give those rows new ids, or pass --keep-stored-text to keep "
            "the stored texts and import the rest."
        )
    to_add, same, clashes, stored = _compare_labels(
        conn, rows, existing_labelled, labeller, overlap
    )
    conflicts = [c for _, _, _, c in clashes]
    if conflicts and on_conflict == "error":
        listed = "; ".join(f"{c.external_id}: {c.old!r} → {c.new!r}" for c in conflicts[:_SHOW])
        more = f"; and {len(conflicts) - _SHOW} more" if len(conflicts) > _SHOW else ""
        raise ImportConflict(
            f"{len(conflicts)} rows bring a label that differs from the one stored (id: stored → "
            f"file): {listed}{more}. Nothing was imported. Pass --on-conflict keep to keep the "
            "stored labels, or --on-conflict replace to use the file's (the stored ones stay in "
            "the history, marked undone)."
        )
    replaceable = [c for c in clashes if c[2] is not None]
    replace = on_conflict == "replace" and bool(replaceable)
    if replace:
        for chunk in _chunks([label_id for _, _, label_id, _ in replaceable]):
            conn.execute(sql.mark_labels_undone, {"label_ids": chunk, "now": now})
    written = to_add + ([(i, item) for i, item, _, _ in replaceable] if replace else [])
    _insert_labels(conn, db, rows, written, labeller, now)
    if overlap == 1:
        for chunk in _chunks([item for _, item in to_add]):
            conn.execute(sql.complete_imported_items, {"item_ids": chunk, "now": now})
    else:
        _complete_full_items(conn, rows, written, stored, replaceable if replace else [],
                             overlap, on_disagreement, now)
    return AddResult(
        added, present, n_labels, rows.merged_duplicates,
        labels_added_existing=len(to_add),
        labels_already_present=same,
        label_conflicts=conflicts,
        conflicts_replaced=replace,
        text_conflicts=text_conflicts,
    )


def _compare_labels(
    conn: sa.Connection, rows: PreparedRows, existing: list[tuple[int, Any]], labeller: str,
    overlap: int,
) -> tuple[list[tuple[int, int]], int, list[tuple[int, int, int | None, LabelConflict]], dict]:
    """Rows bringing a label to a stored item: to add ``(row, item)``, how many are already
    present, and the clashes ``(row, item, replaceable stored label's id or None, conflict)``.
    Also returns the stored active labels per item, for completing items afterwards."""
    items = sorted({r.id for _, r in existing})
    stored: dict[int, list[Any]] = {}
    decided: dict[int, str] = {}
    for chunk in _chunks(items):
        for r in conn.execute(sql.read_active_labels, {"item_ids": chunk}):
            stored.setdefault(r.item_id, []).append(r)
        decided.update(conn.execute(sql.read_decisions_for_items, {"item_ids": chunk}).all())
    to_add: list[tuple[int, int]] = []
    clashes: list[tuple[int, int, int | None, LabelConflict]] = []
    same = 0
    for i, item in existing:
        new, who = rows.labels[i], _labeller_of(rows, i, labeller)
        given = stored.get(item.id, [])
        kinds = {r.label for r in given}
        agreed = next(iter(kinds)) if len(kinds) == 1 and item.done_at is not None else None
        final = decided.get(item.id) or agreed
        own = next((r for r in given if r.labeller == who), None) if overlap > 1 else None
        if own is not None:
            if own.label == new:
                same += 1
            else:
                clashes.append((i, item.id, own.id,
                                LabelConflict(rows.external_ids[i], own.label, new)))
        elif final == new:
            same += 1
        elif item.done_at is None and len(given) < overlap + item.extra_labels:
            to_add.append((i, item.id))
        elif overlap == 1 and len(given) == 1:
            clashes.append((i, item.id, given[0].id,
                            LabelConflict(rows.external_ids[i], given[0].label, new)))
        else:  # a complete item whose labels came from others: never overwritten
            old = final if final is not None else "/".join(sorted(kinds)) + " (awaiting review)"
            clashes.append((i, item.id, None, LabelConflict(rows.external_ids[i], old, new)))
    return to_add, same, clashes, stored


def _complete_full_items(conn: sa.Connection, rows: PreparedRows, written: list[tuple[int, int]],
                         stored: dict, replaced: list, overlap: int, on_disagreement: str,
                         now: datetime) -> None:
    """Overlap: close the items an import filled, saying whether their labels disagree."""
    from .consensus import needs_review

    replaced_ids = {label_id for _, _, label_id, _ in replaced}
    for i, item in written:
        kept = [r.label for r in stored.get(item, []) if r.id not in replaced_ids]
        if len(kept) + 1 >= overlap:
            conn.execute(sql.complete_item, {
                "item_id": item, "now": now,
                "needs_review": needs_review([*kept, rows.labels[i]], on_disagreement),
            })
            conn.execute(sql.delete_item_leases, {"item_id": item})


def _labeller_of(rows: PreparedRows, i: int, default: str) -> str:
    return (rows.labellers[i] if rows.labellers else None) or default


def _insert_items(
    conn: sa.Connection, db: Database, rows: PreparedRows, new: list[int], now: datetime,
    complete: bool,
) -> dict[str, int]:
    """Insert rows ``new`` of ``rows``; returns {external_id: item_id}. With ``complete`` (K = 1)
    a row's label finishes its item; with overlap it is the first of K."""
    return db.insert_items(conn, [
        {"external_id": rows.external_ids[i], "text": rows.texts[i], "meta": rows.metas[i],
         "created_at": now, "done_at": now if complete and rows.labels[i] is not None else None}
        for i in new
    ])


def _insert_labels(
    conn: sa.Connection,
    db: Database,
    rows: PreparedRows,
    labelled: list[tuple[int, int]],
    labeller: str,
    now: datetime,
) -> None:
    """Append the labels of rows ``(row, item_id)``, with the file's labeller, time and seconds."""
    if not labelled:
        return
    db.insert_labels(conn, [
        {
            "item_id": item,
            "label": rows.labels[i],
            "labeller": _labeller_of(rows, i, labeller),
            "created_at": (rows.label_times[i] if rows.label_times else None) or now,
            "seconds": rows.seconds[i] if rows.seconds else None,
        }
        for i, item in labelled
    ])


def _chunks(values: list, size: int = _CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]
