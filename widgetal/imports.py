"""Storing an import: new texts, labels for texts already queued, and every conflict reported.

The file was validated by :mod:`widgetal.io`; here rows meet the database. Everything happens in
the caller's one write transaction, so an import that is refused changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import sqlalchemy as sa

from . import sql
from .errors import ImportConflict
from .io import PreparedRows

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
    dialect: str,
    rows: PreparedRows,
    *,
    labeller: str,
    now: datetime,
    on_conflict: OnConflict = "error",
    keep_stored_text: bool = False,
) -> AddResult:
    """Store validated rows; raise :class:`ImportConflict` (the caller rolls back) on conflicts.

    A label for an item already queued is recorded like one for a new item; an equal label
    counts as already present; a different one is a conflict, refused unless ``on_conflict``
    says to keep the stored label or replace it (the old one stays in the history, undone).
    """
    if on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be one of {ON_CONFLICT}, not {on_conflict!r}.")
    added = present = n_labels = 0
    existing_labelled: list[tuple[int, int]] = []  # (row, item_id) of stored items with a label
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
                existing_labelled.append((i, row.id))
        present += len(ext) - len(new)
        if not new:
            continue
        ids = _insert_items(conn, dialect, rows, new, now)
        labelled = [(i, ids[rows.external_ids[i]]) for i in new if rows.labels[i] is not None]
        _insert_labels(conn, dialect, rows, labelled, labeller, now)
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
    to_add, same, clashes = _compare_labels(conn, rows, existing_labelled)
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
    replace = on_conflict == "replace" and bool(clashes)
    if replace:
        for chunk in _chunks([label_id for _, _, label_id, _ in clashes]):
            conn.execute(sql.mark_labels_undone, {"label_ids": chunk, "now": now})
    written = to_add + ([(i, item) for i, item, _, _ in clashes] if replace else [])
    _insert_labels(conn, dialect, rows, written, labeller, now)
    for chunk in _chunks([item for _, item in to_add]):
        conn.execute(sql.complete_imported_items, {"item_ids": chunk, "now": now})
    return AddResult(
        added, present, n_labels, rows.merged_duplicates,
        labels_added_existing=len(to_add),
        labels_already_present=same,
        label_conflicts=conflicts,
        conflicts_replaced=replace,
        text_conflicts=text_conflicts,
    )


def _compare_labels(
    conn: sa.Connection, rows: PreparedRows, existing: list[tuple[int, int]]
) -> tuple[list[tuple[int, int]], int, list[tuple[int, int, int, LabelConflict]]]:
    """Rows bringing a label to a stored item: to add ``(row, item)``, how many equal the stored
    label, and the clashes ``(row, item, stored label's id, conflict)``."""
    stored: dict[int, tuple[int, str]] = {}
    for chunk in _chunks(sorted({item for _, item in existing})):
        for r in conn.execute(sql.read_active_labels, {"item_ids": chunk}):
            stored.setdefault(r.item_id, (r.id, r.label))
    to_add: list[tuple[int, int]] = []
    clashes: list[tuple[int, int, int, LabelConflict]] = []
    same = 0
    for i, item in existing:
        old = stored.get(item)
        if old is None:
            to_add.append((i, item))
        elif old[1] == rows.labels[i]:
            same += 1
        else:
            conflict = LabelConflict(rows.external_ids[i], old[1], rows.labels[i])
            clashes.append((i, item, old[0], conflict))
    return to_add, same, clashes


def _insert_items(
    conn: sa.Connection, dialect: str, rows: PreparedRows, new: list[int], now: datetime
) -> dict[str, int]:
    """Insert rows ``new`` of ``rows``; returns {external_id: item_id}."""
    ext = [rows.external_ids[i] for i in new]
    done = [now if rows.labels[i] is not None else None for i in new]
    if dialect == "postgresql":
        params = {
            "external_ids": ext,
            "texts": [rows.texts[i] for i in new],
            "metas": [None if rows.metas[i] is None else json.dumps(rows.metas[i]) for i in new],
            "done_ats": done,
            "now": now,
        }
        result = conn.execute(sql.insert_items_postgresql, params)
    else:
        params = [
            {"external_id": e, "text": rows.texts[i], "meta": rows.metas[i], "created_at": now,
             "done_at": d}
            for e, i, d in zip(ext, new, done)
        ]
        result = conn.execute(sql.insert_items, params)
    return {e: i for i, e in result.all()}


def _insert_labels(
    conn: sa.Connection,
    dialect: str,
    rows: PreparedRows,
    labelled: list[tuple[int, int]],
    labeller: str,
    now: datetime,
) -> None:
    """Append the labels of rows ``(row, item_id)``, with the file's labeller, time and seconds."""
    if not labelled:
        return
    records = [
        {
            "item_id": item,
            "label": rows.labels[i],
            "labeller": (rows.labellers[i] if rows.labellers else None) or labeller,
            "created_at": (rows.label_times[i] if rows.label_times else None) or now,
            "seconds": rows.seconds[i] if rows.seconds else None,
        }
        for i, item in labelled
    ]
    if dialect == "postgresql":
        for chunk in _chunks(records):
            conn.execute(sql.insert_labels_postgresql, {
                "item_ids": [r["item_id"] for r in chunk],
                "labels": [r["label"] for r in chunk],
                "labellers": [r["labeller"] for r in chunk],
                "created_ats": [r["created_at"] for r in chunk],
                "seconds": [r["seconds"] for r in chunk],
            })
        return
    conn.execute(sql.insert_label, records)


def _chunks(values: list, size: int = _CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]
