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
    found = sorted({lab for lab in labels if lab is not None})
    label_set = queue.labels
    if not label_set and found:
        if len(found) < 2:
            raise NotInitialised(
                f"The superintendent database has only the label {found}; a label set needs "
                "two. Run `widgetal init --labels ...` first, then import again."
            )
        label_set = found  # stored below, once everything has been checked
    outside = sorted(set(found) - set(label_set))
    if outside:
        raise InvalidInput(
            f"The superintendent database has labels {outside} outside this project's label "
            f"set {label_set}. Import into a project with those labels (widgetal init --labels "
            f"{','.join(found)}); nothing was imported."
        )
    if label_set != queue.labels:
        queue.adopt_labels(label_set)

    external = [f"{EXTERNAL_ID_PREFIX}{r['id']}" for r in rows]
    before = queue.find_external_ids(external)
    frame = pd.DataFrame(
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


class SuperintendentQueue:
    """Run superintendent's own ``Superintendent(queue=...)`` widget on a widgetal queue.

    The widget keeps its interface; the hand-out becomes widgetal's (exactly once, leased,
    highest priority first), so several labellers can share one queue. Implements the methods
    superintendent 0.6's widget calls on its ``DatabaseQueue``.

    Parameters
    ----------
    queue : Queue
        The widgetal queue.
    labeller : str
        Recorded with every label; superintendent's ``worker_id`` is the same thing. Name the
        labeller here: superintendent 0.6's widget given ``worker_id="name"`` stores the name
        but never starts its labelling loop (``worker_id=True``, which asks, does work).

    Examples
    --------
    >>> from superintendent import Superintendent  # doctest: +SKIP
    >>> Superintendent(queue=SuperintendentQueue(q, "ana"), labelling_widget=w)  # doctest: +SKIP
    """

    def __init__(self, queue: Queue, labeller: str):
        self.queue = queue
        self.labeller = labeller
        self._popped: list[int] = []  # stack for undo, as superintendent keeps
        self._submitted: set[int] = set()
        self._shown: int | None = None  # handed out, neither submitted nor undone yet

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

    # -- hand-out -------------------------------------------------------------------------------

    def pop(self, timeout: int | None = None) -> tuple[int, str]:
        """The next ``(item_id, text)`` for this labeller.

        Asking for another item while one is shown and not labelled means superintendent's
        skip (its widget sends no label): the shown item is skipped for this labeller.
        ``timeout`` is ignored: the queue's lease decides when an abandoned item returns.

        Raises
        ------
        IndexError
            When nothing is left for this labeller (as superintendent's queue does).
        """
        if self._shown is not None:
            self.queue.skip(self._shown, self.labeller)
            self._shown = None
        item = self.queue.pop(self.labeller)
        if item is None:
            raise IndexError("Nothing left to label in this queue.")
        self._popped.append(item.item_id)
        self._shown = item.item_id
        return item.item_id, item.text

    def __iter__(self) -> Iterator[tuple[int, str]]:
        return self

    def __next__(self) -> tuple[int, str]:
        try:
            return self.pop()
        except IndexError:
            raise StopIteration from None

    def submit(self, id_: int, label: Any) -> None:
        """Record ``label``; if someone else labelled the item first, warn and move on."""
        label = _as_label(label)
        try:
            self.queue.submit(int(id_), label, self.labeller)
        except ItemAlreadyLabelled as exc:
            warnings.warn(str(exc), stacklevel=2)
        self._submitted.add(int(id_))
        if self._shown == int(id_):
            self._shown = None

    def undo(self) -> None:
        """Take back the latest item handed out: unlabel it if it was labelled.

        superintendent's widget calls this twice on its undo key (once for the item on screen,
        once for the previous one). The item on screen stays leased to this labeller; the
        labelled one is handed back by widgetal's undo, which also releases the other.
        """
        if not self._popped:
            return
        item_id = self._popped.pop()
        self._shown = None  # shown again next, not skipped
        if item_id in self._submitted:
            self._submitted.discard(item_id)
            self.queue.undo(self.labeller)

    # -- adding and reordering ------------------------------------------------------------------

    def enqueue(self, features: Any, labels: Any = None, priorities: Any = None) -> None:
        """Add texts (a list, a Series, or a DataFrame with a ``text`` column), with labels."""
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
        frame = pd.DataFrame({"text": [str(t) for t in texts]})
        if labels is not None:
            frame["label"] = [None if lab is None else _as_label(lab) for lab in labels]
            self.queue.add(frame, label="label", labeller=self.labeller)
        else:
            self.queue.add(frame)

    def reorder(self, priorities: dict[int, float]) -> None:
        """superintendent's ``{id: priority}``, lowest first, as widgetal scores (highest first)."""
        self.set_priorities(list(priorities.keys()), list(priorities.values()))

    def set_priorities(self, ids: Sequence[int], priorities: Sequence[float]) -> None:
        """Set priorities given superintendent's way round (lowest is served first)."""
        scores = -np.asarray(priorities, dtype=np.float64)
        self.queue.reorder([int(i) for i in ids], scores)

    # -- reading ------------------------------------------------------------------------------

    def list_completed(self) -> tuple[list[int], list[str], list[str]]:
        """Ids, texts and labels of everything labelled (by anyone)."""
        frame = self.queue.labelled()
        return frame["item_id"].tolist(), frame["text"].tolist(), frame["label"].tolist()

    def list_uncompleted(self) -> tuple[list[int], list[str]]:
        """Ids and texts of everything not yet labelled, in queue order."""
        frame = self.queue.undone()
        return frame["item_id"].tolist(), frame["text"].tolist()

    def list_all(self) -> tuple[list[int], list[str], list[str | None]]:
        """Everything: labelled items first, then the rest with label None."""
        ids, x, y = self.list_completed()
        open_ids, open_x = self.list_uncompleted()
        return ids + open_ids, x + open_x, y + [None] * len(open_ids)

    def _labelled_count(self) -> int:
        return self.queue.progress().done

    def _unlabelled_count(self) -> int:
        return self.queue.progress().left

    def _total_count(self) -> int:
        return self.queue.progress().total

    @property
    def progress(self) -> float:
        """Fraction labelled, for superintendent's progress bar."""
        return self.queue.progress().fraction

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


__all__ = ["import_superintendent", "SuperintendentImport", "SuperintendentQueue"]
