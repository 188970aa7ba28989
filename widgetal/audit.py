"""The audit sample: an honest live score for each model.

Cross-validation on the labels active learning chose is biased: the strategy asks for the texts
the model finds hardest (or, early on, whatever the first models happened to rank), so the
labelled set is not drawn like the texts the model will meet, and its CV score can swing or
sit far from the truth. The audit sample fixes that without a separate test set:

* every item gets a uniform random ``audit_key`` in [0, 1) when it is imported (a column,
  fixed once); the items with ``audit_key < audit_share`` form the *audit reserve*, a uniform
  random sample of the whole collection that the priority hand-out never serves;
* each pop draws, with probability ``audit_share`` (a project setting, 0.05 in new projects),
  the reserve item of smallest key instead of the top-priority item (when one kind is used up,
  the other is served); the item is marked ``audit`` for good and its labels record it;
* the orchestrator trains on every final label except the audit ones, and scores each new
  model on the audit labels, with a bootstrap confidence interval, beside the CV score.

Because the reserve is served in key order, its labelled part is the reserve items with the
smallest keys: a uniform random sample of the collection, whatever the model ranked. Raising
the share later brings in keys the priority hand-out could already have served (and labelled),
so set it at the start; lowering it keeps the audit labels already given.

Metrics recorded per run (``runs.metrics`` and the model's sidecar), see :func:`evaluate`:
``n_audit``, ``audit_f1_macro`` (multi-label: ``audit_f1_micro``), ``audit_ci_low``,
``audit_ci_high`` and, single-label, ``audit_accuracy``. :func:`audit_score` reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import labelsets

if TYPE_CHECKING:  # numpy only where scores are computed: the labelling app reads them back
    import numpy as np  # (audit_score, curve) in a kernel that loads neither
    import pandas as pd

#: A 95% bootstrap percentile interval from this many resamples of the audit labels.
LEVEL = 0.95
RESAMPLES = 2000
#: The audit metric, comparable with the CV score of the same name.
METRIC = {False: "f1_macro", True: "f1_micro"}


def split(labelled: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The final labels to train on, and the audit labels to test on.

    ``labelled`` is :meth:`widgetal.queue.Queue.labelled` with ``audit_column=True``; both parts
    keep its columns and order.
    """
    audit = labelled["audit"].astype(bool).to_numpy()
    train = labelled.loc[~audit].reset_index(drop=True)
    return train, labelled.loc[audit].reset_index(drop=True)


def evaluate(
    model: Any,
    X: Any,
    answers: Sequence[str],
    labels: Sequence[str],
    multi_label: bool = False,
    threshold: float = 0.5,
    seed: int = 0,
) -> dict[str, float | int | None]:
    """Score a fitted model on the audit labels, with a bootstrap interval.

    Parameters
    ----------
    model : fitted classifier (or pipeline) with ``predict`` (single-label) or
        ``predict_proba`` over ``labels`` (multi-label)
    X : the audit items' features (what ``model`` takes), one row per answer
    answers : the audit items' final labels (multi-label: label-set strings)
    labels : multi-label: the labels the model was trained on, in its column order
    threshold : multi-label: a label is predicted at this probability
    seed : seeds the resampling (the orchestrator passes the run id)

    Returns
    -------
    dict
        ``n_audit`` and, when there are audit labels, the score (``audit_f1_macro``, or
        ``audit_f1_micro`` in a multi-label project), ``audit_ci_low`` and ``audit_ci_high``
        (the 95% bootstrap percentile interval) and, single-label, ``audit_accuracy``.
        Without audit labels the score and interval are None.
    """
    import numpy as np

    metric = METRIC[multi_label]
    n = len(answers)
    out: dict[str, float | int | None] = {"n_audit": n, f"audit_{metric}": None,
                                          "audit_ci_low": None, "audit_ci_high": None}
    if n == 0:
        return out
    rng = np.random.default_rng(seed)
    if multi_label:
        truth = labelsets.indicator(list(answers), list(labels)).astype(bool)
        predicted = np.asarray(model.predict_proba(X)) >= threshold
        counts = micro_counts(truth, predicted)
        score = f1_micro(counts.sum(axis=0))
        draws = f1_micro(_resample_rows(counts, RESAMPLES, rng))
    else:
        truth = np.asarray(answers, dtype=object)
        predicted = np.asarray(model.predict(X), dtype=object)
        cells = confusion(truth, predicted)
        score = f1_macro(cells)
        draws = f1_macro(_resample_cells(cells, RESAMPLES, rng))
        out["audit_accuracy"] = float(np.trace(cells) / n)
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    out.update({f"audit_{metric}": float(score), "audit_ci_low": float(low),
                "audit_ci_high": float(high)})
    return out


