"""Query strategies: pure numpy functions from probabilities to scores, higher = ask sooner.

Three layers, kept apart as in modAL: measures (``least_confidence``, ``margin``, ``entropy``,
``vote_entropy``) map arrays to one score per row; modifiers (``density_weighted``,
``power_sample``, ``mix_random``) turn scores into other scores; ``pool_scores`` dispatches a
strategy name to them. Picking the top ``n`` is ``top_n``. Nothing here fits or asks a model, nor
touches a database: the ranking step that does (:func:`widgetal.ranking.rank_pool`) and the
committee's fitting (:func:`widgetal.models.committee_proba`) hand their probabilities in.

Multi-label projects give an (n × L) array of per-label positive probabilities instead of a
distribution over classes; ``multilabel_scores`` applies the same measures to each label's
binary ``[p, 1 - p]`` and aggregates them (mean or max), so ``--strategy entropy`` means the
same thing for both kinds of project.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.preprocessing import normalize

from .errors import EmptyPool

#: Rows of a probability array may miss 1 by this much (float32 softmax, calibration rounding).
_SUM_TOLERANCE = 1e-3


def least_confidence(proba: np.ndarray) -> np.ndarray:
    """Uncertainty as one minus the probability of the most likely class.

    ``score = 1 - max_k p_k``; higher = ask sooner. Lewis & Gale (1994), "A sequential algorithm
    for training text classifiers", SIGIR.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        Predicted probabilities; each row sums to 1.

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        ``proba`` is not 2-D, has negative entries, or rows that do not sum to 1.
    EmptyPool
        ``proba`` has no rows.

    Examples
    --------
    >>> least_confidence(np.array([[0.9, 0.1], [0.5, 0.5]]))
    array([0.1, 0.5])
    """
    proba = _check_proba(proba)
    return 1.0 - proba.max(axis=1)


def margin(proba: np.ndarray) -> np.ndarray:
    """Uncertainty as a small gap between the two most likely classes.

    ``score = 1 - (p_(1) - p_(2))`` with ``p_(1) >= p_(2)`` the two largest probabilities of a row,
    found by a partial sort; higher = ask sooner. Scheffer, Decomain & Wrobel (2001), "Active hidden
    Markov models for information extraction", IDA.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        Predicted probabilities; each row sums to 1. A single class has margin 1 (score 0).

    Returns
    -------
    scores : ndarray of shape (n_samples,), in [0, 1]

    Raises
    ------
    ValueError
        Bad shape or rows that do not sum to 1.
    EmptyPool
        ``proba`` has no rows.

    Examples
    --------
    >>> margin(np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]]))
    array([0.5, 1. ])
    """
    proba = _check_proba(proba)
    if proba.shape[1] == 1:
        return np.zeros(proba.shape[0])
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def entropy(proba: np.ndarray) -> np.ndarray:
    """Uncertainty as the Shannon entropy of the predicted distribution.

    ``score = -sum_k p_k log p_k`` (natural log, ``0 log 0 = 0``); higher = ask sooner.
    Settles (2009), "Active Learning Literature Survey", §3.1; Shannon (1948).

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        Predicted probabilities; each row sums to 1.

    Returns
    -------
    scores : ndarray of shape (n_samples,), in [0, log n_classes]

    Raises
    ------
    ValueError
        Bad shape or rows that do not sum to 1.
    EmptyPool
        ``proba`` has no rows.

    Examples
    --------
    >>> entropy(np.array([[1.0, 0.0], [0.5, 0.5]])).round(4)
    array([0.    , 0.6931])
    """
    return _entropy_rows(_check_proba(proba))


def random_scores(proba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The baseline: uniform random scores, so the queue is served in random order.

    ``score ~ U[0, 1)``, independent of ``proba`` (used only for its number of rows); higher = ask
    sooner. Lewis & Gale (1994) compare against it; so should every simulation.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        Only its shape is used.
    rng : numpy.random.Generator
        The only source of randomness, so a seeded run repeats exactly.

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Examples
    --------
    >>> random_scores(np.full((3, 2), 0.5), np.random.default_rng(0)).shape
    (3,)
    """
    proba = _check_proba(proba)
    _check_rng(rng)
    return rng.random(proba.shape[0])


