"""The orchestrator: retrain on the labels, cross-validate, save a model, reorder the queue.

One cycle is :meth:`Orchestrator.run_once`, which returns a :class:`Run` record. The loop with
its triggers (every N seconds, once N new labels arrived), database back-off and stop event wraps
the cycle in :meth:`Orchestrator.run_forever`; signal handling lives in :func:`orchestrate`, the
function behind ``widgetal orchestrate`` and the container's ``orchestrator.py``.

In a multi-label project (``Queue.multi_label``) the same cycle trains a one-vs-rest model on the
(texts × labels) 0/1 matrix, cross-validates it with plain ``KFold`` (stratification needs one
class per text), names the model by micro-F1, publishes each text's guessed label set and ranks
by per-label uncertainty aggregated over labels (``aggregate``). A label is trained once at
least ``cv_folds`` texts carry it and ``cv_folds`` texts do not; the others are left out and
named in the log and the sidecar, and the cycle waits only while no label can be trained.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sklearn.base import clone
from sklearn.metrics import confusion_matrix, multilabel_confusion_matrix
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline

from . import (
    audit,
    coldstart,
    features,
    labelsets,
    models,
    ranking,
    signals,
    stopping,
    strategies,
)
from . import pool as subpool
from .cluster import Cluster, ClusterEmbedder, ClusterModel
from .errors import DatabaseUnavailable, EmptyPool, NotEnoughLabels, first_line
from .metrics import average_precision, check_metric, positive_class
from .queue import Queue
from .schema import jsonable, utcnow

log = logging.getLogger(__name__)

#: Errors worth retrying: the server is down or restarting, or SQLite is busy.
TRANSIENT_ERRORS = (DatabaseUnavailable, sa.exc.OperationalError, sa.exc.InterfaceError)

#: Seeds the subpool's generator apart from the ranking's.
_POOL_STREAM = 1

#: Below this many labels, TF-IDF keeps terms seen once (min_df=1).
_FEW_LABELS = 200

#: Pool texts featurized and scored at a time: the pool's feature matrix never exists whole,
#: only its probabilities (a few floats per text). Rows are scored independently, so the
#: result is the same as in one piece.
SCORE_BATCH = 20_000

#: Strategies that need nothing but each text's probabilities (the others compare texts).
_ROW_WISE = ("least-confidence", "margin", "entropy", "random")


@dataclass
class Run:
    """What one cycle did.

    ``status`` is ``"trained"`` (model saved, queue reordered), ``"cold-start"`` (no model yet,
    ``reason`` says why; the queue was ordered for diversity, :mod:`widgetal.coldstart`),
    ``"skipped"`` (no model and nothing to order) or ``"failed"`` (``reason`` holds the error);
    the run's row stores both (:data:`widgetal.schema.RUN_STATUSES`).
    """

    status: str
    run_id: int | None = None
    reason: str | None = None
    n_labels: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    model_file: Path | None = None
    n_reranked: int = 0
    #: Complete items left out of training because their labels disagree and await a reviewer.
    awaiting_review: int = 0
    #: Multi-label projects: labels the model was trained on, and those left out with their
    #: counts (``{"refund": {"positive": 2, "negative": 40}}``) until each side fills the folds.
    trained_labels: list[str] = field(default_factory=list)
    untrained_labels: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: With ``dask=``: the scheduler and how many workers featurized and scored the pool.
    cluster: dict[str, Any] | None = None
    #: What the cycle scored (:func:`widgetal.pool.read_subpool`): ``sampled`` False when every
    #: unlabelled item was; else the window and head counts. The others kept their priority.
    pool: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model_file"] = str(self.model_file) if self.model_file else None
        return out


class Orchestrator:
    """Retrains on every label so far and orders the queue by what the model is least sure of.

    Parameters
    ----------
    queue : Queue
    models_dir : path
        Where model files and sidecars go.
    featurizer : str
        ``"tfidf-char"`` (default), ``"tfidf"`` or ``"transformer:NAME_OR_PATH"`` (embeddings
        cached in the database); see :func:`widgetal.features.make_featurizer`.
    strategy : str
        A name from :data:`widgetal.strategies.STRATEGIES` (multi-label projects:
        :data:`widgetal.strategies.MULTILABEL_STRATEGIES`, the committee being single-label).
    explore : float
        Share of the queue's top slots given to random items.
    estimator : scikit-learn classifier, optional
        Cloned every cycle; default :func:`widgetal.models.default_estimator` (what
        ``simulate`` replays). In a multi-label
        project it is wrapped in a one-vs-rest classifier (one copy per label).
    cv_folds : int
        Stratified folds; each class needs at least this many labels before a cycle trains. In
        a multi-label project: plain folds, and a label is trained once this many texts carry it
        and this many do not.
    keep : int, optional
        Keep only the newest ``keep`` models.
    random_state : int
        Seeds the folds and, with the run id, exploration and committees.
    aggregate : {"mean", "max"}
        Multi-label projects: how the per-label uncertainties of a text combine into its score
        (see :func:`widgetal.strategies.multilabel_scores`); unused in single-label projects.
    metric : str, optional
        The cross-validated score that names each model file and heads ``status``: one of
        :data:`widgetal.metrics.METRICS` (default ``f1_macro``) or, multi-label,
        :data:`widgetal.metrics.MULTILABEL_METRICS` (default ``f1_micro``). Every score is
        computed and kept in the sidecar either way.
    pool_size : int, optional
        Score a random subpool of this many unlabelled items per cycle plus the ``top``
        items at the head of the queue (:mod:`widgetal.pool`); ``None`` scores them all.
        Projects with at most ``pool_size`` unlabelled items are always scored whole.
    top : int
        Items at the head of the queue that every bounded cycle re-scores.
    cold_start : bool
        While no model can train, order the queue for diversity and the project's boost
        (:func:`widgetal.coldstart.order_queue`) instead of leaving it in import order.
    dask : str or distributed.Client, optional
        A Dask scheduler (``"tcp://HOST:8786"``) whose workers featurize and score the pool
        (:mod:`widgetal.cluster`); training stays here. Default: everything in-process.

    Examples
    --------
    >>> q = Queue("sqlite://", labels=["negative", "positive"])
    >>> Orchestrator(q, models_dir="models").run_once().reason
    'no labels yet: label at least 5 texts of each of negative, positive'
    """

    def __init__(
        self,
        queue: Queue,
        models_dir: str | Path = "models",
        featurizer: str = features.DEFAULT_FEATURIZER,
        strategy: str = "entropy",
        explore: float = 0.0,
        estimator: Any = None,
        cv_folds: int = 5,
        keep: int | None = None,
        random_state: int = 0,
        aggregate: str = "mean",
        cold_start: bool = True,
        metric: str | None = None,
        pool_size: int | None = subpool.DEFAULT_POOL_SIZE,
        top: int = subpool.DEFAULT_TOP,
        dask: Any = None,
    ):
        strategies.check_strategy(strategy, queue.multi_label)
        self.pool_size = subpool.check_pool_size(pool_size)
        self.top = subpool.check_top(top)
        default_metric = models.MULTILABEL_NAME_METRIC if queue.multi_label else models.NAME_METRIC
        self.metric = check_metric(metric or default_metric, queue.multi_label)
        if aggregate not in strategies.AGGREGATES:
            raise ValueError(
                f"aggregate must be one of {list(strategies.AGGREGATES)}, got {aggregate!r}."
            )
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore is a share of the queue, between 0 and 1; got {explore}.")
        if cv_folds < 2:
            raise ValueError(f"cv_folds must be at least 2, got {cv_folds}.")
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}.")
        self.queue = queue
        self.models_dir = Path(models_dir)
        self.featurizer = featurizer
        self.strategy = strategy
        self.explore = explore
        self.estimator = estimator if estimator is not None else models.default_estimator()
        self.cv_folds = cv_folds
        self.keep = keep
        self.random_state = random_state
        self.aggregate = aggregate
        self.cold_start = cold_start
        self.multi_label = queue.multi_label
        self._template = features.make_featurizer(featurizer)  # fails early on a bad spec
        self._cached = features.is_cacheable(featurizer)
        if dask is not None and not self._cached and strategy in ("committee", "density"):
            # both need the pool's TF-IDF features here; embeddings come back from the workers
            raise ValueError(
                f"--dask with the {strategy} strategy needs a transformer featurizer (the "
                "pool's TF-IDF features stay on the workers); use least-confidence, margin, "
                "entropy or random, or run without --dask."
            )
        self._cluster = Cluster(dask) if dask is not None else None  # fails early if unreachable
        self._embedder = (ClusterEmbedder(self._template, self._cluster)
                          if self._cluster is not None and self._cached else self._template)

    def close(self) -> None:
        """Disconnect from the Dask scheduler, if this orchestrator connected to one."""
        if self._cluster is not None:
            self._cluster.close()

    # -- one cycle --------------------------------------------------------------------------

    def run_once(self) -> Run:
        """Train, cross-validate, save, score the unlabelled items and reorder the queue.

        Too few labels or a single class is not an error: no model is saved and the run
        records the reason; the unlabelled texts are ordered for diversity (a cold-start run)
        unless ``cold_start`` is off. Any other failure is recorded in the run
        row and raised.
        """
        started = utcnow()
        run_id = self.queue.start_run(featurizer=self.featurizer, strategy=self.strategy)
        run = Run(status="running", run_id=run_id, started_at=started)
        try:
            labelled, audited = self._read_labels(run)
            try:
                y = self._targets(labelled["label"], run)
            except NotEnoughLabels as exc:
                return self._finish_without_model(run, labelled, str(exc))
            pipeline, X = self._train_and_save(run, labelled, audited, y)
            run.n_reranked = self._rerank(run, pipeline, X, y, run.timings)
            return self._finish_trained(run)
        except BaseException as exc:
            self._record_failure(run, exc)
            raise

    def _read_labels(self, run: Run) -> tuple[Any, Any]:
        """The labels that train and those that test (the audit sample), as two frames."""
        with _timed(run.timings, "read_labels"):
            # final labels only (disagreements await review); audit labels test, never train
            labelled, audited = audit.split(self.queue.labelled(audit_column=True))
            run.awaiting_review = self.queue.awaiting_review()
        if run.awaiting_review:
            log.info("run %s: %d items left out, awaiting review", run.run_id,
                     run.awaiting_review)
        run.n_labels = len(labelled)
        return labelled, audited

    def _finish_without_model(self, run: Run, labelled: Any, reason: str) -> Run:
        """No model can train yet: order the queue for diversity (a cold-start run) unless
        ``cold_start`` is off (a skipped run), and close the run with ``reason``."""
        log.info("run %s skipped: %s", run.run_id, reason)
        run.status, run.reason = "skipped", reason
        cold = None
        if self.cold_start:  # no model yet: one text per cluster, boosts first
            with _timed(run.timings, "cold_start"):
                cold = coldstart.order_queue(
                    self.queue, self.featurizer, labelled, run.run_id, self.random_state,
                    embedder=self._template if self._cached else None)
        if cold:
            run.status, run.n_reranked = coldstart.COLD_START, cold["n_reranked"]
        run.finished_at = utcnow()
        self.queue.finish_run(
            run.run_id,
            status=run.status,
            reason=reason,
            n_labels=run.n_labels,
            metrics={"awaiting_review": run.awaiting_review,
                     **({"cold_start": cold} if cold else {})},
            timings=jsonable(run.timings),
            **({"strategy": coldstart.COLD_START, "n_reranked": run.n_reranked} if cold else {}),
        )
        return run

    def _train_and_save(self, run: Run, labelled: Any, audited: Any,
                        y: np.ndarray) -> tuple[Pipeline, Any]:
        """Cross-validate, fit on every label, score on the audit sample and the stop set, and
        save the model; returns the pipeline and the labelled texts' features."""
        timings = run.timings
        with _timed(timings, "featurize"):
            X = self._features(labelled["item_id"], labelled["text"])
        with _timed(timings, "cross_validate"):
            if self.multi_label:
                run.metrics, confusion, auc = self._cross_validate_multilabel(
                    X, y, run.trained_labels)
            else:
                run.metrics, confusion = self._cross_validate(X, y, self.queue.labels)
                auc = None  # per-label AUC: multi-label only
        log.info("run %s: %d labels, CV %s", run.run_id, run.n_labels, _fmt(run.metrics))
        with _timed(timings, "fit"):
            pipeline = self._fit(labelled["text"], X, y)
        with _timed(timings, "audit"):  # the honest score, on the audit sample
            run.metrics.update(self._audit(pipeline, audited, run))
        with _timed(timings, "stop_set"):
            stop = self._stop_set(pipeline, run)
            run.metrics.update(stop.metrics)  # kappa vs the previous run (stopping.py)
        with _timed(timings, "save"):
            info = self._model_info(run, y, confusion, auc, stop)
            run.model_file = models.save_model(pipeline, self.models_dir, run.metrics, info,
                                               metric=self.metric)
            if self.keep:
                models.prune(self.models_dir, self.keep)
        log.info("run %s: saved %s", run.run_id, run.model_file)
        return pipeline, X

    def _model_info(self, run: Run, y: np.ndarray, confusion: Any, auc: Any,
                    stop: stopping.StopSetResult) -> dict[str, Any]:
        """The model file's sidecar: how it was trained and what it scored."""
        labels = self.queue.labels
        info = {
            "run_id": run.run_id,
            "n_labels": run.n_labels,
            "awaiting_review": run.awaiting_review,
            "label_counts": run.label_counts,
            "labels": labels,
            "featurizer": self.featurizer,
            "strategy": self.strategy,
            "explore": self.explore,
            "estimator": repr(self.estimator),
            "cv_folds": self.cv_folds,
            # out-of-fold: rows are true labels, columns predictions, in `labels` order
            # (multi-label: per trained label, [[tn, fp], [fn, tp]])
            "confusion_matrix": confusion,
            "timings": dict(run.timings),
            "multi_label": self.multi_label,
            "stop_set": stop.sidecar,
        }
        info["metric"] = self.metric
        if not self.multi_label and len(run.label_counts) == 2:  # average precision's
            info["positive_class"] = positive_class(y, labels)
        if self.multi_label:
            info.update(
                aggregate=self.aggregate,
                trained_labels=run.trained_labels,
                untrained_labels=run.untrained_labels,
                # None where a label's every fold held one class only (AUC undefined)
                roc_auc_per_label=auc,
                threshold=models.THRESHOLD,
                guess_proba="joint probability of the guessed set: product over "
                            "trained labels of max(p, 1 - p)",
            )
        return info

    def _finish_trained(self, run: Run) -> Run:
        """Close a trained run: the sidecar and the run row get the reorder's figures."""
        timings = run.timings
        models.update_info(run.model_file, timings=timings, n_reranked=run.n_reranked,
                           pool=run.pool, cluster=run.cluster)
        run.status, run.finished_at = "trained", utcnow()
        self.queue.finish_run(
            run.run_id,
            status=run.status,
            n_labels=run.n_labels,
            # beside the scores: how many items the model could not learn from yet
            metrics={**jsonable(run.metrics), "awaiting_review": run.awaiting_review,
                     "pool": run.pool, **({"cluster": run.cluster} if run.cluster else {})},
            model_file=str(run.model_file),
            timings=jsonable(timings),
            n_reranked=run.n_reranked,
        )
        log.info("run %s: reordered %d items; timings %s", run.run_id, run.n_reranked,
                 _fmt(timings))
        return run

    def _record_failure(self, run: Run, exc: BaseException) -> None:
        """Close a run that raised, with the error as its reason, if the database lets us."""
        run.status, run.reason = "failed", f"{type(exc).__name__}: {exc}"
        try:
            self.queue.finish_run(run.run_id, status=run.status, reason=run.reason,
                                  n_labels=run.n_labels, timings=jsonable(run.timings))
        except Exception:  # the database may be what failed; the raise below says why
            log.debug("could not record the failure of run %s", run.run_id, exc_info=True)

    # -- the loop ---------------------------------------------------------------------------

    def run_forever(
        self,
        interval_seconds: float = 60,
        min_new_labels: int = 10,
        stop_event: threading.Event | None = None,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 60,
    ) -> None:
        """Run a cycle at start, then every ``interval_seconds`` once ``min_new_labels`` new
        labels (or new items) arrived, until ``stop_event`` is set.

        A cycle in progress always finishes; the stop event is read between cycles and while
        waiting. Database errors are retried with exponential back-off; any other error is
        logged (and recorded in the run row) and the loop goes on.
        """
        stop = stop_event or threading.Event()
        seen: tuple[int, int] | None = None  # (label events, items) at the last cycle
        backoff = backoff_seconds
        while not stop.is_set():
            try:
                now_seen = (self.queue.count_label_events(), self.queue.progress().total)
                due = seen is None or now_seen[0] - seen[0] >= min_new_labels
                if due or now_seen[1] != seen[1]:
                    # A failed cycle counts as seen too: it is retried when new labels arrive,
                    # not every interval.
                    seen = now_seen
                    self.run_once()
                else:
                    log.debug("%d new labels since the last cycle; waiting for %d",
                              now_seen[0] - seen[0], min_new_labels)
                backoff = backoff_seconds
            except TRANSIENT_ERRORS as exc:
                seen = None  # retry the cycle as soon as the database is back
                log.warning("database error, retrying in %.1f s: %s", backoff, first_line(exc))
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff_seconds)
                continue
            except Exception:
                log.exception("cycle failed; it is tried again when new labels arrive")
            stop.wait(interval_seconds)

    # -- parts of a cycle -------------------------------------------------------------------

    def check_labels(self, counts: dict[str, int]) -> None:
        """Refuse to train before every labelled class can fill each cross-validation fold.

        Raises
        ------
        NotEnoughLabels
            No labels, a single class, or a class with fewer labels than ``cv_folds``; the
            message says what to label next.
        """
        need = self.cv_folds
        label_set = self.queue.labels
        names = ", ".join(label_set) if label_set else "two labels"
        present = {k: n for k, n in counts.items() if n > 0}
        if not present:
            raise NotEnoughLabels(f"no labels yet: label at least {need} texts of each of {names}")
        if len(present) < 2:
            (only, n), = present.items()
            raise NotEnoughLabels(
                f"only one class labelled so far ({only}: {n}); label at least {need} texts "
                "of another class"
            )
        short = {k: n for k, n in present.items() if n < need}
        if short:
            listed = ", ".join(f"{k}: {n}" for k, n in short.items())
            raise NotEnoughLabels(
                f"too few labels for {need}-fold cross-validation ({listed}); need {need} each"
            )

    def check_label_sets(self, Y: np.ndarray) -> list[int]:
        """The labels (column indices of ``Y``) a multi-label cycle can train.

        A label is trained once at least ``cv_folds`` texts carry it and ``cv_folds`` do not:
        then every fold's training part holds both answers for it (its model is never a
        constant), as a single-label class needs ``cv_folds`` labels. Labels short of that are
        left out of this cycle (the caller logs and records them); the cycle waits only while no
        label qualifies.

        Parameters
        ----------
        Y : ndarray of shape (n_texts, n_labels)
            The 0/1 matrix of final answers, columns in project label order.

        Raises
        ------
        NotEnoughLabels
            No label can be trained yet; the message gives each label's counts.
        """
        need = self.cv_folds
        positive = Y.sum(axis=0).astype(int)
        negative = Y.shape[0] - positive
        trainable = np.flatnonzero((positive >= need) & (negative >= need)).tolist()
        if trainable:
            return trainable
        names = self.queue.labels
        if Y.shape[0] == 0:
            raise NotEnoughLabels(
                f"no labels yet: for each of {', '.join(names)}, label at least {need} texts that "
                f"carry it and {need} that do not"
            )
        listed = ", ".join(
            f"{name}: {p} with, {n} without" for name, p, n in zip(names, positive, negative)
        )
        raise NotEnoughLabels(
            f"no label can be learnt yet ({listed}); a label is trained once {need} texts carry "
            f"it and {need} do not"
        )

    def _targets(self, answers: Any, run: Run) -> np.ndarray:
        """``y`` for this cycle, with the run's label counts (and, multi-label, which labels are
        trained); raises NotEnoughLabels when the cycle must wait."""
        label_set = self.queue.labels
        if not self.multi_label:
            y = answers.to_numpy(dtype=object)
            run.label_counts = _label_counts(y, label_set)
            self.check_labels(run.label_counts)
            return y
        Y = labelsets.indicator(answers.tolist(), label_set)
        positive = Y.sum(axis=0).astype(int)
        # texts carrying each label (zeros kept: they say why a label is not trained)
        run.label_counts = dict(zip(label_set, positive.tolist()))
        trained = self.check_label_sets(Y)
        run.trained_labels = [label_set[j] for j in trained]
        run.untrained_labels = {
            label_set[j]: {"positive": int(positive[j]), "negative": int(len(Y) - positive[j])}
            for j in range(len(label_set)) if j not in trained
        }
        if run.untrained_labels:
            log.info(
                "run %s: training %s; leaving out %s until %d texts carry each and %d do not",
                run.run_id, ", ".join(run.trained_labels),
                ", ".join(f"{k} ({v['positive']} with, {v['negative']} without)"
                          for k, v in run.untrained_labels.items()),
                self.cv_folds, self.cv_folds,
            )
        return Y[:, trained]

    def _audit(self, pipeline: Pipeline, audited: Any, run: Run) -> dict:
        """The new model's score on the audit labels, with its interval (widgetal/audit.py)."""
        if audited.empty:
            return audit.evaluate(None, None, [], [], self.multi_label)
        X = self._features(audited["item_id"], audited["text"])
        model = pipeline.named_steps["classifier"] if self._cached else pipeline
        return audit.evaluate(model, X, audited["label"].tolist(), run.trained_labels,
                              self.multi_label, models.THRESHOLD, seed=run.run_id)

    def _features(self, item_ids: Any, texts: Any) -> Any:
        """Cached embeddings for transformer featurizers; raw texts for TF-IDF (fitted in CV)."""
        if self._cached:
            return features.embed_cached(
                self.queue, self.featurizer, list(item_ids), list(texts), embedder=self._embedder
            )
        return np.asarray(texts, dtype=object)

    def _model(self, n_labels: int) -> Pipeline | Any:
        """What cross-validation fits: the whole pipeline for TF-IDF (no vocabulary leaks from
        test folds), the classifier alone for embeddings (precomputed, nothing to learn)."""
        classifier = (
            models.multilabel_classifier(self.estimator) if self.multi_label
            else clone(self.estimator)
        )
        if self._cached:
            return classifier
        featurizer = clone(self._template)
        if n_labels < _FEW_LABELS and "min_df" in featurizer.get_params():
            # A handful of texts may share no term twice; keep every term rather than none.
            featurizer.set_params(min_df=1)
        return Pipeline([("features", featurizer), ("classifier", classifier)])

    def _cross_validate(
        self, X: Any, y: np.ndarray, label_set: list[str]
    ) -> tuple[dict[str, float], list[list[int]]]:
        """Metrics averaged over stratified folds, and the out-of-fold confusion matrix (from
        the fold models' own predictions, so no second round of fitting)."""
        classes = np.unique(y)
        positive = positive_class(y, label_set) if len(classes) == 2 else None

        def precision_recall_area(model, X_test, y_test):  # simulate's definition (metrics.py)
            proba = model.predict_proba(X_test)
            return average_precision(y_test, proba, list(model.classes_), positive)

        scoring = {
            "accuracy": "accuracy",
            "f1_macro": "f1_macro",
            "roc_auc": "roc_auc" if len(classes) == 2 else "roc_auc_ovr",
            "average_precision": precision_recall_area,
        }
        cv = StratifiedKFold(n_splits=self.cv_folds, shuffle=True, random_state=self.random_state)
        model = self._model(len(y))
        result = cross_validate(
            model, X, y, cv=cv, scoring=scoring, error_score="raise",
            return_estimator=True, return_indices=True,
        )
        predicted = np.empty(len(y), dtype=object)
        for fitted, test in zip(result["estimator"], result["indices"]["test"]):
            predicted[test] = fitted.predict(X[test])
        labels = list(label_set) or sorted(set(y))
        confusion = confusion_matrix(y, predicted.astype(y.dtype), labels=labels).tolist()
        metrics: dict[str, float] = {}
        for name in scoring:
            values = np.asarray(result[f"test_{name}"], dtype=float)
            defined = np.isfinite(values).any()
            metrics[name] = float(np.nanmean(values)) if defined else float("nan")
            metrics[f"{name}_std"] = float(np.nanstd(values)) if defined else float("nan")
        metrics["cv_folds"] = self.cv_folds
        return metrics, confusion

    def _cross_validate_multilabel(
        self, X: Any, Y: np.ndarray, label_names: list[str]
    ) -> tuple[dict[str, float], dict[str, list[list[int]]], dict[str, float | None]]:
        """Multi-label scores averaged over plain ``KFold`` folds (``StratifiedKFold`` needs one
        class per text), the out-of-fold confusion matrix of each label, and each label's ROC AUC
        averaged over the folds where it is defined.

        A fold whose test part holds one answer only for a label (no text carries it, or all
        do) has no ROC AUC for that label: it is skipped there, counted in
        ``roc_auc_skipped`` and logged; the other scores are defined in every fold.
        """
        cv = KFold(n_splits=self.cv_folds, shuffle=True, random_state=self.random_state)
        oof = np.zeros(Y.shape, dtype=float)
        folds: list[dict[str, float]] = []
        per_label: dict[str, list[float]] = {name: [] for name in label_names}
        for train, test in cv.split(X):
            model = self._model(len(Y)).fit(X[train], Y[train])
            oof[test] = model.predict_proba(X[test])
            scores, auc = models.multilabel_metrics(Y[test], oof[test], label_names)
            folds.append(scores)
            for name, value in auc.items():
                if value is not None:
                    per_label[name].append(value)
        skipped = len(folds) * len(label_names) - sum(map(len, per_label.values()))
        if skipped:
            log.info(
                "ROC AUC undefined (one answer only in the test fold) for %d of %d "
                "label-folds, skipped: %s", skipped, len(folds) * len(label_names),
                ", ".join(f"{k} in {len(folds) - len(v)} folds"
                          for k, v in per_label.items() if len(v) < len(folds)),
            )
        metrics: dict[str, float] = {}
        for name in ("f1_micro", "f1_macro", "subset_accuracy", "hamming_loss", "roc_auc"):
            values = np.asarray([fold[name] for fold in folds], dtype=float)
            defined = np.isfinite(values).any()
            metrics[name] = float(np.nanmean(values)) if defined else float("nan")
            metrics[f"{name}_std"] = float(np.nanstd(values)) if defined else float("nan")
        metrics["roc_auc_skipped"] = float(skipped)
        metrics["cv_folds"] = self.cv_folds
        predicted = (oof >= models.THRESHOLD).astype(int)
        confusion = dict(zip(label_names, multilabel_confusion_matrix(Y, predicted).tolist()))
        auc_per_label = {k: float(np.mean(v)) if v else None for k, v in per_label.items()}
        return metrics, confusion, auc_per_label

    def _fit(self, texts: Any, X: Any, y: np.ndarray) -> Pipeline:
        model = self._model(len(y)).fit(X, y)
        if self._cached:
            # The embedder learns nothing, so the saved pipeline is it plus the fitted classifier.
            return Pipeline([("features", self._template), ("classifier", model)])
        return model

    def _stop_set(self, pipeline: Pipeline, run: Run) -> stopping.StopSetResult:
        """This model's predictions on the project's fixed stop set, compared with the newest
        saved model's (the stop signal's kappa, :mod:`widgetal.stopping`)."""
        ids = stopping.stop_set_ids(
            self.models_dir,
            lambda: subpool.sample_undone_ids(  # a window of random keys in a large project
                self.queue, self.pool_size, stopping.STOP_SET_SIZE,
                np.random.default_rng([self.random_state, _POOL_STREAM])),
            seed=self.random_state)
        items = self.queue.items(ids)
        predictions: dict[int, Any] = {}
        if items:
            X = self._features([i.item_id for i in items], [i.text for i in items])
            model = pipeline.named_steps["classifier"] if self._cached else pipeline
            if self.multi_label:
                names = np.asarray(run.trained_labels)
                predicted = [names[row >= models.THRESHOLD].tolist()
                             for row in model.predict_proba(X)]
            else:
                predicted = model.predict(X).tolist()
            predictions = {i.item_id: p for i, p in zip(items, predicted)}
        return stopping.compare(self.models_dir, predictions, self.queue.labels,
                                multi_label=self.multi_label)

    def _rerank(
        self, run: Run, pipeline: Pipeline, X_labelled: Any, y: np.ndarray, timings: dict
    ) -> int:
        run_id = run.run_id
        with _timed(timings, "read_pool"):
            # in id order, not queue order: the ranking depends on the labels and the seed only;
            # the subpool's own generator leaves the ranking's draws as a full cycle's
            pool, run.pool = subpool.read_subpool(
                self.queue, self.pool_size, self.top,
                np.random.default_rng([self.random_state, run_id, _POOL_STREAM]))
        if pool.empty:
            log.info("run %s: every item is labelled; nothing to reorder", run_id)
            return 0
        rng = np.random.default_rng([self.random_state, run_id])
        classifier = pipeline.named_steps["classifier"]
        if self._cluster is not None:
            run.cluster = self._cluster.describe()
        if self._cluster is None and self.strategy in _ROW_WISE:
            # batch by batch; the ranking then reads the probabilities (X_pool: row numbers)
            classifier, X_pool = self._score_in_batches(pipeline, pool, timings)
            Xl = None
        else:
            with _timed(timings, "featurize_pool"):
                if self._cached:  # on the workers too with dask= (ClusterEmbedder)
                    X_pool = self._features(pool["item_id"], pool["text"])
                    Xl = X_labelled
                elif self._cluster is not None:  # the workers featurize and score: texts go out
                    X_pool, Xl = pool["text"].to_numpy(dtype=object), None
                    classifier = ClusterModel(pipeline, self._cluster)
                else:
                    vectorizer = pipeline.named_steps["features"]
                    X_pool = vectorizer.transform(pool["text"].tolist())
                    committee = self.strategy == "committee"
                    Xl = vectorizer.transform(list(X_labelled)) if committee else None
        with _timed(timings, "score"):
            # One prediction serves the strategy and the guesses the app shows.
            try:
                proba, scores = ranking.rank_pool(
                    self.strategy,
                    classifier,
                    X_pool,
                    rng=rng,
                    explore=self.explore,
                    multi_label=self.multi_label,
                    aggregate=self.aggregate,
                    X_labelled=Xl,
                    y_labelled=y,
                )
            except EmptyPool:
                return 0
            if self.multi_label:
                guesses = label_set_guesses(proba, run.trained_labels)
            else:
                guesses = _guesses(classifier.classes_, proba)
        log.info("run %s: reordering %d items", run_id, len(pool))
        with _timed(timings, "reorder"):
            return self.queue.reorder(pool["item_id"].to_numpy(), scores, ranked_by=run_id,
                                      guesses=guesses)

    def _score_in_batches(self, pipeline: Pipeline, pool: Any,
                          timings: dict) -> tuple[_Scored, np.ndarray]:
        """The pool's probabilities, SCORE_BATCH texts at a time (featurizing counted in
        ``featurize_pool``, predicting in ``score``), as the estimator the ranking asks."""
        classifier = pipeline.named_steps["classifier"]
        ids, texts = pool["item_id"].to_numpy(), pool["text"].to_numpy(dtype=object)
        parts = []
        for start in range(0, len(texts), SCORE_BATCH):
            part = slice(start, start + SCORE_BATCH)
            with _timed(timings, "featurize_pool"):
                if self._cached:
                    X = self._features(ids[part], texts[part])
                else:
                    X = pipeline.named_steps["features"].transform(texts[part].tolist())
            with _timed(timings, "score"):
                parts.append(np.asarray(classifier.predict_proba(X)))
        return _Scored(classifier.classes_, np.concatenate(parts)), np.arange(len(texts))


