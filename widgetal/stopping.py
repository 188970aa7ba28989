"""When more labels are unlikely to help: a stop signal from stabilizing predictions.

Each trained run predicts a fixed random *stop set* of texts (drawn once per models folder from
the texts unlabelled then, up to :data:`STOP_SET_SIZE` of them, and kept in ``.stop_set.json``
there). The run's sidecar holds those predictions, keyed by item id, and the run records
Cohen's kappa between its predictions and the previous run's (``stop_kappa`` in its metrics,
so the runs table carries it). Once consecutive models agree almost perfectly, further labels
barely change what the model says: the *stabilizing predictions* criterion of Bloodgood &
Vijay-Shanker (2009), "A method for stopping active learning based on stabilizing
predictions and the need for user-adjustable stopping", CoNLL.

The signal (:func:`stop_signal`) fires when

- the last :data:`WINDOW` trained runs each agree with the run before them with kappa of at
  least :data:`KAPPA_THRESHOLD` (three consecutive pairs, four models), **and**
- the audit score has stopped rising: the latest run's audit score is not above the upper end
  of the confidence interval of the audit score :data:`WINDOW` trained runs earlier (the gain
  over the window is within that score's noise).

Without audit scores (the audit sample is off, or too small yet) the second part is
*unknown*, and the signal says so rather than firing. In a multi-label project a prediction is
a set of labels and kappa is computed over the flattened (texts × labels) 0/1 indicator
matrix: every text-label decision counts once, and a label with one answer only on the stop
set (where a per-label kappa is undefined) still counts.

Reading the signal needs only the runs table (the standard library here: the labelling app's
kernel loads no numpy); computing kappa imports scikit-learn lazily.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Texts in a project's stop set (fewer if the project has fewer unlabelled texts).
STOP_SET_SIZE = 1000
#: Kappa between consecutive models at or above which predictions count as stable.
KAPPA_THRESHOLD = 0.99
#: How many consecutive kappas must all reach the threshold, and how many runs back the audit
#: score is compared with.
WINDOW = 3
#: The file in the models folder that keeps the stop set's item ids (hidden, so listings of
#: model sidecars, ``*.json``, never meet it).
STOP_SET_FILE = ".stop_set.json"

#: The audit scores a run may carry (widgetal.audit.METRIC's values).
_AUDIT_METRICS = ("f1_macro", "f1_micro")

#: A prediction on one text: a label, or in a multi-label project the sorted labels it carries.
Prediction = Any


@dataclass
class StopSetResult:
    """One run's figures on the stop set: what goes in its metrics and in its sidecar."""

    predictions: dict[str, Prediction]
    kappa: float | None
    changed: int | None
    compared: int
    previous_file: str | None
    labels: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, Any]:
        """For the run's metrics (runs table and sidecar): kappa vs the previous run and how
        many stop-set predictions changed (None for the first run)."""
        return {"stop_kappa": self.kappa, "stop_changed": self.changed,
                "stop_set_size": len(self.predictions)}

    @property
    def sidecar(self) -> dict[str, Any]:
        return {"predictions": self.predictions, "kappa": self.kappa, "changed": self.changed,
                "compared": self.compared, "previous_model": self.previous_file,
                "labels": self.labels}


def stop_set_ids(models_dir: str | os.PathLike, pool_ids: Callable[[], Iterable[int]],
                 seed: int = 0, size: int = STOP_SET_SIZE) -> list[int]:
    """The project's stop set: read from ``models_dir/.stop_set.json``, else drawn now.

    Parameters
    ----------
    models_dir : path
    pool_ids : callable
        Returns the ids of the texts unlabelled now; called only when the set is drawn.
    seed : int
        Seeds the uniform draw (without replacement).
    size : int
        At most this many ids.
    """
    path = Path(models_dir) / STOP_SET_FILE
    if path.exists():
        return [int(i) for i in json.loads(path.read_text())["item_ids"]]
    pool = sorted(int(i) for i in pool_ids())
    if not pool:
        return []  # nothing unlabelled to draw from: drawn later, if texts arrive
    ids = sorted(random.Random(seed).sample(pool, min(size, len(pool))))
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"item_ids": ids, "seed": seed, "drawn_from": len(pool),
                       "why": "fixed random texts every run predicts (widgetal.stopping)"})
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return ids


