"""Files in (CSV, JSONL, Parquet, DataFrame) and labels out, checked before anything is stored."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import charset_normalizer
import numpy as np
import pandas as pd

from . import labelset_io
from .errors import InvalidInput
from .schema import jsonable

#: Row numbers in messages are capped so an error about 100,000 rows stays readable.
_SHOW = 10


@dataclass
class PreparedRows:
    """Validated columns, ready for the queue's bulk insert."""

    external_ids: list[str]
    texts: list[str]
    metas: list[dict[str, Any] | None]
    labels: list[str | None]
    merged_duplicates: int = 0
    #: Per row: who gave the label (None: the import's default labeller), and when / how long,
    #: where the file says so (a widgetal export does).
    labellers: list[str | None] | None = None
    label_times: list[Any] | None = None
    seconds: list[float | None] | None = None

    def __len__(self) -> int:
        return len(self.external_ids)


#: The columns `widgetal export` writes beside text and label. A file holding ``external_id``
#: is read as an export: these columns restore ids and provenance instead of becoming meta.
EXPORT_COLUMNS = {"item_id", "external_id", "labeller", "created_at", "seconds", "source"}


@dataclass(frozen=True)
class Columns:
    """Which columns of a file mean what."""

    text: str = "text"
    id: str | None = None
    label: str | None = None
    labeller: str | None = None
    time: str | None = None
    seconds: str | None = None
    ignore: tuple[str, ...] = ()
    #: Multi-label projects: what joins labels in a label cell (None: JSON lists only), and a
    #: multi-label CSV export's ``label:NAME`` 0/1 columns, checked against ``label``.
    label_sep: str | None = None
    indicators: tuple[str, ...] = ()


def detect_columns(
    frame: pd.DataFrame,
    text: str = "text",
    id: str | None = None,  # noqa: A002
    label: str | None = None,
    labeller: str | None = None,
    label_sep: str | None = None,
) -> Columns:
    """Fill in what the user did not name: a widgetal export is read back without options.

    Without ``id``, a file with an ``external_id`` column (what `widgetal export` writes) is an
    export: its ``external_id``, ``label``, ``labeller``, ``created_at`` and ``seconds`` restore
    the same items and labels, and its ``item_id`` (another database's row number) is dropped.
    With a label column, a ``labeller`` column, if present, names who gave each label. A
    multi-label CSV export's ``label`` joins labels with ``|`` and its ``label:NAME`` columns
    repeat them (see :mod:`widgetal.labelset_io`).
    """
    cols = set(map(str, frame.columns))
    is_export = id is None and "external_id" in cols and text in cols
    if not is_export:
        if label is not None and labeller is None and "labeller" in cols:
            labeller = "labeller"
        return Columns(text, id, label, labeller, label_sep=label_sep)
    if label is None and "label" in cols:
        label = "label"
    if labeller is None and "labeller" in cols:
        labeller = "labeller"
    indicators = labelset_io.indicator_columns(frame.columns) if label == "label" else ()
    if indicators and label_sep is None:
        label_sep = labelset_io.EXPORT_SEP
    return Columns(
        text,
        "external_id",
        label,
        labeller,
        time="created_at" if "created_at" in cols else None,
        seconds="seconds" if "seconds" in cols else None,
        ignore=tuple(c for c in ("item_id", "source") if c in cols) + indicators,
        label_sep=label_sep,
        indicators=indicators,
    )


