"""Replay a labelled file through the orchestrator's featurizers, estimator and strategies.

Before a team pays for labels it wants to know whether active learning pays off on its data, and
with which strategy. ``simulate`` holds out a test split, starts every strategy from the same
random seed set (every class in it), and then, round after round, trains, scores the pool,
"labels" the next batch by revealing the known labels, and records the test score. Features are
computed once and shared by every strategy and repeat; only the classifier is refitted.

Each round fits the orchestrator's default model (:func:`widgetal.models.default_estimator`)
on the labels so far and ranks the rest with :func:`replay_round`, that is with
:func:`widgetal.ranking.rank_pool`, the orchestrator's own ranking step, with the same strategy,
exploration share and committee. Given the same features, labels and seed it picks what the
orchestrator's cycle would put first. (The features differ in one way: TF-IDF is fitted once on
the pool's texts here, by the orchestrator on the labelled texts of each cycle.) The learning
curve is drawn in ``metric`` (:data:`widgetal.metrics.METRICS`); every score is kept in
``runs``.

A multi-label file (``multi_label=True``: each label cell a set of labels) is replayed the
same way with the orchestrator's one-vs-rest model (:func:`widgetal.models.multilabel_classifier`),
its per-label uncertainty (``aggregate``) and its scores
(:func:`widgetal.models.multilabel_metrics`), with micro-F1 as the default headline.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone

from . import labelsets
from . import pool as subpool
from .errors import InvalidInput, NotEnoughLabels
from .io import read_table
from .metrics import NAMES, check_metric, classification_scores, positive_class
from .models import default_estimator, multilabel_classifier, multilabel_metrics
from .ranking import rank_pool
from .strategies import AGGREGATES, SHARPNESS_PER_LABEL, STRATEGIES, check_strategy, top_n

#: What ``widgetal simulate`` compares when no ``--strategies`` are given.
DEFAULT_STRATEGIES = ("random", "least-confidence", "margin", "entropy", "committee", "density")
#: The same for a multi-label file (the committee votes for one class per text).
DEFAULT_MULTILABEL_STRATEGIES = ("random", "least-confidence", "margin", "entropy", "density")
#: Uncertainty measures that put a two-class pool in the same strict order (all are monotone
#: in min p).
_SAME_FOR_TWO = {"least-confidence", "margin", "entropy"}
#: Margin is twice least-confidence for two classes (1 - |2p - 1| = 2 min(p, 1 - p)), and per
#: label with either aggregate: being proportional, the two are also drawn alike by
#: :func:`widgetal.strategies.power_sample` from the same generator. Entropy is not
#: proportional to them, so once the queue is drawn it is a curve of its own.
_PROPORTIONAL = {"least-confidence", "margin"}
#: The share of the full-data score a strategy must reach; "labels to 99%" in the table.
TARGET_SHARE = 0.99

@dataclass
class SimulationResult:
    """Learning curves of one simulation, and the arithmetic the summary table shows.

    Attributes
    ----------
    runs : DataFrame
        One row per (strategy, repeat, round): ``strategy, repeat, n_labels`` and one column per
        metric.
    metric : str
        The headline metric: ``metric`` as asked, else ``roc_auc`` for two classes,
        ``f1_macro`` for more, ``f1_micro`` for a multi-label file.
    full_score : float
        The headline metric of the estimator trained on the whole pool.
    settings : dict
        What was simulated (featurizer, batch, start, sizes, seed, ...).
    """

    runs: pd.DataFrame
    metric: str
    full_score: float
    settings: dict = field(default_factory=dict)

    @property
    def curves(self) -> pd.DataFrame:
        """Mean and standard deviation over repeats per strategy and number of labels."""
        metrics = [c for c in self.runs.columns if c not in ("strategy", "repeat", "n_labels")]
        grouped = self.runs.groupby(["strategy", "n_labels"], sort=False)[metrics]
        out = grouped.agg(["mean", "std"])
        out.columns = [f"{m}_{stat}" for m, stat in out.columns]
        out["repeats"] = grouped.size()
        return out.reset_index()

    def summary(self, share: float = TARGET_SHARE) -> pd.DataFrame:
        """Per strategy: labels needed to reach ``share`` of the full-data score, saving vs random.

        See :func:`labels_to_reach` and :func:`saving_vs_random` for the arithmetic.
        """
        curves = self.curves
        target = share * self.full_score
        rows = []
        for name, curve in curves.groupby("strategy", sort=False):
            rows.append(
                {
                    "strategy": name,
                    "labels_to_target": labels_to_reach(
                        curve["n_labels"].to_numpy(),
                        curve[f"{self.metric}_mean"].to_numpy(),
                        target,
                    ),
                    f"final_{self.metric}": float(curve[f"{self.metric}_mean"].iloc[-1]),
                    f"best_{self.metric}": float(curve[f"{self.metric}_mean"].max()),
                }
            )
        table = pd.DataFrame(rows)
        base = table.loc[table["strategy"] == "random", "labels_to_target"]
        baseline = float(base.iloc[0]) if len(base) else float("nan")
        table["saving_vs_random_pct"] = [
            saving_vs_random(n, baseline) for n in table["labels_to_target"]
        ]
        table.attrs.update(metric=self.metric, full_score=self.full_score, target=target)
        return table

    def save(self, out: str | Path) -> dict[str, Path]:
        """Write ``curves.csv``, ``summary.csv`` and ``learning_curves.png`` into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = {
            "curves": out / "curves.csv",
            "summary": out / "summary.csv",
            "plot": out / "learning_curves.png",
        }
        self.curves.round(5).to_csv(paths["curves"], index=False)
        summary = self.summary()
        summary.insert(1, "full_data_score", round(self.full_score, 5))
        summary.round(5).to_csv(paths["summary"], index=False)
        plot_curves(self, paths["plot"])
        return paths