def previous_predictions(models_dir: str | os.PathLike) -> tuple[str, dict] | None:
    """The newest model's stop-set block (its file name and sidecar ``stop_set``), if any."""
    from . import models  # pandas: the orchestrator's side only

    frame = models.list_models(models_dir)
    for path in reversed(frame["path"].tolist()):
        try:
            meta = json.loads(Path(path).with_suffix(".json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta.get("stop_set"), dict) and meta["stop_set"].get("predictions"):
            return Path(path).name, meta["stop_set"]
    return None


def compare(models_dir: str | os.PathLike, predictions: dict[str, Prediction],
            labels: Sequence[str] = (), multi_label: bool = False) -> StopSetResult:
    """This run's stop-set predictions against the newest saved model's."""
    predictions = {str(k): _plain(v) for k, v in predictions.items()}
    previous = previous_predictions(models_dir)
    if previous is None:
        return StopSetResult(predictions, None, None, 0, None, list(labels))
    name, block = previous
    shared = sorted(set(predictions) & set(block["predictions"]), key=int)
    before = [_plain(block["predictions"][k]) for k in shared]
    now = [predictions[k] for k in shared]
    all_labels = list(dict.fromkeys([*labels, *(block.get("labels") or [])]))
    value = kappa(before, now, all_labels if multi_label else None) if shared else None
    changed = sum(a != b for a, b in zip(before, now))
    return StopSetResult(predictions, value, changed, len(shared), name, list(labels))


def kappa(before: Sequence[Prediction], now: Sequence[Prediction],
          label_names: Sequence[str] | None = None) -> float:
    """Cohen's kappa between two models' predictions on the same texts.

    With ``label_names`` the predictions are label sets, compared as a flattened (texts ×
    labels) 0/1 matrix. Identical predictions give 1.0 even where scikit-learn's kappa is
    undefined (both models predict one answer for every text).

    Examples
    --------
    >>> kappa(["a", "b", "a", "b"], ["a", "b", "a", "a"])
    0.5
    >>> kappa(["a", "a"], ["a", "a"])
    1.0
    >>> kappa([["x"], []], [["x"], ["y"]], ["x", "y"])
    0.5
    """
    from sklearn.metrics import cohen_kappa_score

    if len(before) != len(now):
        raise ValueError(f"kappa needs predictions on the same texts; got {len(before)} and "
                         f"{len(now)}.")
    if label_names is not None:
        before = [int(name in set(p)) for p in before for name in label_names]
        now = [int(name in set(p)) for p in now for name in label_names]
    before, now = [str(p) for p in before], [str(p) for p in now]
    if before == now:
        return 1.0
    return float(cohen_kappa_score(before, now))


# -- the signal, from the runs table ---------------------------------------------------------


@dataclass
class StopSignal:
    """Whether more labels are unlikely to help, and the figures behind it.

    ``stop`` is True only when both parts hold; ``audit_flat`` is None when the audit part is
    unknown (no audit scores for the runs compared).
    """

    stop: bool
    kappa_stable: bool
    audit_flat: bool | None
    #: (run id, labels, kappa vs the run before), newest first, for the runs in the window.
    kappas: list[tuple[int, int | None, float | None]]
    #: (run id, labels, audit score, interval low, interval high) of the runs compared.
    audits: list[tuple[int, int | None, float, float | None, float | None]]
    why: str

    def line(self) -> str:
        """One line for ``status`` and the labelling app."""
        known = any(k is not None for _, _, k in self.kappas)
        head = ("More labels are unlikely to help" if self.stop
                else "Predictions have stabilized" if self.kappa_stable
                else "Not yet stable: labels still change the model" if known
                else "No stop signal yet")
        return f"{head}: {self.why}"


def stop_signal(runs: Sequence[dict], threshold: float = KAPPA_THRESHOLD,
                window: int = WINDOW) -> StopSignal:
    """The stop signal from run records (``Queue.runs()``, newest first).

    Only trained runs count (status ``trained``). See the module docstring for the rule.

    Examples
    --------
    >>> runs = [{"id": i, "n_labels": 10 * i, "status": "trained", "model_file": "m",
    ...          "metrics": {"stop_kappa": 0.995}} for i in (4, 3, 2, 1)]
    >>> s = stop_signal(runs)
    >>> s.kappa_stable, s.audit_flat, s.stop
    (True, None, False)
    """
    trained = [r for r in runs if r.get("status") == "trained"]
    kappas = [(r["id"], r.get("n_labels"), _number((r.get("metrics") or {}).get("stop_kappa")))
              for r in trained[:window]]
    values = [k for _, _, k in kappas if k is not None]
    stable = len(values) == window and min(values) >= threshold
    if not trained:
        why = "no trained run yet"
    elif len(values) < window:
        why = (f"stop-set kappa known for {len(values)} of the last {window} runs "
               f"(needs {window}, each ≥ {threshold})")
    else:
        shown = ", ".join(f"{k:.3f}" for k in values)
        held = "all" if stable else "not all"
        why = f"stop-set kappa over the last {window} runs {shown} ({held} ≥ {threshold})"

    audits = []
    flat: bool | None = None
    if len(trained) > window:
        latest, earlier = audit_of(trained[0]), audit_of(trained[window])
        if latest is not None and earlier is not None:
            audits = [(trained[i]["id"], trained[i].get("n_labels"), *a)
                      for i, a in ((0, latest), (window, earlier))]
            high = earlier[2] if earlier[2] is not None else earlier[0]
            flat = latest[0] <= high
            why += (f"; audit score {latest[0]:.3f} at run #{trained[0]['id']} vs "
                    f"{_interval(earlier)} at run #{trained[window]['id']}"
                    + (" (no longer rising)" if flat else " (still rising)"))
    if flat is None and trained:
        why += (f"; audit part unknown (no audit scores for the latest run and the one "
                f"{window} runs before)")
    return StopSignal(stable and flat is True, stable, flat, kappas, audits, why)


def audit_of(run: dict) -> tuple[float, float | None, float | None] | None:
    """A run's audit score and its interval (score, low, high), or None if it has none.

    Reads the run's metrics as :func:`widgetal.audit.evaluate` records them (here without
    numpy, which the labelling app's kernel does not load).
    """
    metrics = run.get("metrics") or {}
    name = audit_metric(run)
    if name is None:
        return None
    return (float(metrics[f"audit_{name}"]), _number(metrics.get("audit_ci_low")),
            _number(metrics.get("audit_ci_high")))


def audit_metric(run: dict) -> str | None:
    """The metric of a run's audit score (``f1_macro``, or ``f1_micro`` multi-label)."""
    metrics = run.get("metrics") or {}
    return next((name for name in _AUDIT_METRICS
                 if _number(metrics.get(f"audit_{name}")) is not None), None)


def _interval(audit: tuple) -> str:
    score, low, high = audit
    return f"{score:.3f} [{low:.3f}, {high:.3f}]" if low is not None and high is not None \
        else f"{score:.3f}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value else None


def _plain(prediction: Any) -> Prediction:
    # JSON keeps tuples as lists; a label set compares as a sorted list of names.
    if isinstance(prediction, (list, tuple, set, frozenset)):
        return sorted(str(p) for p in prediction)
    return str(prediction)


__all__ = ["stop_set_ids", "compare", "kappa", "stop_signal", "audit_of", "audit_metric",
           "StopSignal", "StopSetResult", "KAPPA_THRESHOLD", "WINDOW", "STOP_SET_SIZE",
           "STOP_SET_FILE"]