def _decode_error(path: Path, encoding: str, exc: UnicodeDecodeError) -> str:
    """Where the file stops being ``encoding`` (pandas reports an offset within its read
    buffer, not the file) and which encoding it more likely is, by charset-normalizer."""
    raw = gzip.open(path).read() if path.suffix.lower() == ".gz" else path.read_bytes()
    try:
        raw.decode(encoding)
        start, reason = exc.start, exc.reason  # cannot happen: fall back to pandas' account
        where = f"near byte {start}"
    except UnicodeDecodeError as err:
        start, reason = err.start, err.reason
        line = raw.count(b"\n", 0, start) + 1
        column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        where = f"at byte {start} (line {line}, column {column}: {raw[start:start + 4]!r})"
    guess = _likely_encoding(raw[max(0, start - 65536):start + 65536])  # where it shows
    if guess is None:
        hint = "Name the file's encoding with --encoding (e.g. cp1252 for Windows files)."
    else:
        begin, end = raw.rfind(b"\n", 0, start) + 1, raw.find(b"\n", start)
        line_text = raw[begin:end if end >= 0 else len(raw)].decode(guess, errors="replace")
        hint = (f"It looks like {guess}, which reads that line as {line_text.strip()[:80]!r}: "
                f"try --encoding {guess}.")
    return f"{path} is not valid {encoding} {where}: {reason}. {hint}"


def _likely_encoding(sample: bytes) -> str | None:
    """charset-normalizer's pick for ``sample``; cp1252 when it fits about as well, since
    short texts cannot tell the Windows code pages apart and cp1252 is the common one."""
    results = charset_normalizer.from_bytes(sample)
    best = results.best()
    if best is None:
        return None
    close = {m.encoding for m in results if m.chaos <= best.chaos + 0.1}
    return "cp1252" if "cp1252" in close | set(best.could_be_from_charset) else best.encoding


