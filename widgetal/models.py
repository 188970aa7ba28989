"""The models folder: each trained pipeline saved atomically with a JSON sidecar; list, load, prune.

A model is ``<UTC time>_<metric>-<score>.pkl`` (a pickled scikit-learn pipeline: raw texts in,
``predict_proba`` out) plus a ``.json`` sidecar of the same stem with its metrics, label counts,
label set, featurizer, strategy, library versions and phase timings. In a multi-label project the
classifier is one-vs-rest (:func:`multilabel_classifier`): ``predict_proba`` gives each label's
probability of applying, one column per trained label (the sidecar's ``trained_labels``), and
the file name carries ``f1_micro``; :func:`multilabel_metrics` is how such a model is scored.

The pickle is renamed into place first and the sidecar second, so a sidecar always describes a
complete model file. Loading a pickle runs code from it: load only models your own orchestrator
wrote.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import WidgetalError
from .schema import jsonable, utcnow

#: The metric in a model's file name: defined for any number of classes, robust to imbalance.
NAME_METRIC = "f1_macro"

#: The metric in a multi-label model's file name. Micro-F1 pools every (text, label) decision,
#: so a rare label with a handful of positives cannot swing it the way it swings macro-F1, and it
#: is defined in every fold; it is the usual headline of multi-label text classification.
MULTILABEL_NAME_METRIC = "f1_micro"

#: A label applies when its predicted probability reaches this (guesses, F1, subset accuracy).
THRESHOLD = 0.5

#: Columns of :func:`list_models`, in order.
COLUMNS = [
    "file",
    "created_at",
    "n_labels",
    "accuracy",
    "f1_macro",
    "roc_auc",
    "average_precision",
    "f1_micro",
    "subset_accuracy",
    "multi_label",
    "featurizer",
    "strategy",
    "label_counts",
    "labels",
    "run_id",
    "metric",
    "path",
]


class NoModelYet(WidgetalError, FileNotFoundError):
    """The models folder holds no model yet."""


def save_model(
    pipeline: Any,
    models_dir: str | os.PathLike,
    metrics: dict[str, Any],
    info: dict[str, Any],
    metric: str = NAME_METRIC,
) -> Path:
    """Write a fitted pipeline and its sidecar atomically; returns the ``.pkl`` path.

    Parameters
    ----------
    pipeline : fitted estimator
        Usually ``Pipeline([("features", ...), ("classifier", ...)])``.
    models_dir : path
        Created if missing.
    metrics : dict
        Cross-validation scores (``accuracy``, ``f1_macro``, ``roc_auc``, ...). The file name
        carries ``metric`` (else, where it is undefined, ``accuracy`` or ``subset_accuracy``).
    info : dict
        Anything else for the sidecar: ``n_labels``, ``label_counts``, ``labels``, ``featurizer``,
        ``strategy``, ``timings``, ``run_id``, ...
    metric : str, default=NAME_METRIC
        The score in the file name; :data:`MULTILABEL_NAME_METRIC` for multi-label models.

    Returns
    -------
    Path
        The model file. Two saves in the same second get distinct names.
    """
    folder = Path(models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    now = utcnow()
    metric = next(
        (m for m in (metric, "accuracy", "subset_accuracy") if _finite(metrics.get(m))), "accuracy"
    )
    score = metrics.get(metric)
    score_text = f"{score:.4f}" if _finite(score) else "nan"
    stem = f"{now:%Y%m%dT%H%M%SZ}_{metric}-{score_text}"

    tmp_pkl = _write_temp(folder, pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL))
    try:
        final = _claim_name(tmp_pkl, folder, stem)
    finally:
        tmp_pkl.unlink(missing_ok=True)
    sidecar = {
        "file": final.name,
        "created_at": now.isoformat(),
        "metrics": jsonable(metrics),
        "versions": library_versions(),
        **jsonable(info),
    }
    tmp_json = _write_temp(folder, json.dumps(sidecar, indent=2, sort_keys=True).encode())
    os.replace(tmp_json, final.with_suffix(".json"))
    _fsync_dir(folder)
    return final


def update_info(model_file: str | os.PathLike, **fields: Any) -> None:
    """Add or replace sidecar fields (e.g. the timings of phases after the save), atomically."""
    sidecar = Path(model_file).with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta.update(jsonable(fields))
    tmp = _write_temp(sidecar.parent, json.dumps(meta, indent=2, sort_keys=True).encode())
    os.replace(tmp, sidecar)


def list_models(models_dir: str | os.PathLike = "models") -> pd.DataFrame:
    """One row per saved model, oldest first (empty frame with the same columns if none).

    Examples
    --------
    >>> list_models("no-such-folder").empty
    True
    """
    rows = []
    for sidecar in Path(models_dir).glob("*.json"):
        model = sidecar.with_suffix(".pkl")
        if sidecar.name.startswith(".") or not model.exists():
            continue
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or unreadable: skip rather than fail the listing
        metrics = meta.get("metrics") or {}
        rows.append(
            {
                "file": model.name,
                "created_at": pd.Timestamp(meta.get("created_at")),
                "n_labels": meta.get("n_labels"),
                "accuracy": metrics.get("accuracy"),
                "f1_macro": metrics.get("f1_macro"),
                "roc_auc": metrics.get("roc_auc"),
                "average_precision": metrics.get("average_precision"),
                "f1_micro": metrics.get("f1_micro"),
                "subset_accuracy": metrics.get("subset_accuracy"),
                "multi_label": bool(meta.get("multi_label", False)),
                "featurizer": meta.get("featurizer"),
                "strategy": meta.get("strategy"),
                "label_counts": meta.get("label_counts"),
                "labels": meta.get("labels"),
                "run_id": meta.get("run_id"),
                "metric": named_metric(model.name),
                "path": str(model),
            }
        )
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if frame.empty:
        return frame
    return frame.sort_values(["created_at", "file"], kind="stable").reset_index(drop=True)


def load_latest(models_dir: str | os.PathLike = "models") -> Any:
    """The newest saved pipeline (raw texts in, ``predict_proba`` out).

    Raises
    ------
    NoModelYet
        If the folder holds no model yet.
    """
    frame = list_models(models_dir)
    if frame.empty:
        raise NoModelYet(
            f"No model in {Path(models_dir).resolve()} yet. Label a few texts of each class and "
            "run `widgetal orchestrate --once`."
        )
    return load_model(frame["path"].iloc[-1])


def load_model(path: str | os.PathLike) -> Any:
    """Unpickle one model file (trusted files only: unpickling runs code)."""
    with open(path, "rb") as fh:
        return pickle.load(fh)


def prune(models_dir: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` models; returns the model files removed."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}.")
    frame = list_models(models_dir)
    removed = []
    for path in frame["path"].iloc[: max(len(frame) - keep, 0)]:
        model = Path(path)
        # Sidecar first: a listing never shows a sidecar whose model is gone.
        model.with_suffix(".json").unlink(missing_ok=True)
        model.unlink(missing_ok=True)
        removed.append(model)
    return removed


def multilabel_classifier(estimator: Any) -> Any:
    """A multi-label classifier from a single-label one: one copy per label, each yes / no.

    ``OneVsRestClassifier`` fitted on an (n × labels) 0/1 matrix trains a clone of ``estimator``
    per column; its ``predict_proba`` gives each label's probability of applying (rows need not
    sum to 1), which is what :func:`widgetal.strategies.multilabel_scores` ranks. ``estimator``
    itself is never fitted (it is cloned).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, Y = [[0.0], [1.0], [2.0], [3.0]], [[1, 0], [1, 1], [0, 1], [0, 1]]
    >>> multilabel_classifier(LogisticRegression()).fit(X, Y).predict_proba(X).shape
    (4, 2)
    """
    from sklearn.base import clone
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(clone(estimator))


def multilabel_metrics(
    Y_true: Any, proba: Any, labels: list[str], threshold: float = THRESHOLD
) -> tuple[dict[str, float], dict[str, float | None]]:
    """Multi-label scores of per-label probabilities against the true 0/1 matrix.

    A label is predicted when its probability reaches ``threshold``. Returns the scores and
    each label's ROC AUC: None where the truth holds one class only (no text carries the label,
    or every text does), since AUC is undefined there; ``roc_auc`` is the mean over the labels
    where it is defined (NaN if none is).

    Returns
    -------
    metrics : dict
        ``f1_micro`` (F1 over every text-label decision pooled), ``f1_macro`` (mean of the
        labels' F1; a label never carried nor predicted scores 0), ``subset_accuracy`` (share of
        texts whose whole set is right), ``hamming_loss`` (share of wrong text-label decisions),
        ``roc_auc`` (mean per-label AUC where defined) and ``roc_auc_labels`` (how many labels
        it averages).
    roc_auc_per_label : dict
        Label name → AUC or None.

    Examples
    --------
    >>> scores, auc = multilabel_metrics([[1, 0], [0, 0]], [[0.8, 0.1], [0.3, 0.6]], ["a", "b"])
    >>> scores["subset_accuracy"], scores["f1_micro"], auc
    (0.5, 0.6666666666666666, {'a': 1.0, 'b': None})
    """
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss, roc_auc_score

    Y_true = np.asarray(Y_true).astype(int)
    proba = np.asarray(proba, dtype=float)
    if Y_true.ndim != 2 or Y_true.shape != proba.shape or Y_true.shape[1] != len(labels):
        raise ValueError(
            f"Y_true and proba must both be (n_samples x {len(labels)}), got {Y_true.shape} and "
            f"{proba.shape}."
        )
    Y_pred = (proba >= threshold).astype(int)
    per_label: dict[str, float | None] = {}
    for j, name in enumerate(labels):  # one call per label (not per row); AUC has no batch form
        column = Y_true[:, j]
        both = column.min() != column.max()
        per_label[name] = float(roc_auc_score(column, proba[:, j])) if both else None
    defined = [v for v in per_label.values() if v is not None]
    metrics = {
        "f1_micro": float(f1_score(Y_true, Y_pred, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(Y_true, Y_pred, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(Y_true, Y_pred)),
        "hamming_loss": float(hamming_loss(Y_true, Y_pred)),
        "roc_auc": float(np.mean(defined)) if defined else float("nan"),
        "roc_auc_labels": float(len(defined)),
    }
    return metrics, per_label


def default_estimator() -> Any:
    """The classifier the orchestrator trains and ``simulate`` replays when none is given.

    L2 logistic regression with C = 1. One definition for both, so a simulation's curves are
    the ones users will see. newton-cg reaches the same optimum as lbfgs 5-10x faster on
    sparse TF-IDF, which matters when a simulation fits a model hundreds of times.
    """
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, solver="newton-cg")


def committee_proba(
    estimator: Any,
    X_pool: Any,
    X_labelled: Any,
    y_labelled: Any,
    rng: np.random.Generator,
    n_members: int = 5,
) -> np.ndarray:
    """Probabilities of a committee for the pool: the input of ``strategies.vote_entropy``.

    Each member is a clone of ``estimator`` fitted on a stratified bootstrap of the labelled
    set (each class resampled within itself, so no member misses a class and every member's
    ``predict_proba`` has the same columns); bagging as in Abe & Mamitsuka (1998).

    Returns
    -------
    ndarray of shape (n_members, n_pool, n_classes)

    Raises
    ------
    ValueError
        No labelled set, or ``n_members < 1``.
    NotEnoughLabels
        Fewer than two labelled classes.
    """
    from sklearn.base import clone

    from .errors import NotEnoughLabels

    if X_labelled is None or y_labelled is None:
        raise ValueError("The committee strategy needs X_labelled and y_labelled to fit members.")
    if n_members < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members}")
    y = np.asarray(y_labelled)
    classes = np.unique(y)
    if classes.size < 2:
        raise NotEnoughLabels(
            f"A committee needs at least two labelled classes, got {classes.tolist()}; "
            "label a few items of another class first."
        )
    by_class = [np.flatnonzero(y == c) for c in classes]
    members = []
    for _ in range(n_members):
        idx = np.concatenate([rng.choice(rows, size=rows.size, replace=True) for rows in by_class])
        member = clone(estimator).fit(_take(X_labelled, idx), y[idx])
        members.append(member.predict_proba(X_pool))
    return np.stack(members)


def library_versions() -> dict[str, str]:
    """Versions that decide whether a pickle loads elsewhere."""
    versions = {"python": platform.python_version()}
    for name in ("widgetal", "sklearn", "numpy", "scipy", "pandas", "torch", "transformers"):
        module = sys.modules.get(name)
        if module is None and name in ("widgetal", "sklearn", "numpy", "scipy", "pandas"):
            module = __import__(name)
        if module is not None:
            versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def _write_temp(folder: Path, data: bytes) -> Path:
    # Hidden temp names never match *.json / *.pkl listings of finished models.
    fd, name = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=folder)
    try:
        # mkstemp creates 0600; a model is an ordinary file, readable as the umask allows (a team
        # reading ./models from another account or container must be able to open it).
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (a brief, process-wide change)
    os.umask(mask)
    return mask


def _claim_name(tmp: Path, folder: Path, stem: str) -> Path:
    # os.link refuses to overwrite, so two writers in the same second each get their own name.
    for n in range(1, 10_000):
        candidate = folder / (f"{stem}.pkl" if n == 1 else f"{stem}-{n}.pkl")
        try:
            os.link(tmp, candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError:  # filesystem without hard links: exclusive create, then replace
            try:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            os.replace(tmp, candidate)
            return candidate
    raise WidgetalError(f"Could not find a free model name for {stem} in {folder}.")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _take(X: Any, idx: np.ndarray) -> Any:
    if hasattr(X, "iloc"):
        return X.iloc[idx]
    if isinstance(X, list):
        return [X[i] for i in idx]
    return X[idx]


def named_metric(file_name: str) -> str | None:
    """The metric a model file is named by: ``<time>_<metric>-<score>[-n].pkl``.

    Examples
    --------
    >>> named_metric("20260101T000000Z_average_precision-0.7120-2.pkl")
    'average_precision'
    """
    _, _, rest = file_name.partition("_")
    return rest.split("-", 1)[0] or None


def _finite(value: Any) -> bool:
    try:
        return value is not None and bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


__all__ = [
    "save_model",
    "update_info",
    "list_models",
    "load_latest",
    "load_model",
    "prune",
    "library_versions",
    "multilabel_classifier",
    "multilabel_metrics",
    "default_estimator",
    "committee_proba",
    "named_metric",
    "NoModelYet",
    "MULTILABEL_NAME_METRIC",
    "COLUMNS",
]
