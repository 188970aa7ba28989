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
from collections.abc import Iterable, Sequence
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

    An empty cell means "no answer" and is handled by the caller; an empty list (``[]``) or,
    with a separator, an empty string inside quotes is the answer "none of these".

    >>> parse('["urgent", "billing"]', ["billing", "urgent"])
    '["billing","urgent"]'
    >>> parse("urgent|billing", ["billing", "urgent"], sep="|")
    '["billing","urgent"]'

    Raises
    ------
    InvalidInput
        If the cell is neither a JSON list nor (with ``sep``) joined labels.
    LabelNotInLabelSet
        If a label in the cell is not in ``label_set``.
    """
    if hasattr(cell, "tolist") and not isinstance(cell, str):  # a numpy array (Parquet lists)
        cell = cell.tolist()
    if isinstance(cell, (list, tuple, set, frozenset)):
        return encode([str(x) for x in cell], label_set)
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        raise InvalidInput("An empty cell is not a label set.")
    text = str(cell).strip()
    if text.startswith("["):
        try:
            labels = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{text!r} is not a well-formed JSON list of labels ({exc.msg} at character "
                f"{exc.pos})."
            ) from None
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise InvalidInput(f"{text!r} must be a JSON list of label names (strings).")
        return encode(labels, label_set)
    if sep is None:
        raise InvalidInput(
            f"{text!r} is not a JSON list of labels; write it as [\"a\", \"b\"] or name the "
            "separator (e.g. --label-sep '|')."
        )
    return encode([x.strip() for x in text.split(sep) if x.strip()], label_set)


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