def read_table(path: str | Path, encoding: str = "utf-8") -> pd.DataFrame:
    """Read a CSV, JSONL or Parquet file (chosen by extension) into a DataFrame of strings.

    Raises
    ------
    InvalidInput
        Missing file, unknown extension, undecodable bytes, or malformed content.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"No such file: {path}")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz"):
            sep = "\t" if suffix.startswith(".tsv") else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding=encoding)
        if suffix in (".jsonl", ".ndjson", ".jsonl.gz"):
            return pd.read_json(path, lines=True, dtype=False, encoding=encoding)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise InvalidInput(_decode_error(path, encoding, exc)) from exc
    except LookupError as exc:
        raise InvalidInput(f"Unknown encoding '{encoding}': {exc}") from exc
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        raise InvalidInput(f"Cannot read {path} as {suffix[1:]}: {exc}") from exc
    raise InvalidInput(f"Don't know how to read '{path.name}': use .csv, .tsv, .jsonl or .parquet.")


def prepare_rows(
    frame: pd.DataFrame,
    text: str = "text",
    id: str | None = None,  # noqa: A002
    label: str | None = None,
    labels: list[str] | None = None,
    columns: Columns | None = None,
    multi_label: bool = False,
) -> PreparedRows:
    """Check a table and turn it into rows for the queue; raise before anything is stored.

    Row numbers in messages count data rows from 1 (a CSV's header is not a row). With
    ``multi_label`` a label cell is a set of labels (see :mod:`widgetal.labelset_io`), kept as
    its canonical string; an empty cell is a text not labelled yet, ``[]`` the answer "none of
    these".

    Raises
    ------
    InvalidInput
        Missing columns; empty or whitespace-only texts; duplicate ids; labels outside
        the label set; lists of labels in a single-label project; cells that are not label
        sets in a multi-label one.
    """
    cols = columns or Columns(text, id, label)
    text, id, label = cols.text, cols.id, cols.label
    named = [text, id, label, cols.labeller, cols.time, cols.seconds]
    _require_columns(frame, [c for c in named if c is not None])
    if len(frame) == 0:  # an empty batch is a no-op, not an error
        return PreparedRows([], [], [], [])
    texts = frame[text].map(_as_text).astype(object)
    empty = texts.str.strip() == ""
    if empty.any():
        raise InvalidInput(
            f"{int(empty.sum())} empty or whitespace-only texts in column '{text}' "
            f"at rows {_rows(empty)}; fix or drop them and import again. Nothing was imported."
        )
    nul = texts.str.contains("\x00", regex=False)
    if nul.any():  # PostgreSQL cannot store them; refuse everywhere so a file means one thing
        raise InvalidInput(
            f"{int(nul.sum())} texts in column '{text}' contain a NUL character (\\x00) at rows "
            f"{_rows(nul)}; remove it and import again. Nothing was imported."
        )
    merged = 0
    if id is not None:
        ids = frame[id].map(_as_text).str.strip()
        missing = ids == ""
        if missing.any():
            raise InvalidInput(f"Empty ids in column '{id}' at rows {_rows(missing)}.")
        dup = ids.duplicated(keep=False)
        if dup.any():
            examples = ", ".join(repr(v) for v in ids[dup].unique()[:_SHOW])
            raise InvalidInput(
                f"Duplicate ids in column '{id}' ({examples}) at rows {_rows(dup)}: each row "
                "needs its own id. Nothing was imported."
            )
        keep = pd.Series(True, index=frame.index)
    else:
        # Without an id column a text's identity is its content: the same text is one item.
        ids = texts.map(text_id)
        keep = ~ids.duplicated(keep="first")
        merged = int((~keep).sum())

    values: list[str | None]
    if label is not None and multi_label:
        values = labelset_io.read_label_sets(frame[label], labels or [], cols.label_sep, label)
        if cols.indicators:
            labelset_io.check_indicators(frame, cols.indicators, values, labels or [])
    elif label is not None:
        values = _single_labels(frame[label], labels or [], label)
    else:
        values = [None] * len(frame)

    provenance = _provenance(frame, cols, label_given=[v is not None for v in values])
    other = [c for c in frame.columns if c not in (*named, *cols.ignore)]
    metas: list[dict[str, Any] | None]
    if other:
        metas = [
            {k: _meta_value(v) for k, v in rec.items()} for rec in frame[other].to_dict("records")
        ]
    else:
        metas = [None] * len(frame)

    mask = keep.to_numpy()
    return PreparedRows(
        external_ids=[e for e, k in zip(ids.tolist(), mask) if k],
        texts=[t for t, k in zip(texts.tolist(), mask) if k],
        metas=[m for m, k in zip(metas, mask) if k],
        labels=[v for v, k in zip(values, mask) if k],
        merged_duplicates=merged,
        **{name: [v for v, k in zip(col, mask) if k] for name, col in provenance.items()},
    )


def _single_labels(column: pd.Series, labels: list[str], name: str) -> list[str | None]:
    """One label per row (None where the cell is empty), each in the label set."""
    listed = column.map(lambda v: isinstance(v, (list, tuple, set, frozenset, np.ndarray)))
    if listed.any():
        raise InvalidInput(
            f"Column '{name}' holds lists of labels at rows {_rows(listed)}, but this project "
            "takes one label per text. Give one label per row, or start a multi-label project "
            "(widgetal init --labels ... --multi-label). Nothing was imported."
        )
    raw = column.map(lambda v: "" if _is_missing(v) else str(v).strip())
    outside = (raw != "") & ~raw.isin(labels)
    if outside.any():
        bad = ", ".join(repr(v) for v in raw[outside].unique()[:_SHOW])
        hint = (" Lists of labels need a multi-label project (widgetal init --labels ... "
                "--multi-label)." if raw[outside].str.startswith("[").any() else "")
        raise InvalidInput(
            f"Labels outside the label set {labels} in column '{name}': {bad} at rows "
            f"{_rows(outside)}. Fix them, or start a project with those labels.{hint} "
            "Nothing was imported."
        )
    return [v or None for v in raw.tolist()]


def _provenance(frame: pd.DataFrame, cols: Columns, label_given: list[bool]) -> dict[str, list]:
    """Who gave each label, when, and how long it took, from the columns that say so."""
    out: dict[str, list] = {}
    if cols.labeller is not None:
        names = frame[cols.labeller].map(_as_text).astype(object).str.strip()
        out["labellers"] = [n or None for n in names.tolist()]
    if cols.time is not None:
        times = pd.to_datetime(frame[cols.time].map(_as_text), utc=True, errors="coerce",
                               format="mixed")
        bad = times.isna() & (frame[cols.time].map(_as_text) != "") & pd.Series(
            label_given, index=frame.index)
        if bad.any():
            raise InvalidInput(
                f"Unreadable times in column '{cols.time}' at rows {_rows(bad)}. "
                "Nothing was imported."
            )
        out["label_times"] = [None if pd.isna(t) else t.to_pydatetime() for t in times]
    if cols.seconds is not None:
        secs = pd.to_numeric(frame[cols.seconds].map(_as_text).replace("", None),
                             errors="coerce")
        out["seconds"] = [None if pd.isna(v) else float(v) for v in secs]
    return out


def text_id(text: str) -> str:
    """The external id of a text that came without one: a hash of its content."""
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


#: What a spreadsheet treats as the start of a formula (OWASP's list for CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells cannot start a spreadsheet formula: such cells get a leading ``'``.

    For files people open in Excel or LibreOffice (CSV formula injection). Not the default:
    it changes the data, so a file written this way no longer round-trips exactly.
    """
    out = frame.copy()
    for name in out.columns:
        col = out[name]
        if col.dtype == object or pd.api.types.is_string_dtype(col):
            risky = col.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START))
            out[name] = col.where(~risky, "'" + col.astype(str))
    return out


