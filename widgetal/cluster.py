"""Scoring and embedding on an existing Dask cluster (``widgetal orchestrate --dask ADDRESS``).

The orchestrator trains in its own process (one fit on the labels is cheap); what grows with
the pool is featurizing and scoring the unlabelled texts, and that is what goes to the workers:
the fitted model is scattered once per cycle and the texts go out in row chunks, each chunk's
``predict_proba`` (or ``transform``, for transformer embeddings) runs on a worker, and the rows
come back in order. Row by row the arithmetic is the in-process one, so the strategies (pure
functions of the probabilities) give the same scores and the same reorder.

Workers need widgetal installed (the same version: they unpickle its featurizers), not the
models folder nor the database. A transformer embedder is pickled without its weights nor its
device, so each worker loads them itself and picks its own device: the GPU when torch sees one
there, else the CPU (:meth:`widgetal.features.TransformerEmbedder._load`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from .errors import WidgetalError

log = logging.getLogger(__name__)

#: Seconds to wait for the scheduler before giving up.
CONNECT_TIMEOUT = 10.0

#: Seconds a cycle waits for a first worker to join (workers starting or restarting).
WORKERS_TIMEOUT = 60.0

#: Chunks per worker: enough to balance uneven workers, few enough to keep overhead small.
CHUNKS_PER_WORKER = 4

_INSTALL = "pip install 'widgetal[cluster]'"


class ClusterUnavailable(WidgetalError, ConnectionError):
    """The Dask scheduler could not be reached (or has no workers)."""


class ClusterNotInstalled(WidgetalError, ImportError):
    """``dask=`` was given but dask / distributed are not installed."""


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ClusterNotInstalled(
            f"--dask needs dask and distributed, which are not installed: {_INSTALL}."
        ) from exc
    return distributed


class Cluster:
    """A connection to a Dask scheduler, or a ``distributed.Client`` the caller owns.

    Parameters
    ----------
    address : str or distributed.Client
        ``"tcp://HOST:8786"``; a client is used as is and left open by :meth:`close`.
    timeout : float, optional
        Seconds to wait for the scheduler; default :data:`CONNECT_TIMEOUT`.

    Raises
    ------
    ClusterNotInstalled
        dask / distributed missing (names the ``cluster`` extra).
    ClusterUnavailable
        The scheduler does not answer in time.
    """

    def __init__(self, address: Any, timeout: float | None = None):
        distributed = _distributed()
        if isinstance(address, distributed.Client):
            self.client, self._owned = address, False
        else:
            if not isinstance(address, str) or not address.strip():
                raise ValueError(f"--dask takes a scheduler address like tcp://HOST:8786, "
                                 f"got {address!r}.")
            wait = CONNECT_TIMEOUT if timeout is None else timeout
            try:
                self.client = distributed.Client(address, timeout=wait,
                                                 set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ClusterUnavailable(
                    f"No Dask scheduler answered at {address} within {wait:.0f} s ({exc}). "
                    "Start one with `dask scheduler` and workers with `dask worker "
                    f"{address}`, or run without --dask."
                ) from exc
            self._owned = True
        self.address = self.client.scheduler.address

    def n_workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    def describe(self) -> dict[str, Any]:
        """What the run's sidecar and metrics record (called just before scoring, so it waits
        for workers still joining as :meth:`map_rows` does)."""
        return {"scheduler": self.address, "workers": self.n_workers() or self._wait_for_workers()}

    def map_rows(self, func: Any, obj: Any, X: Any) -> np.ndarray:
        """``func(obj, X[chunk])`` for row chunks of ``X`` on the workers, stacked in order.

        ``obj`` (a fitted model or an embedder) is scattered once, to every worker.
        """
        n = _n_rows(X)
        workers = self.n_workers() or self._wait_for_workers()
        size = max(1, math.ceil(n / (workers * CHUNKS_PER_WORKER)))
        chunks = [X[start:start + size] for start in range(0, n, size)]
        remote = self.client.scatter(obj, broadcast=True, hash=False)
        futures = self.client.map(func, [remote] * len(chunks), chunks, pure=False)
        try:
            parts = self.client.gather(futures)
        finally:
            self.client.cancel([*futures, remote])
        log.info("scored %d rows in %d chunks on %d workers", n, len(chunks), workers)
        return np.concatenate(parts, axis=0)

    def _wait_for_workers(self) -> int:
        try:
            self.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
        except TimeoutError as exc:
            raise ClusterUnavailable(
                f"The Dask scheduler at {self.address} has no workers (waited "
                f"{WORKERS_TIMEOUT:.0f} s): start some with `dask worker {self.address}`."
            ) from exc
        return self.n_workers()

    def close(self) -> None:
        if self._owned:
            self.client.close()


class ClusterModel:
    """A fitted model whose ``predict_proba`` runs on the cluster, in row chunks.

    For TF-IDF the model is the whole pipeline and the rows are texts, so the workers
    featurize too; ``classes_`` is the model's, for the guesses.
    """

    def __init__(self, model: Any, cluster: Cluster):
        self.model, self.cluster = model, cluster
        self.classes_ = getattr(model, "classes_", None)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.cluster.map_rows(_predict_proba, self.model, X)


class ClusterEmbedder:
    """A stateless embedder whose ``transform`` runs on the cluster (what
    :func:`widgetal.features.embed_cached` calls for the texts not cached yet)."""

    def __init__(self, embedder: Any, cluster: Cluster):
        self.embedder, self.cluster = embedder, cluster

    def transform(self, texts: Any) -> np.ndarray:
        rows = np.asarray(list(texts), dtype=object)
        return self.cluster.map_rows(_transform, self.embedder, rows)


def _predict_proba(model: Any, X: Any) -> np.ndarray:
    return np.asarray(model.predict_proba(X))


def _transform(embedder: Any, X: Any) -> np.ndarray:
    return np.asarray(embedder.transform(X))


def _n_rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)


__all__ = [
    "Cluster", "ClusterModel", "ClusterEmbedder", "ClusterUnavailable", "ClusterNotInstalled",
    "CONNECT_TIMEOUT", "WORKERS_TIMEOUT",
]
