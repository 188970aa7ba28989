"""Label sets in files: the label column of a multi-label import, and how an export writes sets.

An import cell is a JSON list (``["billing","urgent"]``; ``[]`` is the answer "none of
these"), a list value (JSONL, Parquet, a DataFrame), or labels joined by a separator the user
names. An empty cell means "not labelled yet".

An export writes each set as a JSON list in JSONL and as a list column in Parquet. A CSV holds
it twice: ``label`` joins the labels with ``|`` (``[]`` for "none of these"), and one 0/1
column per label, ``label:NAME``, in project order, serves spreadsheets and pandas. Importing
an export reads ``label`` (with ``|``, without options) and refuses the file if an edited 0/1
column no longer says the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import labelsets
from .errors import InvalidInput

#: What joins a set's labels in a CSV export's ``label`` column.
EXPORT_SEP = "|"
#: The prefix of a CSV export's 0/1 column per label: ``label:billing``. No other column
#: widgetal writes starts with it, and ``:`` is not a character column names usually carry.
INDICATOR_PREFIX = "label:"
_SHOW = 10  # rows described in a message; the count says how many more


def read_label_sets(
    column: pd.Series, label_set: Sequence[str], sep: str | None, name: str
) -> list[str | None]:
    """Each row's label set as its canonical string, None where the cell is empty.

    Every unreadable row is reported at once, before anything is stored.

    Raises
    ------
    InvalidInput
        Naming the rows whose cell is not a list, is malformed, or holds labels outside
        ``label_set``.
    """
    if sep == "":
        raise InvalidInput("--label-sep cannot be empty; name the character that joins labels, "
                           "e.g. --label-sep '|'. Nothing was imported.")
    known = set(label_set)
    parsed: dict[str, str] = {}  # a file repeats few distinct sets: read each once
    values: list[str | None] = []
    problems: list[str] = []
    n_bad = 0
    for row, cell in enumerate(column.tolist(), 1):
        if _is_blank(cell):
            values.append(None)
            continue
        if isinstance(cell, str) and cell in parsed:
            values.append(parsed[cell])
            continue
        try:
            names = labelsets.split(cell, sep)
        except InvalidInput as exc:
            reason = str(exc)
        else:
            unknown = list(dict.fromkeys(x for x in names if x not in known))
            if not unknown:
                value = labelsets.encode(names, label_set)
                if isinstance(cell, str):
                    parsed[cell] = value
                values.append(value)
                continue
            reason = f"{unknown} {'is' if len(unknown) == 1 else 'are'} not in the label set"
        n_bad += 1
        if len(problems) < _SHOW:
            problems.append(f"row {row}: {reason}")
        values.append(None)
    if n_bad:
        more = f"; and {n_bad - _SHOW} more" if n_bad > _SHOW else ""
        how = ('Write each as a JSON list (["a", "b"]; [] for none of these)' + (
            ", or name the character joining the labels with --label-sep (e.g. '|')"
            if sep is None else f", or as labels joined by {sep!r}"))
        raise InvalidInput(
            f"{n_bad} cells in column '{name}' are not label sets of this project (labels "
            f"{list(label_set)}): {'; '.join(problems)}{more}. {how}. Nothing was imported."
        )
    return values


def check_indicators(
    frame: pd.DataFrame, columns: Sequence[str], values: list[str | None],
    label_set: Sequence[str],
) -> None:
    """An export's ``label:NAME`` columns must say what its ``label`` column says.

    Someone may have edited one of them in a spreadsheet; importing would then silently
    ignore the edit. Blank cells say nothing; rows without a label are not checked.

    Raises
    ------
    InvalidInput
        A 0/1 column for a label outside ``label_set``, a cell that is not 0 or 1, or rows
        where the two disagree.
    """
    outside = [c for c in columns if c[len(INDICATOR_PREFIX):] not in label_set]
    if outside:
        raise InvalidInput(
            f"Columns {outside} are for labels outside this project's label set "
            f"{list(label_set)}: the file comes from another project. Nothing was imported."
        )
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    if not len(uniques):
        return
    matrix = labelsets.indicator(list(uniques), label_set)
    labelled = codes >= 0
    position = {label: j for j, label in enumerate(label_set)}
    invalid = np.zeros(len(frame), dtype=bool)
    differ = np.zeros(len(frame), dtype=bool)
    for c in columns:
        cells = frame[c]
        blank = cells.map(_is_blank).to_numpy(dtype=bool)
        flags = pd.to_numeric(cells.where(~blank), errors="coerce").to_numpy(dtype=float)
        ok = ~blank & np.isin(flags, (0.0, 1.0))
        invalid |= ~blank & ~ok
        expected = matrix[np.maximum(codes, 0), position[c[len(INDICATOR_PREFIX):]]]
        differ |= ok & labelled & (flags != expected)
    if invalid.any():
        raise InvalidInput(
            f"Columns {list(columns)} hold values other than 0 and 1 at rows "
            f"{_rows(invalid)}. Nothing was imported."
        )
    if differ.any():
        raise InvalidInput(
            f"The label:NAME columns disagree with the 'label' column at rows {_rows(differ)} "
            "(was one of them edited?). Make them say the same, or delete the label:NAME "
            "columns to go by 'label'. Nothing was imported."
        )


def for_export(frame: pd.DataFrame, label_set: Sequence[str], suffix: str) -> pd.DataFrame:
    """A copy of ``frame`` whose ``label`` column (canonical strings, or None) is written as
    sets: joined text plus ``label:NAME`` 0/1 columns for ``.csv``, lists otherwise."""
    if "label" not in frame.columns:
        return frame
    values = frame["label"].astype(object)
    present = values.notna()
    decoded = {v: labelsets.decode(v) for v in pd.unique(values[present])}
    out = frame.copy()
    if suffix != ".csv":
        lists = [decoded[v] if p else None for v, p in zip(values, present)]
        out["label"] = pd.Series(lists, index=out.index, dtype=object)
        return out
    join = _joined if all(_joinable(x) for x in label_set) else _as_json
    out["label"] = [join(decoded[v]) if p else None for v, p in zip(values, present)]
    at = out.columns.get_loc("label") + 1
    for j, name in enumerate(label_set):
        flags = [int(name in decoded[v]) if p else None for v, p in zip(values, present)]
        out.insert(at + j, INDICATOR_PREFIX + name, pd.array(flags, dtype="Int8"))
    return out


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a frame from :func:`for_export` to Parquet with ``label`` typed list<string>, even
    where every set is empty (pyarrow would guess list<null>)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if "label" in table.column_names:
        at = table.column_names.index("label")
        table = table.set_column(at, pa.field("label", pa.list_(pa.string())),
                                 table.column(at).cast(pa.list_(pa.string())))
    pq.write_table(table, path)


def indicator_columns(columns: Sequence[object]) -> tuple[str, ...]:
    """The ``label:NAME`` columns among ``columns``, in their order."""
    return tuple(str(c) for c in columns if str(c).startswith(INDICATOR_PREFIX))


def _joinable(label: str) -> bool:
    """Whether ``label`` reads back from joined text: no separator inside, and not the start
    of a JSON list (a cell starting with ``[`` is read as one)."""
    return EXPORT_SEP not in label and not label.startswith("[")


def _joined(labels: list[str]) -> str:
    return EXPORT_SEP.join(labels) if labels else labelsets.EMPTY


def _as_json(labels: list[str]) -> str:
    return json.dumps(labels, separators=(",", ":"), ensure_ascii=False)


def _is_blank(cell: object) -> bool:
    """An empty cell: no value, NaN, or blank text. An empty list is a value ("none of these")."""
    if isinstance(cell, str):
        return not cell.strip()
    if isinstance(cell, (list, tuple, set, frozenset, np.ndarray)):
        return False
    try:
        return cell is None or bool(pd.isna(cell))
    except (TypeError, ValueError):
        return False


def _rows(mask: np.ndarray) -> str:
    positions = [int(i) + 1 for i in np.flatnonzero(mask)]
    shown = ", ".join(map(str, positions[:_SHOW]))
    return shown + (f" and {len(positions) - _SHOW} more" if len(positions) > _SHOW else "")
