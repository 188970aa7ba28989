"""The ranking step: a fitted model and the pool's features in, probabilities and scores out.

One function, :func:`rank_pool`, called by the orchestrator's cycle and by ``widgetal
simulate``'s rounds, so a simulation replays what the orchestrator would have done with the same
features, labels, strategy, exploration share and seed. It asks the model (and, for the
committee, fits the members through :func:`widgetal.models.committee_proba`); the strategies
themselves stay pure functions of those probabilities (:mod:`widgetal.strategies`).

The strategy's scores do not set a strict order: the queue is drawn from them
(:func:`widgetal.strategies.power_sample`), broadly while the model has few labels and ever
closer to the strict order as labels grow (:func:`widgetal.strategies.sharpness`). A strict
top-k after a small seed asked only near-copies from the far end of an unsure model's ranking,
and on SpamAssassin that first batch left the model clearly worse than random labels would.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import models, strategies
from .errors import EmptyPool


def rank_pool(
    name: str,
    estimator: Any,
    X_pool: Any,
    *,
    rng: np.random.Generator,
    explore: float = 0.0,
    multi_label: bool = False,
    aggregate: str = "mean",
    X_labelled: Any = None,
    y_labelled: Any = None,
    embeddings: Any = None,
    n_members: int = 5,
    sharpness_per_label: float | None = strategies.SHARPNESS_PER_LABEL,
) -> tuple[np.ndarray, np.ndarray]:
    """The model's probabilities for the pool, and the scores that order it.

    One prediction serves the strategy and whatever the caller does with the probabilities
    (the orchestrator publishes them as guesses). The pool is then drawn from the strategy's
    scores, each item with weight ``score ** beta``, ``beta = sharpness_per_label`` times the
    number of labels (:func:`widgetal.strategies.power_sample`), and ``explore`` hands that
    share of the top slots to random items (:func:`widgetal.strategies.mix_random`); the
    ``"random"`` strategy is neither, being random already. The generator is drawn from in a
    fixed order (the committee's bootstraps or the random scores, the draw, then exploration),
    so the same seed gives the same order in both callers.

    Parameters
    ----------
    name : str
        A key of :data:`widgetal.strategies.STRATEGIES`.
    estimator : fitted classifier with ``predict_proba``
        For ``"committee"`` also the template its members are cloned from.
    X_pool : array-like or sparse matrix
        The unlabelled items' features, in the order the scores are returned.
    rng : numpy.random.Generator
    explore : float in [0, 1]
    multi_label, aggregate
        As for :func:`widgetal.strategies.pool_scores`.
    X_labelled, y_labelled : optional
        The labelled set, in a fixed order; required by ``"committee"``. Its size sets the
        draw's sharpness; without ``y_labelled`` the order is strict.
    embeddings : optional
        Rows aligned with ``X_pool`` for ``"density"``; default ``X_pool`` itself.
    n_members : int, default=5
        Committee size.
    sharpness_per_label : float or None, default=strategies.SHARPNESS_PER_LABEL
        ``beta`` per label; None orders strictly by score (top-k, as before the draw).

    Returns
    -------
    proba : ndarray of shape (n_pool, n_classes) or (n_pool, n_labels)
        ``estimator.predict_proba(X_pool)``.
    scores : ndarray of shape (n_pool,)
        Higher = ask sooner.

    Raises
    ------
    ValueError
        Unknown or inapplicable strategy, ``explore`` outside [0, 1], a negative
        ``sharpness_per_label``, no labelled set for the committee.
    EmptyPool
        ``X_pool`` has no rows.
    NotEnoughLabels
        ``"committee"`` with fewer than two labelled classes.
    """
    strategies.check_strategy(name, multi_label)
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore must be between 0 and 1, got {explore}")
    if sharpness_per_label is not None and not sharpness_per_label >= 0:
        raise ValueError(f"sharpness_per_label must be >= 0 or None, got {sharpness_per_label}")
    if _n_rows(X_pool) == 0:
        raise EmptyPool("The pool is empty: every item is labelled, nothing left to rank.")
    proba = np.asarray(estimator.predict_proba(X_pool))
    committee = None
    if name == "committee":
        committee = models.committee_proba(estimator, X_pool, X_labelled, y_labelled, rng,
                                           n_members)
    scores = strategies.pool_scores(
        name, proba, rng=rng, committee=committee,
        embeddings=X_pool if embeddings is None else embeddings,
        multi_label=multi_label, aggregate=aggregate,
    )
    if sharpness_per_label is not None and y_labelled is not None and name != "random":
        beta = strategies.sharpness(len(y_labelled), sharpness_per_label)
        # rows that miss 1 by rounding can put a measure a hair below 0
        scores = strategies.power_sample(np.clip(scores, 0.0, None), beta, rng)
    if explore > 0 and name != "random":
        scores = strategies.mix_random(scores, explore, rng)
    return proba, scores


def _n_rows(X: Any) -> int:
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None else len(X)


__all__ = ["rank_pool"]