def vote_entropy(committee_proba: np.ndarray) -> np.ndarray:
    """Disagreement of a committee: entropy of the members' hard votes (query by committee).

    ``score = -sum_k (V_k / C) log (V_k / C)`` where ``V_k`` counts the ``C`` members whose most
    likely class is ``k``; higher = ask sooner. Hard votes tie often (with five members every 3–2
    split scores the same), so ties are broken by the entropy of the members' mean probabilities
    (the consensus entropy), scaled to a thousandth of the smallest gap between distinct vote
    entropies: the order by votes is never changed, only refined, and values stay near the formula.
    Dagan & Engelson (1995), "Committee-based sampling for training probabilistic classifiers",
    ICML; Seung, Opper & Sompolinsky (1992).

    Parameters
    ----------
    committee_proba : ndarray of shape (n_members, n_samples, n_classes)
        Each member's probabilities for the same samples and classes, in the same column order.

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        Not 3-D, fewer than one member, or rows that do not sum to 1.
    EmptyPool
        No samples.

    Examples
    --------
    >>> members = np.array([[[0.9, 0.1], [0.6, 0.4]],
    ...                     [[0.8, 0.2], [0.3, 0.7]]])
    >>> int(vote_entropy(members).argmax())
    1
    """
    committee_proba = np.asarray(committee_proba, dtype=float)
    if committee_proba.ndim != 3 or committee_proba.shape[0] < 1:
        raise ValueError(
            "committee_proba must have shape (n_members, n_samples, n_classes), got "
            f"{committee_proba.shape}"
        )
    n_members, n, k = committee_proba.shape
    _check_proba(committee_proba.reshape(n_members * n, k) if n else committee_proba[0])
    votes = committee_proba.argmax(axis=2)  # (n_members, n)
    counts = np.zeros((n, k))
    np.add.at(counts, (np.broadcast_to(np.arange(n), votes.shape), votes), 1.0)
    hard = _entropy_rows(counts / n_members)
    consensus = _entropy_rows(committee_proba.mean(axis=0))
    if k > 1:
        consensus = consensus / np.log(k)  # into [0, 1]
    distinct = np.unique(np.round(hard, 12))
    gap = np.diff(distinct).min() if distinct.size > 1 else 1.0
    return hard + 1e-3 * gap * consensus


def density_weighted(scores: np.ndarray, embeddings: Any, beta: float = 1.0) -> np.ndarray:
    """Information density: uncertainty times how typical an item is of the pool.

    ``score_i = scores_i * r_i ** beta`` with ``r_i = max(0, mean_j cos(x_i, x_j))``, the mean
    cosine similarity of item ``i`` to every item of the pool (itself included); higher = ask
    sooner. Pure uncertainty sampling likes outliers; the weight steers it to dense regions.
    The mean of cosines equals ``x̂_i · mean_j x̂_j`` for unit rows ``x̂``, so ``r`` is exact and
    costs O(n·d) memory and time: no n × n matrix, fine at 1M rows, sparse rows welcome.
    Settles & Craven (2008), "An analysis of active learning strategies for sequence labeling
    tasks", EMNLP.

    Parameters
    ----------
    scores : ndarray of shape (n_samples,)
        Base scores, e.g. from ``entropy``; should be non-negative.
    embeddings : ndarray or scipy sparse matrix of shape (n_samples, n_features)
        One row per pool item (TF-IDF rows or sentence embeddings). All-zero rows get ``r = 0``.
    beta : float, default=1.0
        Weight of representativeness; 0 returns ``scores`` unchanged.

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        Lengths differ, ``scores`` is not 1-D, or ``beta`` is negative.
    EmptyPool
        No rows.

    Examples
    --------
    >>> emb = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    >>> int(density_weighted(np.ones(3), emb).argmin())
    2
    """
    scores = _check_scores(scores)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if getattr(embeddings, "ndim", None) != 2 or embeddings.shape[0] != scores.shape[0]:
        raise ValueError(
            f"embeddings must be 2-D with one row per score ({scores.shape[0]}), got shape "
            f"{getattr(embeddings, 'shape', None)}"
        )
    unit = normalize(embeddings, norm="l2", axis=1)  # keeps sparse sparse
    centre = np.asarray(unit.mean(axis=0)).ravel()
    similarity = np.clip(np.asarray(unit @ centre).ravel(), 0.0, None)
    return scores * similarity**beta


