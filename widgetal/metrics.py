"""Scores a model is named and judged by, and how the single-label ones are computed.

The orchestrator names each model file by one metric (``--metric``) and ``simulate`` draws its
learning curves in one; both check the name here and score single-label probabilities with
:func:`classification_scores` (multi-label scores: :func:`widgetal.models.multilabel_metrics`).
ROC AUC saturates early on an imbalanced set; average precision of the rare class keeps
showing what the model gains on it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Scores a single-label model can be named and judged by (``--metric``): higher is better.
METRICS = ("roc_auc", "average_precision", "f1_macro", "accuracy")

#: The same for a multi-label model: the scores of :func:`widgetal.models.multilabel_metrics`
#: that rise as the model improves (Hamming loss falls).
MULTILABEL_METRICS = ("f1_micro", "f1_macro", "subset_accuracy", "roc_auc")

#: How tables and plots name each metric.
NAMES = {"roc_auc": "ROC AUC", "average_precision": "average precision", "f1_macro": "macro-F1",
         "accuracy": "accuracy", "f1_micro": "micro-F1", "subset_accuracy": "subset accuracy"}


def check_metric(metric: str, multi_label: bool = False) -> str:
    """``metric`` if a model of this kind of project can be named and judged by it.

    Raises
    ------
    ValueError
        With the metrics that apply (and, for a near miss, the one meant).
    """
    allowed = MULTILABEL_METRICS if multi_label else METRICS
    if metric in allowed:
        return metric
    kind = "a multi-label project" if multi_label else "a single-label project"
    hint = ""
    if multi_label and metric == "accuracy":
        hint = " (subset_accuracy is the share of texts whose whole label set is right)"
    elif multi_label and metric == "average_precision":
        hint = " (it ranks one positive class; roc_auc is averaged over the labels)"
    elif not multi_label and metric in MULTILABEL_METRICS:
        hint = " (with one label per text micro-F1 equals accuracy)" if metric == "f1_micro" else ""
    elif metric == "hamming_loss":
        hint = " (a loss: lower is better, so no target or file name can use it)"
    known = metric in METRICS + MULTILABEL_METRICS or metric == "hamming_loss"
    what = f"The metric '{metric}' does not apply to" if known else f"Unknown metric '{metric}' for"
    raise ValueError(f"{what} {kind}{hint}; choose one of {', '.join(allowed)}.")


def positive_class(y: Any, labels: Any = None) -> Any:
    """The class ``average_precision`` ranks in a two-class project: the rarer one.

    Average precision is asked for when one class is rare and matters (refunds among
    tickets), so the positive is the minority of ``y``; on a tie, the later of ``labels`` (the
    project's label order, else sorted), as in ``--labels other,refund``.

    Examples
    --------
    >>> positive_class(["ok", "ok", "refund"]), positive_class(["a", "b"], ["b", "a"])
    ('refund', 'a')
    """
    values, counts = np.unique(np.asarray(y, dtype=object), return_counts=True)
    order = [str(v) for v in (labels if labels is not None else values)]
    rank = {v: order.index(str(v)) if str(v) in order else -1 for v in values}
    return min(zip(values, counts), key=lambda vc: (vc[1], -rank[vc[0]]))[0]


def average_precision(y_true: Any, proba: Any, classes: Any, positive: Any = None) -> float:
    """Average precision of probabilities: the area under the precision-recall curve.

    Two classes: of ``positive`` (default the second of ``classes``) against the other. More:
    the mean over classes of each class's AP against the rest (macro), so every class counts
    the same however rare. NaN where a class has no true row (undefined).

    Examples
    --------
    >>> average_precision(["a", "b", "b"], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], ["a", "b"])
    1.0
    """
    from sklearn.metrics import average_precision_score

    y_true = np.asarray(y_true, dtype=object)
    proba = np.asarray(proba, dtype=float)
    classes = list(classes)
    if len(classes) == 2:
        positive = classes[1] if positive is None else positive
        truth = y_true == positive
        if truth.all() or not truth.any():
            return float("nan")
        return float(average_precision_score(truth, proba[:, classes.index(positive)]))
    per_class = [
        average_precision_score(y_true == c, proba[:, j])
        for j, c in enumerate(classes) if (y_true == c).any()
    ]
    return float(np.mean(per_class)) if len(per_class) == len(classes) else float("nan")


def classification_scores(
    y_true: Any, proba: Any, classes: Any, positive: Any = None
) -> dict[str, float]:
    """Every single-label score of :data:`METRICS` for probabilities against true labels.

    ``roc_auc`` is one-vs-rest macro for more than two classes (the orchestrator's
    ``roc_auc_ovr``); ``average_precision`` as :func:`average_precision`; the prediction is
    the likeliest class.
    """
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    y_true = np.asarray(y_true, dtype=object)
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes, dtype=object)
    predicted = classes[proba.argmax(axis=1)]
    if len(classes) == 2:
        roc = roc_auc_score(y_true == classes[1], proba[:, 1])
    else:
        roc = roc_auc_score(y_true, proba, multi_class="ovr", labels=list(classes))
    return {
        "roc_auc": float(roc),
        "average_precision": average_precision(y_true, proba, list(classes), positive),
        "f1_macro": float(f1_score(y_true, predicted, average="macro", labels=list(classes))),
        "accuracy": float(accuracy_score(y_true, predicted)),
    }


__all__ = [
    "METRICS", "MULTILABEL_METRICS", "NAMES", "check_metric", "positive_class", "average_precision",
    "classification_scores",
]
