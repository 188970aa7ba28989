"""Query strategies: known probabilities in, known order out; bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from widgetal.errors import EmptyPool, NotEnoughLabels, WidgetalError
from widgetal.strategies import (
    STRATEGIES,
    density_weighted,
    entropy,
    least_confidence,
    margin,
    mix_random,
    random_scores,
    score_pool,
    top_n,
    vote_entropy,
)

# Rows from sure to unsure: a ranking by any uncertainty measure asks row 3 first, row 0 last.
PROBA = np.array([[0.98, 0.01, 0.01], [0.70, 0.20, 0.10], [0.50, 0.40, 0.10], [0.34, 0.33, 0.33]])
UNSURE_FIRST = [3, 2, 1, 0]


@pytest.mark.parametrize("measure", [least_confidence, margin, entropy])
def test_uncertainty_measures_ask_the_least_sure_rows_first(measure):
    assert np.argsort(-measure(PROBA)).tolist() == UNSURE_FIRST


def test_measures_have_their_textbook_values():
    proba = np.array([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(least_confidence(proba), [0.3, 0.5])
    np.testing.assert_allclose(margin(proba), [0.5, 1.0])
    np.testing.assert_allclose(
        entropy(proba), [-(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)), np.log(2)]
    )


def test_margin_and_least_confidence_disagree_where_the_runner_up_matters():
    # Same top probability, but row 1's second class is close: margin asks it first.
    proba = np.array([[0.5, 0.25, 0.25], [0.5, 0.45, 0.05]])
    assert least_confidence(proba)[0] == least_confidence(proba)[1]
    assert margin(proba)[1] > margin(proba)[0]


@pytest.mark.parametrize("measure", [least_confidence, margin, entropy])
@pytest.mark.parametrize(
    "bad",
    [
        np.array([0.5, 0.5]),
        np.array([[0.5, 0.6]]),
        np.array([[1.2, -0.2]]),
        np.array([[np.nan, 1]]),
    ],
    ids=["1-D", "sum>1", "negative", "nan"],
)
def test_bad_probabilities_raise_value_error(measure, bad):
    with pytest.raises(ValueError):
        measure(bad)


def test_an_empty_pool_raises_a_named_widgetal_error():
    with pytest.raises(EmptyPool):
        entropy(np.empty((0, 2)))
    assert issubclass(EmptyPool, WidgetalError)
    with pytest.raises(EmptyPool):
        score_pool("entropy", None, np.empty((0, 3)))


def test_random_scores_repeat_with_the_same_seed_and_need_a_generator():
    a = random_scores(PROBA, np.random.default_rng(7))
    b = random_scores(PROBA, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        random_scores(PROBA, 7)


def test_vote_entropy_asks_where_members_disagree():
    members = np.array(
        [
            [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],
            [[0.8, 0.2], [0.4, 0.6], [0.3, 0.7]],
            [[0.7, 0.3], [0.3, 0.7], [0.1, 0.9]],
        ]
    )
    scores = vote_entropy(members)
    # Row 1 splits 1–2; rows 0 and 2 are unanimous.
    assert scores.argmax() == 1
    assert scores[1] == pytest.approx(-(1 / 3 * np.log(1 / 3) + 2 / 3 * np.log(2 / 3)), abs=0.01)


def test_vote_entropy_breaks_ties_by_consensus_entropy_without_reordering_votes():
    # All three rows unanimous; row 1's members are least sure, so it goes first among equals.
    unanimous = np.array([[[0.9, 0.1], [0.55, 0.45], [0.7, 0.3]]] * 3)
    assert np.argsort(-vote_entropy(unanimous)).tolist() == [1, 2, 0]
    # A split vote still beats the most uncertain unanimous row.
    mixed = np.array([[[0.99, 0.01], [0.5001, 0.4999]], [[0.01, 0.99], [0.5002, 0.4998]]])
    assert vote_entropy(mixed).argmax() == 0


def test_vote_entropy_refuses_a_two_dimensional_array():
    with pytest.raises(ValueError):
        vote_entropy(PROBA)


def test_density_weighting_demotes_outliers_and_accepts_sparse_rows():
    emb = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [1.0, 0.05, 0.0], [0.0, 0.0, 1.0]])
    scores = np.ones(4)
    dense = density_weighted(scores, emb)
    assert dense.argmin() == 3
    np.testing.assert_allclose(density_weighted(scores, sp.csr_matrix(emb)), dense)
    np.testing.assert_array_equal(density_weighted(scores, emb, beta=0), scores)


def test_density_is_the_mean_cosine_similarity_to_the_pool():
    rng = np.random.default_rng(0)
    emb = rng.random((50, 4))
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    expected = (unit @ unit.T).mean(axis=1)
    np.testing.assert_allclose(density_weighted(np.ones(50), emb), expected)


def test_density_refuses_misaligned_embeddings():
    with pytest.raises(ValueError):
        density_weighted(np.ones(3), np.ones((4, 2)))


def test_mix_random_gives_the_share_of_each_top_batch_to_random_items():
    n = 1000
    scores = np.arange(n, dtype=float)  # item i has score i: the best are the last items
    mixed = mix_random(scores, 0.2, np.random.default_rng(1))
    top = top_n(mixed, 100)
    best = set(range(n - 100, n))
    # 80 slots go to the best scorers (in order), 20 to random items (mostly not the best).
    assert np.sum(np.isin(top, list(best))) >= 80
    assert np.sum(~np.isin(top, list(best))) >= 15
    assert np.argsort(-mixed).tolist()[:4] == [999, 998, 997, 996]
    np.testing.assert_array_equal(mix_random(scores, 0.0, np.random.default_rng(1)), scores)
    with pytest.raises(ValueError):
        mix_random(scores, 1.5, np.random.default_rng(1))


def test_top_n_returns_the_best_first():
    assert top_n(np.array([0.2, 0.9, 0.1, 0.5]), 3).tolist() == [1, 3, 0]
    assert top_n(np.array([0.2, 0.9]), 5).tolist() == [1, 0]


def test_every_named_strategy_scores_a_pool_through_an_estimator():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(int)
    model = LogisticRegression().fit(X[:40], y[:40])
    assert set(STRATEGIES) == {
        "least-confidence", "margin", "entropy", "random", "committee", "density"
    }
    for name in STRATEGIES:
        scores = score_pool(
            name, model, X[40:], X_labelled=X[:40], y_labelled=y[:40],
            rng=np.random.default_rng(1), embeddings=np.abs(X[40:]),
        )
        assert scores.shape == (80,) and np.isfinite(scores).all(), name
    # Uncertainty puts the items nearest the boundary (x0 ≈ 0) first.
    order = np.argsort(-score_pool("margin", model, X[40:]))
    assert np.abs(X[40:][order[:10], 0]).mean() < np.abs(X[40:][order[-10:], 0]).mean()


def test_committee_needs_two_labelled_classes_and_a_labelled_set():
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(NotEnoughLabels):
        score_pool("committee", LogisticRegression(), X, X_labelled=X, y_labelled=np.zeros(20))
    with pytest.raises(ValueError):
        score_pool("committee", LogisticRegression(), X)


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(ValueError, match="least-confidence"):
        score_pool("uncertainty", None, np.ones((3, 2)))
