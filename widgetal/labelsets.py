"""Label sets for multi-label projects: one canonical string per answer.

A multi-label answer is stored where a single label would be (``labels.label``,
``reviews.label``, ``items.guess_label``) as a JSON array of label names in the project's
label order, without spaces: ``["billing","urgent"]``; ``[]`` is the valid answer "none of
these". Because equal sets are equal strings, overlap, consensus, review, undo and provenance
work on sets unchanged: two labellers agree when they gave the same set.

Pure functions, no database; numpy only inside the matrix helpers, which the orchestrator
uses (a labeller's kernel loads neither numpy nor pandas).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput, LabelNotInLabelSet

if TYPE_CHECKING:
    import numpy as np

EMPTY = "[]"


def encode(labels: Iterable[str], label_set: Sequence[str]) -> str:
    """The canonical string for a set of labels: known labels, no repeats, project order.

    >>> encode(["urgent", "billing"], ["billing", "urgent", "refund"])
    '["billing","urgent"]'
    >>> encode([], ["billing", "urgent"])
    '[]'

    Raises
    ------
    LabelNotInLabelSet
        If a label is not in ``label_set``; nothing is stored by the caller.
    InvalidInput
        If ``labels`` is a plain string (one label must still come as a list).
    """
    if isinstance(labels, (str, bytes)):
        raise InvalidInput(
            f"A multi-label answer is a list of labels, e.g. ['{label_set[0]}'], not the "
            f"string {labels!r}; nothing was saved."
        )
    given = [str(x) for x in labels]
    unknown = [x for x in given if x not in label_set]
    if unknown:
        raise LabelNotInLabelSet(
            f"{unknown} {'is' if len(unknown) == 1 else 'are'} not in this project's label "
            f"set {list(label_set)}; nothing was saved."
        )
    chosen = set(given)
    return json.dumps([x for x in label_set if x in chosen], separators=(",", ":"))


def decode(value: str) -> list[str]:
    """The labels in a canonical string, in project order.

    >>> decode('["billing","urgent"]'), decode('[]')
    (['billing', 'urgent'], [])
    """
    labels = json.loads(value)
    if not isinstance(labels, list):
        raise InvalidInput(f"{value!r} is not a stored label set.")
    return labels


def parse(cell: Any, label_set: Sequence[str], sep: str | None = None) -> str:
    """Read one imported cell as a label set: a JSON list, a list object, or text joined by ``sep``.

    An empty cell means "not labelled yet" and is the caller's to handle (this refuses it); the
    answer "none of these" is an empty list: ``[]`` in text, or an empty list object.

    >>> parse('["urgent", "billing"]', ["billing", "urgent"])
    '["billing","urgent"]'
    >>> parse("urgent|billing", ["billing", "urgent"], sep="|")
    '["billing","urgent"]'
    >>> parse("[]", ["billing", "urgent"], sep="|")
    '[]'

    Raises
    ------
    InvalidInput
        If the cell is neither a JSON list nor (with ``sep``) joined labels.
    LabelNotInLabelSet
        If a label in the cell is not in ``label_set``.
    """
    try:
        labels = split(cell, sep)
    except InvalidInput as exc:
        raise InvalidInput(
            f'{exc}. Write a set as ["a", "b"] ([] for none of these), or as labels joined by '
            "a separator you name; nothing was saved."
        ) from None
    return encode(labels, label_set)


def split(cell: Any, sep: str | None = None) -> list[str]:
    """The label names a cell holds, not yet checked against a label set.

    A list object (a Parquet or JSONL list, a Python list, tuple or set) is taken as it is;
    text starting with ``[`` is read as a JSON list, whatever ``sep`` is, so ``[]`` always
    means "none of these"; other text is split at ``sep`` (pieces stripped, empty ones
    dropped).

    >>> split(" billing | urgent ", sep="|"), split('["refund"]', sep="|"), split([])
    (['billing', 'urgent'], ['refund'], [])

    Raises
    ------
    InvalidInput
        Naming the cell, without a full stop (callers add where it came from): an empty
        cell, a malformed JSON list, or text that is not a list while no separator was named.
    """
    if hasattr(cell, "tolist") and not isinstance(cell, str):  # numpy: arrays and scalars
        cell = cell.tolist()
    if isinstance(cell, (list, tuple, set, frozenset)):
        return [str(x) for x in cell]
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        raise InvalidInput("an empty cell is not a label set")
    text = str(cell).strip()
    if text.startswith("["):
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{_shown(text)} is not a well-formed JSON list ({exc.msg} at character "
                f"{exc.pos})"
            ) from None
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise InvalidInput(f"{_shown(text)} is not a JSON list of label names (strings)")
        return labels
    if not sep:
        raise InvalidInput(f"{_shown(text)} is not a JSON list of labels, and no separator "
                           "was named")
    return [x.strip() for x in text.split(sep) if x.strip()]


def count_labels(counts: Mapping[str, int], label_set: Sequence[str]) -> dict[str, int]:
    """Per label, how many answers contain it, from counts per canonical string; the key
    ``"[]"`` (last) counts the answers "none of these". Labels in project order, each present.

    >>> count_labels({'["a","b"]': 2, '["b"]': 1, '[]': 4}, ["a", "b", "c"])
    {'a': 2, 'b': 3, 'c': 0, '[]': 4}
    """
    out = dict.fromkeys(label_set, 0)
    out[EMPTY] = 0
    for value, n in counts.items():
        for label in decode(value) or [EMPTY]:
            out[label] = out.get(label, 0) + n
    return out


def indicator(values: Sequence[str], label_set: Sequence[str]) -> np.ndarray:
    """An (n × labels) 0/1 matrix from canonical strings, columns in project order.

    >>> indicator(['["b"]', '[]', '["a","b"]'], ["a", "b"]).tolist()
    [[0, 1], [0, 0], [1, 1]]
    """
    import numpy as np

    column = {label: j for j, label in enumerate(label_set)}
    out = np.zeros((len(values), len(label_set)), dtype=np.int8)
    for i, value in enumerate(values):
        for label in decode(value):
            out[i, column[label]] = 1
    return out


def from_indicator(matrix: np.ndarray, label_set: Sequence[str]) -> list[str]:
    """Canonical strings from an (n × labels) 0/1 (or boolean) matrix.

    >>> from_indicator([[1, 0], [0, 0]], ["a", "b"])
    ['["a"]', '[]']
    """
    import numpy as np

    matrix = np.asarray(matrix).astype(bool)
    if matrix.ndim != 2 or matrix.shape[1] != len(label_set):
        raise ValueError(
            f"Expected an (n x {len(label_set)}) matrix, got shape {matrix.shape}."
        )
    names = np.asarray(label_set, dtype=object)
    return [json.dumps(list(names[row]), separators=(",", ":")) for row in matrix]


def _shown(text: str) -> str:
    """A cell as a message quotes it: as the user wrote it, cut short."""
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:56] + "...'"
