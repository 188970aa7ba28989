"""The models folder: each trained pipeline saved atomically with a JSON sidecar; list, load, prune.

A model is ``<UTC time>_<metric>-<score>.pkl`` (a pickled scikit-learn pipeline: raw texts in,
``predict_proba`` out) plus a ``.json`` sidecar of the same stem with its metrics, label counts,
label set, featurizer, strategy, library versions and phase timings. The pickle is renamed into
place first and the sidecar second, so a sidecar always describes a complete model file. Loading
a pickle runs code from it: load only models your own orchestrator wrote.
"""

from __future__ import annotations

import json
import os
import pickle
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import WidgetalError

#: The metric in a model's file name: defined for any number of classes, robust to imbalance.
NAME_METRIC = "f1_macro"

#: Columns of :func:`list_models`, in order.
COLUMNS = [
    "file",
    "created_at",
    "n_labels",
    "accuracy",
    "f1_macro",
    "roc_auc",
    "featurizer",
    "strategy",
    "label_counts",
    "labels",
    "run_id",
    "path",
]


class NoModelYet(WidgetalError, FileNotFoundError):
    """The models folder holds no model yet."""


def save_model(
    pipeline: Any, models_dir: str | os.PathLike, metrics: dict[str, Any], info: dict[str, Any]
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
        carries ``f1_macro`` (else ``accuracy``).
    info : dict
        Anything else for the sidecar: ``n_labels``, ``label_counts``, ``labels``, ``featurizer``,
        ``strategy``, ``timings``, ``run_id``, ...

    Returns
    -------
    Path
        The model file. Two saves in the same second get distinct names.
    """
    folder = Path(models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    metric = NAME_METRIC if _finite(metrics.get(NAME_METRIC)) else "accuracy"
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
        "metrics": _jsonable(metrics),
        "versions": library_versions(),
        **_jsonable(info),
    }
    tmp_json = _write_temp(folder, json.dumps(sidecar, indent=2, sort_keys=True).encode())
    os.replace(tmp_json, final.with_suffix(".json"))
    _fsync_dir(folder)
    return final


def update_info(model_file: str | os.PathLike, **fields: Any) -> None:
    """Add or replace sidecar fields (e.g. the timings of phases after the save), atomically."""
    sidecar = Path(model_file).with_suffix(".json")
    meta = json.loads(sidecar.read_text())
    meta.update(_jsonable(fields))
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
                "featurizer": meta.get("featurizer"),
                "strategy": meta.get("strategy"),
                "label_counts": meta.get("label_counts"),
                "labels": meta.get("labels"),
                "run_id": meta.get("run_id"),
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


def _finite(value: Any) -> bool:
    try:
        return value is not None and bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


def _jsonable(value: Any) -> Any:
    # numpy scalars and arrays, Paths and NaN become plain JSON (NaN -> null).
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not _finite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


__all__ = [
    "save_model",
    "update_info",
    "list_models",
    "load_latest",
    "load_model",
    "prune",
    "library_versions",
    "NoModelYet",
    "COLUMNS",
]