def simulate(
    texts: Sequence[str],
    labels: Sequence[Any],
    *,
    strategies: Sequence[str] | None = None,
    featurizer: str = "tfidf-char",
    estimator: Any = None,
    batch: int = 100,
    start: int = 100,
    test_frac: float = 0.1,
    repeats: int = 3,
    seed: int = 123,
    test_index: Sequence[int] | None = None,
    max_labels: int | None = None,
    explore: float = 0.0,
    sharpness_per_label: float | None = SHARPNESS_PER_LABEL,
    n_members: int = 5,
    features: Any = None,
    progress: bool = True,
    multi_label: bool = False,
    label_set: Sequence[str] | None = None,
    label_sep: str | None = None,
    aggregate: str = "mean",
    metric: str | None = None,
    pool_size: int | None = None,
    top: int | None = None,
    n_jobs: int = 1,
) -> SimulationResult:
    """Simulate active learning on labelled texts and return the learning curves.

    Parameters
    ----------
    texts, labels : sequences of the same length
        The labelled data. Rows with an empty label are dropped. With ``multi_label``, each
        label is a set: a list, a JSON list (``["billing","urgent"]``, ``[]`` for none) or
        labels joined by ``label_sep``, read by :func:`widgetal.labelsets.parse`.
    strategies : sequence of str, optional
        Keys of :data:`widgetal.strategies.STRATEGIES`; include ``"random"`` for the savings.
        Default :data:`DEFAULT_STRATEGIES` (multi-label: :data:`DEFAULT_MULTILABEL_STRATEGIES`).
    featurizer : str
        A :func:`widgetal.features.make_featurizer` spec, computed once for all rows: TF-IDF is
        fitted on the pool texts (never the test texts), transformer embeddings are stateless.
    estimator : sklearn classifier, optional
        Cloned every round; default :func:`widgetal.models.default_estimator`, the
        orchestrator's.
    batch, start : int
        Labels per round, and the size of the random seed set (which holds every class).
    test_frac : float
        Held-out share, drawn as ``DataFrame.sample(frac=test_frac, random_state=seed)`` (the
        article's split); stratified instead if that draw would miss a class.
    repeats : int
        Independent seed sets and random draws; the test split stays the same.
    seed : int
        Seeds the split and every repeat (repeat ``r`` uses ``seed + r``).
    test_index : sequence of int, optional
        Positions of the test rows, overriding ``test_frac``.
    max_labels : int, optional
        Stop each curve after this many labels (quick looks; the table may then say "not
        reached").
    explore : float
        Share of each batch drawn at random by non-random strategies (see ``mix_random``), as
        the orchestrator's ``explore``.
    sharpness_per_label : float or None
        How sharply each round draws its batch from the strategy's scores, per label learnt
        (:func:`widgetal.ranking.rank_pool`; the orchestrator's default). None: the strict
        top of the scores, as before the draw.
    n_members : int
        Committee size for ``"committee"``.
    features : array or sparse matrix, optional
        Precomputed features, one row per text (then ``featurizer`` is only a label).
    progress : bool
        Show a tqdm bar.
    multi_label : bool
        Each label is a set of labels; the model is one-vs-rest, the headline metric
        ``f1_micro`` (also reported: ``f1_macro``, ``subset_accuracy``, ``roc_auc`` averaged
        over the labels where the test split holds both answers).
    label_set : sequence of str, optional
        Multi-label: the project's labels, in order; default: every label found, sorted.
        Labels that the pool never (or always) carries cannot be learnt and are left out,
        named in ``settings["untrained_labels"]``.
    label_sep : str, optional
        Multi-label: the separator of cells such as ``billing|urgent``.
    aggregate : {"mean", "max"}
        Multi-label: how per-label uncertainties combine (as the orchestrator's ``aggregate``).
    metric : str, optional
        The score of the learning curves, the full-data target and the savings: one of
        :data:`widgetal.metrics.METRICS` (``average_precision``: of the pool's rarer class
        with two classes, the mean over classes otherwise), or for a multi-label file of
        :data:`widgetal.metrics.MULTILABEL_METRICS`. Default ``roc_auc`` for two classes,
        ``f1_macro`` for more, ``f1_micro`` multi-label.
    pool_size : int, optional
        Replay the orchestrator's bounded cycles (:mod:`widgetal.pool`): each round scores
        the sampler's random window of this many unlabelled texts plus the ``top`` at the
        head of the queue; the others keep their last score, and the batch is the head of the
        queue so kept. Default: every unlabelled text is scored.
    top : int, optional
        With ``pool_size``: how many at the head are re-scored (default ``batch``).
    n_jobs : int
        Curves computed at once, in worker processes (joblib; -1: one per CPU). The curves do
        not depend on it.

    Returns
    -------
    SimulationResult

    Raises
    ------
    InvalidInput
        Lengths differ, unknown strategy or metric, or bad sizes.
    NotEnoughLabels
        Fewer than two classes, a class too rare to appear in both splits, or a seed set
        smaller than the number of classes (multi-label: no label both carried and not carried
        in the pool, or a seed set too small to hold both answers of every label).
    """
    texts, y, label_set = _read_labels(texts, labels, multi_label, label_set, label_sep)
    strategies, pool_size, top = _check_options(
        strategies, multi_label, aggregate, metric, batch, start, test_frac, repeats, explore,
        n_jobs, sharpness_per_label, pool_size, top)
    texts, y, features, classes, test, pool, untrained = _split_rows(
        texts, y, features, multi_label, label_set, test_frac, seed, test_index, start)

    X = features if features is not None else _featurize(featurizer, texts, pool)
    X_pool, X_test, y_pool, y_test = X[pool], X[test], y[pool], y[test]
    estimator = default_estimator() if estimator is None else estimator
    positive = None
    if multi_label:
        estimator = multilabel_classifier(estimator)
        metric = metric or "f1_micro"
        _seed_set_multilabel(y_pool, start, np.random.default_rng([seed, 0]))  # fails early
    else:
        metric = metric or ("roc_auc" if classes.size == 2 else "f1_macro")
        if classes.size == 2:  # the class average precision ranks, as the orchestrator's
            positive = positive_class(y_pool)
    label_names = list(classes) if multi_label else None
    full = clone(estimator).fit(X_pool, y_pool)
    full_score = _score(full, X_test, y_test, label_names, positive)[metric]

    limit = len(pool) if max_labels is None else min(len(pool), max_labels)
    rows = _curves(
        strategies, repeats, seed, start, batch, limit, progress, n_jobs, multi_label,
        two_classes=not multi_label and classes.size == 2, strict=sharpness_per_label is None,
        curve_args=(pool_size, top, estimator, X_pool, y_pool, X_test, y_test, batch, limit,
                    explore, n_members, label_names, aggregate, positive, sharpness_per_label),
    )
    settings = {
        "featurizer": featurizer, "estimator": repr(estimator), "batch": batch, "start": start,
        "n_pool": int(len(pool)), "n_test": int(len(test)), "classes": list(classes),
        "repeats": repeats, "seed": seed, "explore": explore, "max_labels": max_labels,
        "sharpness_per_label": sharpness_per_label,
        "metric": metric, "pool_size": pool_size, "top": top if pool_size else None,
    }
    if positive is not None:
        settings["positive_class"] = positive
    if multi_label:
        settings.update(multi_label=True, aggregate=aggregate, untrained_labels=untrained)
    return SimulationResult(pd.DataFrame(rows), metric, float(full_score), settings)


