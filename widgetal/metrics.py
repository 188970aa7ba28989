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
    the same however rare. NaN where a class has no true row (undefined). The same value as
    scikit-learn's ``average_precision_score`` (a step sum over distinct thresholds).

    Examples
    --------
    >>> average_precision(["a", "b", "b"], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], ["a", "b"])
    1.0
    """
    y_true = np.asarray(y_true, dtype=object)
    proba = np.asarray(proba, dtype=float)
    classes = list(classes)
    if len(classes) == 2:
        positive = classes[1] if positive is None else positive
        return _binary_ap(y_true == positive, proba[:, classes.index(positive)])
    per_class = [_binary_ap(y_true == c, proba[:, j]) for j, c in enumerate(classes)]
    return float(np.mean(per_class))  # NaN if any class is missing


def classification_scores(
    y_true: Any, proba: Any, classes: Any, positive: Any = None
) -> dict[str, float]:
    """Every single-label score of :data:`METRICS` for probabilities against true labels.

    ``roc_auc`` is one-vs-rest macro for more than two classes (the orchestrator's
    ``roc_auc_ovr``); ``average_precision`` as :func:`average_precision`; the prediction is
    the likeliest class. The values are scikit-learn's (``roc_auc_score``, ``f1_score``
    macro, ``accuracy_score``), computed in a few numpy passes: a simulation scores its test
    split a thousand times, and the library's input checks cost more than the arithmetic.
    """
    y_true = np.asarray(y_true, dtype=object)
    proba = np.asarray(proba, dtype=float)
    classes = list(classes)
    truth = np.stack([y_true == c for c in classes], axis=1)  # (n, k) one-hot
    predicted = proba.argmax(axis=1)
    hit = truth[np.arange(len(y_true)), predicted]
    tp = np.bincount(predicted[hit], minlength=len(classes))
    n_predicted = np.bincount(predicted, minlength=len(classes))
    n_true = truth.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(n_predicted + n_true > 0, 2 * tp / (n_predicted + n_true), 0.0)
    if len(classes) == 2:
        roc = _binary_auc(truth[:, 1], proba[:, 1])
    else:
        roc = float(np.mean([_binary_auc(truth[:, j], proba[:, j])
                             for j in range(len(classes))]))
    return {
        "roc_auc": roc,
        "average_precision": average_precision(y_true, proba, classes, positive),
        "f1_macro": float(f1.mean()),
        "accuracy": float(hit.mean()),
    }


def _binary_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half): sklearn's value."""
    from scipy.stats import rankdata

    n_pos = int(truth.sum())
    n_neg = truth.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _binary_ap(truth: np.ndarray, score: np.ndarray) -> float:
    """sum_n (R_n - R_(n-1)) P_n over the distinct thresholds, highest first: sklearn's AP."""
    n_pos = int(truth.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="mergesort")
    score, truth = score[order], truth[order]
    last = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]  # last row of each threshold
    tp = np.cumsum(truth)[last]
    precision = tp / (last + 1)
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float((recall_step * precision).sum())


__all__ = [
    "METRICS", "MULTILABEL_METRICS", "NAMES", "check_metric", "positive_class", "average_precision",
    "classification_scores",
]