def mix_random(scores: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Exploration: give a ``share`` of the slots, spread evenly from the top, to random items.

    A random subset of ``floor(share * n)`` items takes every ``1/share``-th rank in random order;
    the others fill the remaining ranks by ``scores``. So every top-``b`` batch holds about
    ``share * b`` uniformly drawn items and the rest are the best-scoring ones, which keeps a
    model that is confidently wrong somewhere from never seeing that region (epsilon-greedy;
    Bouneffouf et al. (2014), "Contextual bandit for active learning: active Thompson sampling").
    Returns rank scores in ``(0, 1]``, higher = ask sooner; ``share = 0`` returns ``scores`` as is.

    Parameters
    ----------
    scores : ndarray of shape (n_samples,)
    share : float in [0, 1]
        Fraction of slots given to random items.
    rng : numpy.random.Generator

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        ``share`` outside [0, 1] or ``scores`` not 1-D.
    EmptyPool
        No scores.

    Examples
    --------
    >>> mixed = mix_random(np.arange(10.0), 0.5, np.random.default_rng(0))
    >>> int((np.argsort(-mixed)[:4] >= 5).sum()) >= 2  # half the top four are still top scorers
    True
    """
    scores = _check_scores(scores)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    _check_rng(rng)
    if share == 0.0:
        return scores.copy()
    n = scores.shape[0]
    slot = np.arange(n)
    is_random_slot = np.floor((slot + 1) * share) > np.floor(slot * share)
    explorers = rng.permutation(n)[: int(is_random_slot.sum())]
    rest = np.ones(n, dtype=bool)
    rest[explorers] = False
    others = np.flatnonzero(rest)
    order = np.empty(n, dtype=np.intp)
    order[is_random_slot] = explorers
    order[~is_random_slot] = others[np.argsort(-scores[others], kind="stable")]
    mixed = np.empty(n)
    mixed[order] = (n - slot) / n
    return mixed


def power_sample(scores: np.ndarray, beta: float, rng: np.random.Generator) -> np.ndarray:
    """Draw the queue without replacement, each item with weight ``score ** beta``.

    Top-``b`` by score asks ``b`` near-copies of the one question the model is least sure of,
    and early on, while a model's probabilities hug the class prior (none crosses 0.5, say),
    "least sure" is only the far end of its ranking, all of one class. Power acquisition
    (Kirsch et al. (2023), "Stochastic batch acquisition: a simple baseline for deep active
    learning", TMLR) samples instead: the Gumbel-top-k trick (Kool, van Hoof & Welling (2019),
    ICML) orders by ``beta * log(score) + G`` with ``G ~ Gumbel(0, 1)``, which is exactly a
    draw without replacement with probabilities proportional to ``score**beta``. ``beta = 0`` is
    uniform random, a large ``beta`` the strict order by score; a score of 0 goes last. The
    order is unchanged by scaling every score by the same factor. Returns rank scores in
    ``(0, 1]``, higher = ask sooner.

    Parameters
    ----------
    scores : ndarray of shape (n_samples,)
        Non-negative strategy scores.
    beta : float >= 0, or ``inf`` for the strict order (``scores`` returned as they are)
    rng : numpy.random.Generator
        Draws ``n_samples`` Gumbel variates (unless ``beta`` is infinite).

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        ``beta`` negative or NaN, scores negative, NaN or not 1-D.
    EmptyPool
        No scores.

    Examples
    --------
    >>> s = np.array([0.9, 0.1, 0.0])
    >>> int(np.argmax(power_sample(s, 50.0, np.random.default_rng(0))))  # sharp: the best first
    0
    >>> int(np.argmin(power_sample(s, 1.0, np.random.default_rng(0))))  # a zero score is last
    2
    """
    scores = _check_scores(scores)
    if not beta >= 0:  # also refuses NaN
        raise ValueError(f"beta must be >= 0, got {beta}")
    if np.isnan(scores).any() or (scores < 0).any():
        raise ValueError("power_sample needs non-negative scores (probabilities' measures)")
    _check_rng(rng)
    if np.isinf(beta):
        return scores.copy()
    n = scores.shape[0]
    with np.errstate(divide="ignore"):
        keys = beta * np.log(scores) if beta > 0 else np.zeros(n)
    keys = keys + rng.gumbel(size=n)
    order = np.lexsort((np.arange(n), -keys))  # zero scores (-inf) last, in position order
    ranked = np.empty(n)
    ranked[order] = (n - np.arange(n)) / n
    return ranked


def sharpness(n_labelled: int, per_label: float | None = None) -> float:
    """The power of :func:`power_sample` after ``n_labelled`` labels: ``per_label`` (default
    ``SHARPNESS_PER_LABEL``) times them, so the order is broad while the model knows little and
    tightens to the strict uncertainty order as labels grow (10 at 100 labels, 100 at 1,000).

    >>> sharpness(100), sharpness(1_000)
    (10.0, 100.0)
    """
    per_label = SHARPNESS_PER_LABEL if per_label is None else per_label
    if n_labelled < 0 or not per_label >= 0:
        raise ValueError(f"Need n_labelled >= 0 and per_label >= 0, got {n_labelled}, {per_label}")
    return per_label * float(n_labelled)


#: β per label of :func:`sharpness`. Chosen on two labelled sets with ``widgetal simulate``
#: (README, "Will active learning pay off on my data?"): on SpamAssassin the strict order made
#: the first uncertainty batch clearly worse than random (ROC AUC 0.962 against 0.981); 0.05,
#: 0.1 and 0.2 all remove that, and on the tweets they keep the strict order's saving.
SHARPNESS_PER_LABEL = 0.1


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest scores, best first (partial sort, then sort of the few).

    Examples
    --------
    >>> top_n(np.array([0.1, 0.9, 0.5]), 2)
    array([1, 2])
    """
    scores = _check_scores(scores)
    n = min(int(n), scores.shape[0])
    if n <= 0:
        return np.empty(0, dtype=np.intp)
    best = np.argpartition(-scores, n - 1)[:n]
    return best[np.argsort(-scores[best], kind="stable")]


def multilabel_scores(
    proba: np.ndarray, measure: str = "entropy", aggregate: str = "mean"
) -> np.ndarray:
    """Multi-label uncertainty: a measure of each label's yes/no decision, aggregated per row.

    Each label ``j`` is a binary question with distribution ``[p_j, 1 - p_j]``; ``measure`` (one
    of ``least-confidence``, ``margin``, ``entropy``, the functions above, one implementation each)
    scores it, giving ``u_j``:

    - least-confidence: ``u_j = 1 - max(p_j, 1 - p_j) = min(p_j, 1 - p_j)``, in [0, 0.5]
    - margin: ``u_j = 1 - |p_j - (1 - p_j)| = 1 - |2 p_j - 1|``, in [0, 1]
    - entropy: ``u_j = -p_j log p_j - (1 - p_j) log(1 - p_j)``, in [0, log 2]

    (per label, margin is twice least-confidence, so the two rank alike with either aggregate),
    then ``score = mean_j u_j`` (``aggregate="mean"``: texts unsure about many labels first) or
    ``score = max_j u_j`` (``"max"``: a text unsure about any one label first, which finds the
    boundary of a rare label even when the other labels are clear). Higher = ask sooner. Each
    ``u_j`` peaks at ``p_j = 0.5``. Per-label binary uncertainty aggregated over labels (MAX and
    AVG): Esuli & Sebastiani (2009), "Active learning strategies for multi-label text
    classification", ECIR; the per-label measures as cited above.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_labels)
        Each label's probability of applying, in [0, 1]; rows need not sum to 1 (this is what
        ``OneVsRestClassifier.predict_proba`` gives for an indicator ``y``).
    measure : {"entropy", "least-confidence", "margin"}, default="entropy"
    aggregate : {"mean", "max"}, default="mean"

    Returns
    -------
    scores : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        ``proba`` not 2-D, without labels, or with values outside [0, 1]; unknown ``measure``
        or ``aggregate``.
    EmptyPool
        ``proba`` has no rows.

    Examples
    --------
    >>> p = np.array([[0.5, 0.0], [0.9, 0.9]])
    >>> multilabel_scores(p, "least-confidence", "mean").round(3)
    array([0.25, 0.1 ])
    >>> multilabel_scores(p, "least-confidence", "max").round(3)
    array([0.5, 0.1])
    """
    if measure not in MULTILABEL_MEASURES:
        raise ValueError(
            f"Unknown measure '{measure}' for a multi-label project; choose one of "
            f"{sorted(MULTILABEL_MEASURES)}."
        )
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {list(AGGREGATES)}, got {aggregate!r}.")
    proba = _check_label_proba(proba)
    n, n_labels = proba.shape
    # Every (row, label) pair becomes one two-class row, so each measure keeps one implementation.
    binary = np.stack([proba, 1.0 - proba], axis=2).reshape(n * n_labels, 2)
    per_label = MULTILABEL_MEASURES[measure](binary).reshape(n, n_labels)
    return per_label.mean(axis=1) if aggregate == "mean" else per_label.max(axis=1)


def pool_scores(
    name: str,
    proba: np.ndarray,
    *,
    rng: np.random.Generator | None = None,
    committee: np.ndarray | None = None,
    embeddings: Any = None,
    multi_label: bool = False,
    aggregate: str = "mean",
) -> np.ndarray:
    """Score every pool item with the strategy called ``name``; higher = ask sooner.

    Parameters
    ----------
    name : str
        A key of ``STRATEGIES``.
    proba : ndarray of shape (n_pool, n_classes), or (n_pool, n_labels) with ``multi_label``
        The model's probabilities for the pool (for ``"random"`` only its rows count).
    rng : numpy.random.Generator, optional
        For ``"random"``; a fresh unseeded one if omitted.
    committee : ndarray of shape (n_members, n_pool, n_classes), optional
        The committee's probabilities; required by ``"committee"``
        (:func:`widgetal.models.committee_proba` fits it).
    embeddings : ndarray or sparse matrix, optional
        Rows aligned with ``proba``; required by ``"density"``.
    multi_label : bool, default=False
        ``proba`` holds per-label probabilities: the uncertainty measures go through
        :func:`multilabel_scores`, ``"density"`` weights the aggregated multi-label entropy,
        ``"random"`` is unchanged, and ``"committee"`` (one class per member) is refused.
    aggregate : {"mean", "max"}, default="mean"
        How per-label uncertainties combine in a multi-label project; unused otherwise.

    Returns
    -------
    scores : ndarray of shape (n_pool,)

    Raises
    ------
    ValueError
        Unknown ``name``, ``"committee"`` in a multi-label project, or the committee's
        probabilities or the embeddings missing where needed.
    EmptyPool
        ``proba`` has no rows.

    Examples
    --------
    >>> pool_scores("margin", np.array([[0.9, 0.1], [0.5, 0.5]]))
    array([0.2, 1. ])
    """
    check_strategy(name, multi_label)
    if multi_label and aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {list(AGGREGATES)}, got {aggregate!r}.")
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2:
        raise ValueError(f"proba must be 2-D (one row per pool item), got shape {proba.shape}")
    n = proba.shape[0]
    if n == 0:
        raise EmptyPool("The pool is empty: every item is labelled, nothing left to rank.")
    rng = np.random.default_rng() if rng is None else rng
    if name == "random":
        return random_scores(np.ones((n, 1)), rng)
    if name == "committee":
        if committee is None:
            raise ValueError("The committee strategy needs the committee's probabilities.")
        if np.shape(committee)[1:2] != (n,):
            raise ValueError(
                f"committee must hold {n} rows per member, got shape {np.shape(committee)}")
        return vote_entropy(committee)
    if multi_label:
        measure = "entropy" if name == "density" else name
        uncertainty = multilabel_scores(proba, measure, aggregate)
    else:
        uncertainty = entropy(proba) if name == "density" else STRATEGIES[name](proba)
    if name == "density":
        if embeddings is None:
            raise ValueError("The density strategy needs the pool's embeddings (or features).")
        return density_weighted(uncertainty, embeddings)
    return uncertainty


def check_strategy(name: str, multi_label: bool = False) -> None:
    """Refuse a strategy name that does not exist, or does not apply to this kind of project.

    Raises
    ------
    ValueError
        With the names that would work.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy '{name}'; choose one of {sorted(STRATEGIES)}.")
    if multi_label and name not in MULTILABEL_STRATEGIES:
        raise ValueError(
            f"The '{name}' strategy is not available in a multi-label project: its committee "
            "votes for one class per text, and a text here may carry several labels. Choose one "
            f"of {list(MULTILABEL_STRATEGIES)}."
        )


#: Name → function, as the CLI's ``--strategy`` spells it. Signatures differ by family (see each
#: function); ``pool_scores`` knows how to call every one.
STRATEGIES: dict[str, Callable[..., np.ndarray]] = {
    "least-confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "random": random_scores,
    "committee": vote_entropy,
    "density": density_weighted,
}

#: The measures :func:`multilabel_scores` applies to each label's yes/no decision.
MULTILABEL_MEASURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "least-confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}

#: Strategy names that work in a multi-label project (``pool_scores(..., multi_label=True)``).
MULTILABEL_STRATEGIES = ("least-confidence", "margin", "entropy", "random", "density")

#: How per-label uncertainties combine into one score per text.
AGGREGATES = ("mean", "max")


def _entropy_rows(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return 0.0 - terms.sum(axis=1)  # not -sum: keeps 0 from printing as -0


def _check_proba(proba) -> np.ndarray:
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] < 1:
        raise ValueError(f"proba must have shape (n_samples, n_classes), got {proba.shape}")
    if proba.shape[0] == 0:
        raise EmptyPool("The pool is empty: every item is labelled, nothing left to rank.")
    if not np.isfinite(proba).all() or (proba < 0).any():
        raise ValueError("proba must hold finite, non-negative probabilities")
    sums = proba.sum(axis=1)
    bad = np.abs(sums - 1.0) > _SUM_TOLERANCE
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} rows of proba do not sum to 1 (row {row} sums to {sums[row]:.4g}); "
            "pass predict_proba output, not decision_function or logits."
        )
    return proba


def _check_label_proba(proba) -> np.ndarray:
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] < 1:
        raise ValueError(
            f"Multi-label proba must have shape (n_samples, n_labels), got {proba.shape}"
        )
    if proba.shape[0] == 0:
        raise EmptyPool("The pool is empty: every item is labelled, nothing left to rank.")
    if not np.isfinite(proba).all() or (proba < 0).any() or (proba > 1).any():
        raise ValueError(
            "Multi-label proba must hold each label's probability, finite and between 0 and 1; "
            "pass predict_proba output, not decision_function or logits."
        )
    return proba


def _check_scores(scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {scores.shape}")
    if scores.shape[0] == 0:
        raise EmptyPool("The pool is empty: every item is labelled, nothing left to rank.")
    return scores


def _check_rng(rng) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator, e.g. np.random.default_rng(0)")