def _read_labels(texts: Sequence[str], labels: Sequence[Any], multi_label: bool,
                 label_set: Sequence[str] | None, label_sep: str | None):
    """The texts as strings and the labels as an array ("" where a row has none)."""
    texts = ["" if t is None else str(t) for t in texts]
    if multi_label:
        y, label_set = _label_sets(labels, label_set, label_sep)
    else:
        y = np.array(["" if _empty(v) else str(v).strip() for v in labels], dtype=object)
    if len(texts) != len(y):
        raise InvalidInput(f"Got {len(texts)} texts but {len(y)} labels.")
    return texts, y, label_set


def _check_options(strategies, multi_label, aggregate, metric, batch, start, test_frac,
                   repeats, explore, n_jobs, sharpness_per_label, pool_size, top):
    """Every option checked before any work, each with its own message; returns the strategies
    (the default set if None), and the pool size and top as the rounds use them."""
    if strategies is None:
        strategies = DEFAULT_MULTILABEL_STRATEGIES if multi_label else DEFAULT_STRATEGIES
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise InvalidInput(
            f"Unknown strategies {unknown}; choose from {', '.join(sorted(STRATEGIES))}."
        )
    for name in strategies:
        try:
            check_strategy(name, multi_label)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    if aggregate not in AGGREGATES:
        raise InvalidInput(f"aggregate must be one of {list(AGGREGATES)}, got {aggregate!r}.")
    if metric is not None:
        try:
            check_metric(metric, multi_label)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    if batch < 1 or start < 1 or not 0 < test_frac < 1 or repeats < 1 or not 0 <= explore <= 1:
        raise InvalidInput(
            "Need --batch >= 1, --start >= 1, 0 < --test-frac < 1, --repeats >= 1 and "
            f"0 <= explore <= 1 (got {batch}, {start}, {test_frac}, {repeats}, {explore})."
        )
    if n_jobs == 0 or not isinstance(n_jobs, int | np.integer):
        raise InvalidInput(f"--jobs must be a whole number other than 0 (-1: one per CPU), got "
                           f"{n_jobs!r}.")
    if sharpness_per_label is not None and not sharpness_per_label >= 0:
        raise InvalidInput(f"sharpness_per_label must be >= 0 or None, got {sharpness_per_label}.")
    try:
        pool_size = subpool.check_pool_size(pool_size)
        top = batch if top is None else subpool.check_top(top)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return strategies, pool_size, top