class _Scored:
    """Probabilities already computed, in the shape of a fitted classifier: ``predict_proba``
    of row numbers gives those rows (what :func:`widgetal.ranking.rank_pool` asks)."""

    def __init__(self, classes: Any, proba: np.ndarray):
        self.classes_, self.proba = classes, proba

    def predict_proba(self, rows: Any) -> np.ndarray:
        return self.proba[rows]


# -- the process around the loop ------------------------------------------------------------


def wait_for_database(
    url: str,
    timeout_seconds: float | None = None,
    stop_event: threading.Event | None = None,
    max_backoff_seconds: float = 30,
) -> Queue | None:
    """Open the queue, retrying with back-off while the database is not up yet.

    Returns None if ``stop_event`` is set while waiting.

    Raises
    ------
    DatabaseUnavailable
        If it is still unreachable after ``timeout_seconds``.
    """
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    backoff = 0.5
    while True:
        try:
            return Queue(url)
        except TRANSIENT_ERRORS as exc:
            if deadline is not None and time.monotonic() + backoff > deadline:
                raise DatabaseUnavailable(
                    f"{first_line(exc)} (gave up after {timeout_seconds:.0f} s)"
                ) from exc
            log.warning("waiting for the database: %s", first_line(exc))
        stop = stop_event or threading.Event()
        if stop.wait(backoff):
            return None
        backoff = min(backoff * 2, max_backoff_seconds)