def audit_score(metrics: dict | None) -> tuple[str, float, float, float, int] | None:
    """``(metric, score, ci_low, ci_high, n_audit)`` of a run's metrics, or None when the run
    has no audit score (no audit labels yet, or a run from before the audit sample)."""
    metrics = metrics or {}
    for name in METRIC.values():
        score = metrics.get(f"audit_{name}")
        if isinstance(score, (int, float)) and score == score:
            return (name, float(score), float(metrics["audit_ci_low"]),
                    float(metrics["audit_ci_high"]), int(metrics["n_audit"]))
    return None


# -- the scores and their resampling: counts, not items, so any number of audit labels is cheap


def confusion(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """The k × k confusion counts over the classes seen in either (rows true, columns
    predicted)."""
    import numpy as np

    classes, codes = np.unique(np.concatenate([truth, predicted]).astype(str),
                               return_inverse=True)
    k, n = len(classes), len(truth)
    return np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k)


def f1_macro(cells: np.ndarray) -> np.ndarray | float:
    """Macro-F1 of confusion counts (``(..., k, k)``), over the classes present (true or
    predicted) in each: what scikit-learn's ``f1_score(average="macro")`` gives."""
    import numpy as np

    cells = np.asarray(cells, dtype=float)
    tp = np.diagonal(cells, axis1=-2, axis2=-1)
    fp = cells.sum(axis=-2) - tp
    fn = cells.sum(axis=-1) - tp
    present = (tp + fp + fn) > 0
    per_class = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=present)
    return (per_class * present).sum(axis=-1) / present.sum(axis=-1)


def micro_counts(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per item, (true positives, false positives, false negatives) over the labels."""
    import numpy as np

    return np.stack([(truth & predicted).sum(axis=1), (~truth & predicted).sum(axis=1),
                     (truth & ~predicted).sum(axis=1)], axis=1)


def f1_micro(totals: np.ndarray) -> np.ndarray | float:
    """Micro-F1 of (tp, fp, fn) totals (``(..., 3)``); 0 when nothing is true or predicted,
    as scikit-learn's ``f1_score(average="micro")`` gives."""
    import numpy as np

    totals = np.asarray(totals, dtype=float)
    tp, fp, fn = totals[..., 0], totals[..., 1], totals[..., 2]
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def _resample_cells(cells: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap confusion matrices: resampling the n items with replacement is drawing n items
    over the cells, each cell as likely as its share of the items (multinomial)."""
    import numpy as np

    n = int(cells.sum())
    draws = rng.multinomial(n, cells.ravel() / n, size=resamples)
    return draws.reshape(resamples, *np.shape(cells))


def _resample_rows(rows: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap totals of per-item rows: the same draw over the distinct rows (items with
    equal rows are interchangeable), summed."""
    import numpy as np

    distinct, counts = np.unique(rows, axis=0, return_counts=True)
    n = int(counts.sum())
    return rng.multinomial(n, counts / n, size=resamples) @ distinct


def curve(runs: Sequence[dict]) -> list[dict[str, Any]]:
    """The audit learning curve: per trained run, oldest first, its training labels, CV score
    and audit score with interval (None before there are audit labels).

    ``runs`` are run records as :meth:`widgetal.queue.Queue.runs` returns them.
    """
    points = []
    for r in sorted(runs, key=lambda r: r["id"]):
        metrics = r.get("metrics") or {}
        if r.get("status") != "trained":
            continue  # skipped, failed, cold-start or running: no model to score
        found = audit_score(metrics)
        metric = found[0] if found else METRIC["f1_micro" in metrics]
        cv = metrics.get(metric)
        points.append({
            "run": r["id"], "n_labels": r.get("n_labels"), "metric": metric,
            "cv": cv if isinstance(cv, (int, float)) else None,
            "audit": found[1] if found else None, "ci_low": found[2] if found else None,
            "ci_high": found[3] if found else None,
            "n_audit": found[4] if found else int(metrics.get("n_audit") or 0),
        })
    return points