def _split_rows(texts, y, features, multi_label, label_set, test_frac, seed, test_index, start):
    """The rows with a label, split into the held-out test rows and the pool."""
    keep = np.flatnonzero(y != "")
    if test_index is not None:
        # Positions refer to the rows given; map them onto the kept rows.
        position = {int(p): k for k, p in enumerate(keep)}
        test_index = [position[int(i)] for i in test_index if int(i) in position]
    texts = [texts[i] for i in keep]
    y = y[keep]
    if features is not None:
        features = features[keep]
    untrained: dict[str, dict[str, int]] = {}
    if multi_label:
        test, y, classes, untrained = _split_multilabel(y, label_set, test_frac, seed, test_index)
        pool = np.setdiff1d(np.arange(len(y)), test)
    else:
        classes = np.unique(y)
        if classes.size < 2:
            raise NotEnoughLabels(
                f"The labels hold {classes.size} class(es) {classes.tolist()}; a classifier "
                "needs at least two. Check --label-col."
            )
        test = _split(y, test_frac, seed, test_index)
        pool = np.setdiff1d(np.arange(len(y)), test)
        if start < classes.size:
            raise NotEnoughLabels(
                f"--start {start} is smaller than the {classes.size} classes; the seed set needs "
                "one of each."
            )
    return texts, y, features, classes, test, pool, untrained


def _curves(strategies, repeats, seed, start, batch, limit, progress, n_jobs, multi_label,
            two_classes, strict, curve_args) -> list[dict]:
    """Every (repeat, strategy) learning curve as rows: twins copied, the others computed.

    ``curve_args`` are :func:`_strategy_curve`'s arguments after the seed set, in its order.
    """
    y_pool = curve_args[4]
    rounds = 1 + int(np.ceil(max(limit - min(start, limit), 0) / batch))
    bar = _bar(len(strategies) * repeats * rounds, progress)
    rows = []
    # Twins order the pool identically and draw from a generator of the same seed (_twin_key),
    # so their draws and explorers are the same too.
    same = (_PROPORTIONAL if multi_label or (two_classes and not strict)
            else _SAME_FOR_TWO if two_classes else set())
    # Plan every (repeat, strategy) curve first: twins are copied, the rest computed, in
    # worker processes when ``n_jobs`` allows (each curve is independent and seeded, so the
    # result does not depend on how many run at once).
    plans, units = [], []
    for repeat in range(repeats):
        repeat_rng = np.random.default_rng([seed, repeat])
        seed_set = (_seed_set_multilabel(y_pool, start, repeat_rng) if multi_label
                    else _seed_set(y_pool, start, repeat_rng))
        computed: list[str] = []
        for name in strategies:
            twin = next((t for t in computed if {t, name} <= same), None)
            plans.append((repeat, name, twin))
            if twin is None:
                computed.append(name)
                units.append((repeat, name, seed_set))
    curves = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_strategy_curve)(name, repeat, seed, same, seed_set, *curve_args)
        for repeat, name, seed_set in units
    )
    done: dict[tuple[int, str], list[dict]] = {}
    for (repeat, name, _), curve in zip(units, curves):
        done[repeat, name] = [{"strategy": name, "repeat": repeat, "n_labels": n, **scores}
                              for n, scores in curve]
        bar.update(len(curve))
    for repeat, name, twin in plans:
        if twin is not None:
            # These measures order the pool identically (_SAME_FOR_TWO, _PROPORTIONAL)
            # and draw from the same generator: the curve is the twin's, not recomputed.
            done[repeat, name] = [{**row, "strategy": name} for row in done[repeat, twin]]
            bar.update(len(done[repeat, name]))
        rows.extend(done[repeat, name])
    bar.close()
    return rows