def orchestrate(
    url: str,
    *,
    once: bool = False,
    interval_seconds: float = 60,
    min_new_labels: int = 10,
    models_dir: str | Path = "models",
    featurizer: str = features.DEFAULT_FEATURIZER,
    strategy: str = "entropy",
    explore: float = 0.0,
    keep: int | None = None,
    aggregate: str = "mean",
    metric: str | None = None,
    pool_size: int | None = subpool.DEFAULT_POOL_SIZE,
    top: int = subpool.DEFAULT_TOP,
    dask: Any = None,
    wait_seconds: float | None = None,
    stop_event: threading.Event | None = None,
) -> Run | None:
    """What ``widgetal orchestrate`` and ``orchestrator.py`` do: wait for the database, then one
    cycle (``once``) or the loop until SIGTERM / SIGINT.

    The first signal lets the cycle in progress finish and then stops; a second one abandons
    it (the reorder is one transaction and model files are renamed into place, so nothing is
    left half-written).
    """
    stop = stop_event or threading.Event()
    with signals.on_stop(_stop_handler(stop)):
        q = wait_for_database(url, timeout_seconds=wait_seconds, stop_event=stop)
        if q is None:
            return None
        orch = Orchestrator(
            q,
            models_dir=models_dir,
            featurizer=featurizer,
            strategy=strategy,
            explore=explore,
            keep=keep,
            aggregate=aggregate,
            metric=metric,
            pool_size=pool_size,
            top=top,
            dask=dask,
        )
        log.info("orchestrating %r: featurizer=%s strategy=%s explore=%s%s models in %s",
                 q, featurizer, strategy, explore,
                 f" multi-label aggregate={aggregate}" if q.multi_label else "",
                 Path(models_dir).resolve())
        try:
            if once:
                return orch.run_once()
            orch.run_forever(interval_seconds=interval_seconds, min_new_labels=min_new_labels,
                             stop_event=stop)
        finally:
            orch.close()
        log.info("stopped")
        return None