def write_labels(
    frame: pd.DataFrame, path: str | Path, spreadsheet: bool = False,
    label_set: Sequence[str] | None = None,
) -> None:
    """Write labels (or events) to CSV, JSONL or Parquet, by the file's extension.

    Parameters
    ----------
    frame : DataFrame
        ``Queue.labelled()`` or ``Queue.events()``.
    path : str or Path
        ``.csv``, ``.jsonl`` (``.ndjson``) or ``.parquet``.
    spreadsheet : bool
        Make a CSV safe to open in a spreadsheet (see :func:`spreadsheet_safe`).
    label_set : list of str, optional
        A multi-label project's labels: ``label`` then holds canonical label-set strings,
        written as :func:`widgetal.labelset_io.for_export` says (joined text and one 0/1
        column per label in CSV; lists in JSONL and Parquet). None: written as they are.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson", ".parquet"):
        raise InvalidInput(f"Can export to .csv, .jsonl or .parquet, not '{path.name}'.")
    if label_set is not None:
        frame = labelset_io.for_export(frame, label_set, suffix)
    if spreadsheet:
        if suffix != ".csv":
            raise InvalidInput("--spreadsheet-safe is for .csv files, which spreadsheets open.")
        frame = spreadsheet_safe(frame)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True, date_format="iso", date_unit="us",
                      force_ascii=False)
    elif label_set is not None:  # .parquet, label as a list column
        labelset_io.write_parquet(frame, path)
    else:  # .parquet
        frame.to_parquet(path, index=False)


def _require_columns(frame: pd.DataFrame, needed: list[str]) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"Missing column(s) {missing}; the file has {list(map(str, frame.columns))}. "
            "Name the right ones with --text-col / --id-col / --label-col."
        )


def _rows(mask: pd.Series) -> str:
    positions = [int(i) + 1 for i in mask.to_numpy().nonzero()[0]]
    shown = ", ".join(map(str, positions[:_SHOW]))
    return shown + (f" and {len(positions) - _SHOW} more" if len(positions) > _SHOW else "")


def _is_missing(value: Any) -> bool:
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _as_text(value: Any) -> str:
    return "" if _is_missing(value) else str(value)


def _meta_value(value: Any) -> Any:
    """A meta cell as its JSON column stores it; pandas' missing values (NaN, NA, NaT) are null."""
    return None if _is_missing(value) else jsonable(value)