def load_labelled(
    path: str | Path,
    text_col: str = "text",
    label_col: str = "label",
    *,
    encoding: str = "utf-8",
    columns: Sequence[str] | None = None,
    multi_label: bool = False,
) -> tuple[list[str], list[Any]]:
    """Texts and labels from a CSV / JSONL / Parquet file, read by :func:`widgetal.io.read_table`.

    Parameters
    ----------
    path : str or Path
    text_col, label_col : str
        Column names (for a header-less file: names from ``columns``, or positions "0", "1", ...).
    encoding : str
        The file's text encoding, e.g. ``latin-1`` for sentiment140.
    columns : sequence of str, optional
        The file has no header row: these are its column names, in order (an empty sequence
        numbers them "0", "1", ...). sentiment140: ``target,ids,date,flag,user,text``.
    multi_label : bool
        Label cells are sets: list cells (JSON lines, Parquet) are kept as lists, text cells as
        text, for :func:`simulate` to parse (``[]`` is an answer, an empty cell is not).

    Raises
    ------
    InvalidInput
        Unreadable file, missing column, or no labelled rows.
    """
    frame = read_table(path, encoding=encoding)
    if columns is not None:
        if Path(path).suffix.lower() not in (".csv", ".tsv", ".txt", ".gz"):
            raise InvalidInput("--columns / --no-header apply to CSV and TSV files only.")
        # read_table took the first data row for a header: put it back as a row. pandas renames
        # repeated header cells ("x", "x.1"), so a header-less file must not repeat a first-row
        # value; sentiment140 and most files don't.
        first = pd.DataFrame([list(map(str, frame.columns))], columns=frame.columns)
        frame = pd.concat([first, frame], ignore_index=True)
        names = list(columns) or [str(i) for i in range(frame.shape[1])]
        if len(names) != frame.shape[1]:
            raise InvalidInput(
                f"--columns names {len(names)} columns but the file has {frame.shape[1]}."
            )
        frame.columns = names
    missing = [c for c in (text_col, label_col) if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"Missing column(s) {missing}; the file has {list(map(str, frame.columns))}. Name the "
            "right ones with --text-col / --label-col (or --columns for a file without a header)."
        )
    if multi_label:
        labels = frame[label_col].map(_label_cell)
    else:
        labels = frame[label_col].map(lambda v: "" if v is None or v != v else str(v).strip())
    texts = frame[text_col].map(lambda v: "" if v is None or v != v else str(v))
    answered = labels.map(lambda v: not (isinstance(v, str) and v == ""))
    keep = answered & (texts.str.strip() != "")
    if not keep.any():
        raise InvalidInput(f"No row has both a text in '{text_col}' and a label in '{label_col}'.")
    return texts[keep].tolist(), labels[keep].tolist()


def labels_to_reach(n_labels: np.ndarray, scores: np.ndarray, target: float) -> float:
    """The first number of labels at which a (mean) learning curve reaches ``target``; NaN if never.

    Examples
    --------
    >>> labels_to_reach(np.array([100, 200, 300]), np.array([0.6, 0.8, 0.9]), 0.79)
    200.0
    """
    reached = np.flatnonzero(np.asarray(scores) >= target - 1e-12)
    return float(np.asarray(n_labels)[reached[0]]) if reached.size else float("nan")


def saving_vs_random(labels: float, random_labels: float) -> float:
    """Percent fewer labels than random needed for the same score (negative: more); NaN if unknown.

    Examples
    --------
    >>> saving_vs_random(3000, 5000)
    40.0
    """
    if not np.isfinite(labels) or not np.isfinite(random_labels) or random_labels <= 0:
        return float("nan")
    return 100.0 * (random_labels - labels) / random_labels