def _stop_handler(stop: threading.Event):
    """The first signal stops after the cycle in progress; a second one abandons it."""
    def handler(signum, _frame):
        if stop.is_set():
            log.warning("second %s: abandoning the cycle", signal.Signals(signum).name)
            raise SystemExit(128 + signum)
        log.info("%s: stopping after the current cycle", signal.Signals(signum).name)
        stop.set()

    return handler


def _guesses(classes: Any, proba: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Each row's likeliest label and its probability: what the labelling app shows."""
    best = np.asarray(proba).argmax(axis=1)
    return np.asarray(classes)[best].tolist(), np.asarray(proba)[np.arange(best.size), best]


def label_set_guesses(
    proba: np.ndarray, label_names: list[str], threshold: float = models.THRESHOLD
) -> tuple[list[str], np.ndarray]:
    """Each row's guessed label set and the probability that the whole set is right.

    The set holds the labels whose probability reaches ``threshold``, as a canonical
    :mod:`widgetal.labelsets` string (``label_names`` in project order). Its probability is
    ``prod_j max(p_j, 1 - p_j)``: the chance that every one of the label decisions is right if
    the model's labels are independent, the multi-label counterpart of a single-label guess's
    probability (it falls as labels are added, as subset accuracy does).

    Examples
    --------
    >>> labels, p = label_set_guesses(np.array([[0.9, 0.2], [0.4, 0.5]]), ["a", "b"])
    >>> labels, p.round(2).tolist()
    (['["a"]', '["b"]'], [0.72, 0.3])
    """
    proba = np.asarray(proba, dtype=float)
    sets = labelsets.from_indicator(proba >= threshold, label_names)
    return sets, np.maximum(proba, 1.0 - proba).prod(axis=1)


def _label_counts(y: np.ndarray, label_set: list[str]) -> dict[str, int]:
    counts = Counter(y.tolist())
    ordered = {name: int(counts.pop(name, 0)) for name in label_set}
    ordered.update({str(k): int(v) for k, v in counts.items()})
    return {k: v for k, v in ordered.items() if v > 0}


class _timed:
    """Adds the seconds a block took to ``timings[name]``."""

    def __init__(self, timings: dict[str, float], name: str):
        self.timings, self.name = timings, name

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        elapsed = time.perf_counter() - self.start
        self.timings[self.name] = round(self.timings.get(self.name, 0.0) + elapsed, 4)
        return False


def _fmt(values: dict) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


__all__ = [
    "Orchestrator", "Run", "orchestrate", "wait_for_database", "label_set_guesses",
    "TRANSIENT_ERRORS",
]