def plot_curves(result: SimulationResult, path: str | Path) -> Path:
    """Save a PNG: the headline metric against labels, one line per strategy, random dashed."""
    # A bare Figure needs no pyplot backend, so plotting never switches a notebook's backend.
    from matplotlib.figure import Figure

    curves = result.curves
    fig = Figure(figsize=(7, 4.2), dpi=100)
    ax = fig.subplots()
    drawn: list[tuple[np.ndarray, list[str], Any]] = []
    for name, curve in curves.groupby("strategy", sort=False):
        mean = curve[f"{result.metric}_mean"].to_numpy()
        twin = next((d for d in drawn if d[0].shape == mean.shape and (d[0] == mean).all()), None)
        if twin is not None:  # identical curves (two-class twins) share one line and label
            twin[1].append(name)
            twin[2].set_label(" = ".join(twin[1]))
            continue
        std = np.nan_to_num(curve[f"{result.metric}_std"].to_numpy())
        x = curve["n_labels"].to_numpy()
        random = name == "random"
        (line,) = ax.plot(x, mean, "--" if random else "-", color="black" if random else None,
                          lw=1.6 if random else 1.2, label=name)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.12, lw=0)
        drawn.append((mean, [name], line))
    target = TARGET_SHARE * result.full_score
    ax.axhline(target, color="grey", lw=0.8, ls=":")
    ax.annotate(f" {TARGET_SHARE:.0%} of full-data score", (ax.get_xlim()[0], target),
                ha="left", va="bottom", fontsize=8, color="grey")
    ax.set_xlabel("labels")
    ax.set_ylabel(f"{NAMES.get(result.metric, result.metric)} (test)")
    featurizer = result.settings.get("featurizer", "")
    ax.set_title(f"Active learning vs random ({featurizer}, batches of "
                 f"{result.settings.get('batch')})", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def replay_round(
    name: str,
    model: Any,
    X_pool: Any,
    y_pool: np.ndarray,
    labelled: np.ndarray,
    *,
    rng: np.random.Generator,
    explore: float = 0.0,
    n_members: int = 5,
    multi_label: bool = False,
    aggregate: str = "mean",
    among: np.ndarray | None = None,
    sharpness_per_label: float | None = SHARPNESS_PER_LABEL,
) -> tuple[np.ndarray, np.ndarray]:
    """One simulated cycle's ranking: what the orchestrator would put first, given its model.

    Parameters
    ----------
    name : str
        The strategy.
    model : fitted classifier
        Trained on the rows of ``X_pool`` marked ``labelled`` (in their order), as the
        orchestrator trains on every final label.
    X_pool, y_pool
        Every pool row's features and known label (``y_pool`` of the labelled rows only is
        read: the committee's members learn from them).
    labelled : ndarray of bool, shape (n_pool,)
    rng, explore, n_members, multi_label, aggregate, sharpness_per_label
        As for :func:`widgetal.ranking.rank_pool`.
    among : ndarray of int, optional
        The unlabelled positions to score (a bounded cycle's subpool); default all.

    Returns
    -------
    left : ndarray of int
        The scored pool positions, in position order.
    scores : ndarray of float
        Their scores, higher = ask sooner; ``left[top_n(scores, batch)]`` is the next batch.
    """
    have = np.flatnonzero(labelled)
    left = np.flatnonzero(~labelled) if among is None else np.sort(among)
    _, scores = rank_pool(
        name, model, X_pool[left], rng=rng, explore=explore, multi_label=multi_label,
        aggregate=aggregate, X_labelled=X_pool[have], y_labelled=y_pool[have],
        n_members=n_members, sharpness_per_label=sharpness_per_label,
    )
    return left, scores


class _Sampler:
    """The queue of a simulated project with bounded cycles: each text's fixed random key
    (its ``audit_key``) and its priority, kept until a cycle scores it again."""

    def __init__(self, n: int, pool_size: int, top: int, rng: np.random.Generator):
        self.keys = rng.random(n)
        self.priority = np.zeros(n)
        self.pool_size, self.top, self.rng = pool_size, top, rng

    def subpool(self, left: np.ndarray) -> np.ndarray | None:
        """The positions this round scores (None: all of ``left``, as the orchestrator does
        while at most ``pool_size`` are unlabelled)."""
        if left.size <= self.pool_size:
            return None
        start = subpool.draw_start(self.rng, 0.0)  # simulate has no audit reserve
        window = left[subpool.window(self.keys[left], start, 0.0, self.pool_size)]
        head = left[np.lexsort((left, -self.priority[left]))[: self.top]]  # priority desc, id
        return np.union1d(window, head)

    def next_batch(self, left: np.ndarray, n: int) -> np.ndarray:
        """The head of the queue: what labellers are served next."""
        return left[np.lexsort((left, -self.priority[left]))[:n]]


def _strategy_curve(name, repeat, seed, same, seed_set, pool_size, top, estimator, X_pool,
                    y_pool, X_test, y_test, batch, limit, explore, n_members, label_names,
                    aggregate, positive, sharpness_per_label) -> list:
    """One strategy's whole curve in one repeat: [(n_labels, scores), ...]."""
    rng = np.random.default_rng([seed, repeat, _stable_hash(_twin_key(name, same))])
    # the subpool's generator is the strategy's twin's too: twins sample alike
    sampler = None if pool_size is None else _Sampler(
        len(y_pool), pool_size, top, np.random.default_rng([seed, repeat, 1]))
    return list(_curve(
        name, estimator, X_pool, y_pool, X_test, y_test, seed_set, batch, limit, rng, explore,
        n_members, label_names, aggregate, positive, sampler, sharpness_per_label,
    ))


def _curve(name, estimator, X_pool, y_pool, X_test, y_test, seed_set, batch, limit, rng,
           explore, n_members, label_names=None, aggregate="mean", positive=None, sampler=None,
           sharpness_per_label=SHARPNESS_PER_LABEL):
    """Yield (n_labels, test scores) after each round of one strategy (``label_names``: the
    labels of a multi-label ``y``, else None)."""
    labelled = np.zeros(len(y_pool), dtype=bool)
    labelled[seed_set[:limit]] = True
    while True:
        have = np.flatnonzero(labelled)
        model = clone(estimator).fit(X_pool[have], y_pool[have])
        yield int(have.size), _score(model, X_test, y_test, label_names, positive)
        if have.size >= limit or have.size == len(y_pool):
            return
        among = None if sampler is None else sampler.subpool(np.flatnonzero(~labelled))
        left, scores = replay_round(
            name, model, X_pool, y_pool, labelled, rng=rng, explore=explore,
            n_members=n_members, multi_label=label_names is not None, aggregate=aggregate,
            among=among, sharpness_per_label=sharpness_per_label,
        )
        n = min(batch, limit - have.size)
        if among is None:
            if sampler is not None:
                sampler.priority[left] = scores
            labelled[left[top_n(scores, n)]] = True
        else:  # the unscored keep their last priority: the batch is the queue's head
            sampler.priority[left] = scores
            labelled[sampler.next_batch(np.flatnonzero(~labelled), n)] = True


def _score(model, X_test, y_test, label_names=None, positive=None) -> dict[str, float]:
    proba = model.predict_proba(X_test)
    if label_names is not None:
        metrics, _ = multilabel_metrics(y_test, proba, label_names)
        return {k: metrics[k] for k in ("f1_micro", "f1_macro", "subset_accuracy", "roc_auc")}
    return classification_scores(y_test, proba, model.classes_, positive)


def _draw_test(n: int, test_frac: float, seed: int, test_index) -> tuple[np.ndarray, np.ndarray]:
    """Test and pool positions: the given test rows, or a seeded random share of them. One
    draw for single- and multi-label files, so both replay the same split."""
    if test_index is not None:
        test = np.unique(np.asarray(test_index, dtype=int))
    else:
        test = np.sort(pd.RangeIndex(n).to_series().sample(frac=test_frac, random_state=seed)
                       .to_numpy())
    return test, np.setdiff1d(np.arange(n), test)


def _split(y, test_frac, seed, test_index) -> np.ndarray:
    n = len(y)
    test, pool = _draw_test(n, test_frac, seed, test_index)
    classes = np.unique(y)
    if test_index is None and (np.unique(y[test]).size < classes.size
                               or np.unique(y[pool]).size < classes.size):
        from sklearn.model_selection import train_test_split

        counts = pd.Series(y).value_counts()
        if counts.min() < 2:
            raise NotEnoughLabels(
                f"Class(es) {counts[counts < 2].index.tolist()} have a single row; each class "
                "needs at least two (one to learn from, one to test on)."
            )
        _, test = train_test_split(np.arange(n), test_size=max(test_frac, classes.size / n),
                                   stratify=y, random_state=seed)
        test = np.sort(test)
        pool = np.setdiff1d(np.arange(n), test)
    if np.unique(y[pool]).size < classes.size or len(test) == 0:
        raise NotEnoughLabels(
            "The pool or the test split misses a class; give more rows of each class or a "
            "different --test-frac."
        )
    return test


def _label_sets(cells, label_set, sep) -> tuple[np.ndarray, list[str]]:
    """Canonical label-set strings ("" for an empty cell) and the label set they use."""
    cells = list(cells)
    if label_set is None:
        found: set[str] = set()
        for cell in cells:
            found.update(_names_in(cell, sep))
        label_set = sorted(found)
    label_set = [str(x) for x in label_set]
    if not label_set:
        raise NotEnoughLabels("No label found in the label column; check --label-col.")
    y = np.array(["" if _empty(c) else labelsets.parse(c, label_set, sep) for c in cells],
                 dtype=object)
    return y, label_set


def _names_in(cell, sep) -> list[str]:
    # Only to infer the label set; labelsets.parse validates each cell afterwards.
    if _empty(cell):
        return []
    if hasattr(cell, "tolist") and not isinstance(cell, str):
        cell = cell.tolist()
    if isinstance(cell, (list, tuple, set, frozenset)):
        return [str(x) for x in cell]
    text = str(cell).strip()
    if text.startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError:
            return []
        return [str(x) for x in names] if isinstance(names, list) else []
    if sep is not None:
        return [x.strip() for x in text.split(sep) if x.strip()]
    return []


def _split_multilabel(y, label_set, test_frac, seed, test_index):
    """Test positions, the (n × trained labels) matrix, the trained labels, the others.

    The split is the same random draw as for one label (multi-label stratification is not in
    scikit-learn); a label the pool never or always carries cannot be learnt and is left out.
    """
    Y = labelsets.indicator(list(y), label_set)
    n = len(Y)
    test, pool = _draw_test(n, test_frac, seed, test_index)
    if len(test) == 0 or len(pool) == 0:
        raise NotEnoughLabels("The pool or the test split is empty; give more rows.")
    positive = Y[pool].sum(axis=0)
    learnable = (positive > 0) & (positive < len(pool))
    untrained = {
        name: {"positive": int(p), "negative": int(len(pool) - p)}
        for name, p, ok in zip(label_set, positive, learnable) if not ok
    }
    if not learnable.any():
        raise NotEnoughLabels(
            f"No label is both carried and not carried by the pool's texts ({untrained}); a "
            "model cannot learn any of them. Check --label-col and the label separator."
        )
    names = [name for name, ok in zip(label_set, learnable) if ok]
    return test, Y[:, learnable], names, untrained


def _seed_set_multilabel(Y_pool, start, rng) -> np.ndarray:
    """``start`` random pool positions holding, for every label, a text that carries it and
    one that does not (so no label's model is a constant), shuffled."""
    order = rng.permutation(len(Y_pool))
    firsts: list[int] = []
    for j in range(Y_pool.shape[1]):  # a loop over labels, not rows
        for value in (1, 0):
            if not (Y_pool[firsts, j] == value).any():
                firsts.append(int(order[np.flatnonzero(Y_pool[order, j] == value)[0]]))
    if start < len(firsts):
        raise NotEnoughLabels(
            f"--start {start} is too small: a seed set holding a text with and a text without "
            f"each label takes {len(firsts)} texts here."
        )
    rest = order[~np.isin(order, firsts)]
    return np.concatenate([firsts, rest[: start - len(firsts)]]).astype(np.intp)


def _empty(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return bool(np.isnan(value))
    return isinstance(value, str) and value.strip() == ""


def _label_cell(value):
    """A multi-label cell as read: a list stays a list, text is stripped, empty is ""."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(x) for x in value]
    return "" if _empty(value) else str(value).strip()


def _seed_set(y_pool, start, rng) -> np.ndarray:
    """``start`` random pool positions holding at least one item of every class, shuffled."""
    order = rng.permutation(len(y_pool))
    firsts = [order[np.flatnonzero(y_pool[order] == c)[0]] for c in np.unique(y_pool)]
    rest = order[~np.isin(order, firsts)]
    return np.concatenate([firsts, rest[: max(start - len(firsts), 0)]]).astype(np.intp)


def _featurize(spec, texts, pool):
    from .features import make_featurizer

    featurizer = make_featurizer(spec)
    featurizer.fit([texts[i] for i in pool])
    return featurizer.transform(texts)


def _twin_key(name: str, same: set[str]) -> str:
    """The name a strategy's generator is seeded by: one name for a group of twins, so a
    strategy run alone draws what it draws beside its twin."""
    return min(same) if name in same else name


def _stable_hash(name: str) -> int:
    # Python's hash() of a str changes per process; a repeat must draw the same numbers.
    return zlib.crc32(name.encode("utf-8"))


def _bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, unit="round", desc="simulate")
