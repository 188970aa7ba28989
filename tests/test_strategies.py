"""Query strategies: known probabilities in, known order out; bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from widgetal.errors import EmptyPool, NotEnoughLabels, WidgetalError
from widgetal.models import committee_proba, multilabel_classifier
from widgetal.ranking import rank_pool
from widgetal.strategies import (
    MULTILABEL_STRATEGIES,
    STRATEGIES,
    density_weighted,
    entropy,
    least_confidence,
    margin,
    mix_random,
    multilabel_scores,
    pool_scores,
    power_sample,
    random_scores,
    sharpness,
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
        pool_scores("entropy", np.empty((0, 3)))
    with pytest.raises(EmptyPool):
        rank_pool("entropy", None, np.empty((0, 3)), rng=np.random.default_rng(0))


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


def _pool():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(int)
    return X, y, LogisticRegression().fit(X[:40], y[:40])


def test_every_named_strategy_ranks_a_pool_through_a_fitted_model():
    X, y, model = _pool()
    assert set(STRATEGIES) == {
        "least-confidence", "margin", "entropy", "random", "committee", "density"
    }
    for name in STRATEGIES:
        proba, scores = rank_pool(
            name, model, X[40:], X_labelled=X[:40], y_labelled=y[:40],
            rng=np.random.default_rng(1), embeddings=np.abs(X[40:]),
        )
        assert scores.shape == (80,) and np.isfinite(scores).all(), name
        np.testing.assert_allclose(proba, model.predict_proba(X[40:]))
    # Uncertainty puts the items nearest the boundary (x0 ≈ 0) first.
    _, scores = rank_pool("margin", model, X[40:], rng=np.random.default_rng(1))
    order = np.argsort(-scores)
    assert np.abs(X[40:][order[:10], 0]).mean() < np.abs(X[40:][order[-10:], 0]).mean()


def test_pool_scores_is_the_measure_of_the_probabilities_it_is_given():
    # pure: the same array in, the named measure's values out; no model involved
    for name, measure in [("least-confidence", least_confidence), ("margin", margin),
                          ("entropy", entropy)]:
        np.testing.assert_allclose(pool_scores(name, PROBA), measure(PROBA))
    emb = np.abs(np.random.default_rng(0).normal(size=(4, 3)))
    np.testing.assert_allclose(pool_scores("density", PROBA, embeddings=emb),
                               density_weighted(entropy(PROBA), emb))
    members = np.stack([PROBA, PROBA[::-1]])
    np.testing.assert_allclose(pool_scores("committee", PROBA, committee=members),
                               vote_entropy(members))
    with pytest.raises(ValueError, match="committee"):
        pool_scores("committee", PROBA)
    with pytest.raises(ValueError, match="embeddings"):
        pool_scores("density", PROBA)


def test_the_committee_ranks_by_the_vote_entropy_of_members_fitted_on_bootstraps():
    X, y, model = _pool()
    members = committee_proba(model, X[40:], X[:40], y[:40], np.random.default_rng(3), 5)
    assert members.shape == (5, 80, 2)
    # bootstraps differ, so the members do; each still saw both classes
    assert not np.allclose(members[0], members[1])
    _, scores = rank_pool("committee", model, X[40:], X_labelled=X[:40], y_labelled=y[:40],
                          rng=np.random.default_rng(3), sharpness_per_label=None)
    np.testing.assert_allclose(scores, vote_entropy(members))


def test_committee_needs_two_labelled_classes_and_a_labelled_set():
    X = np.random.default_rng(0).normal(size=(20, 2))
    model = LogisticRegression().fit(X, np.arange(20) % 2)
    rng = np.random.default_rng(0)
    with pytest.raises(NotEnoughLabels):
        rank_pool("committee", model, X, rng=rng, X_labelled=X, y_labelled=np.zeros(20))
    with pytest.raises(ValueError):
        rank_pool("committee", model, X, rng=rng)


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(ValueError, match="least-confidence"):
        pool_scores("uncertainty", np.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match="least-confidence"):
        rank_pool("uncertainty", None, np.ones((3, 2)), rng=np.random.default_rng(0))


# -- multi-label: per-label probabilities (n x labels), rows need not sum to 1 -----------------

# Row 0: one label on the fence, one sure. Row 1: both labels fairly unsure. Row 2: all sure.
LABEL_PROBA = np.array([[0.5, 0.0], [0.7, 0.3], [1.0, 0.0]])


def test_multilabel_measures_have_hand_computed_values_for_mean_and_max():
    h = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p))  # noqa: E731  binary entropy
    # least-confidence per label: min(p, 1 - p) -> rows [0.5, 0], [0.3, 0.3], [0, 0]
    np.testing.assert_allclose(
        multilabel_scores(LABEL_PROBA, "least-confidence", "mean"), [0.25, 0.3, 0.0])
    np.testing.assert_allclose(
        multilabel_scores(LABEL_PROBA, "least-confidence", "max"), [0.5, 0.3, 0.0])
    # margin per label: 1 - |2p - 1| -> rows [1, 0], [0.6, 0.6], [0, 0]
    np.testing.assert_allclose(multilabel_scores(LABEL_PROBA, "margin", "mean"), [0.5, 0.6, 0.0])
    np.testing.assert_allclose(multilabel_scores(LABEL_PROBA, "margin", "max"), [1.0, 0.6, 0.0])
    # entropy per label: H(p) with 0 log 0 = 0 -> rows [log 2, 0], [H(.7), H(.3)], [0, 0]
    np.testing.assert_allclose(
        multilabel_scores(LABEL_PROBA, "entropy", "mean"), [np.log(2) / 2, h(0.7), 0.0])
    np.testing.assert_allclose(
        multilabel_scores(LABEL_PROBA, "entropy", "max"), [np.log(2), h(0.7), 0.0])


def test_mean_and_max_disagree_on_one_unsure_label_against_several_fairly_unsure_ones():
    # mean asks row 1 (both labels unsure) first, max asks row 0 (one label on the fence) first
    assert np.argsort(-multilabel_scores(LABEL_PROBA, "least-confidence", "mean")).tolist() == [
        1, 0, 2]
    assert np.argsort(-multilabel_scores(LABEL_PROBA, "least-confidence", "max")).tolist() == [
        0, 1, 2]


def test_one_label_ranks_like_the_two_class_measure_of_p_and_1_minus_p():
    p = np.array([[0.1], [0.45], [0.8], [0.6]])
    two_class = np.hstack([p, 1 - p])
    for name, measure in [("least-confidence", least_confidence), ("margin", margin),
                          ("entropy", entropy)]:
        for aggregate in ("mean", "max"):
            np.testing.assert_allclose(multilabel_scores(p, name, aggregate), measure(two_class))


@pytest.mark.parametrize(
    "bad",
    [
        np.array([0.2, 0.5]),  # 1-D
        np.ones((3, 0)),  # no labels
        np.array([[0.2, 1.5]]),  # above 1
        np.array([[-0.1, 0.5]]),  # negative
        np.array([[np.nan, 0.5]]),  # not finite
        np.array([[[0.2, 0.5]]]),  # 3-D
    ],
)
def test_multilabel_scores_refuse_bad_probabilities(bad):
    with pytest.raises(ValueError, match="proba"):
        multilabel_scores(bad)


def test_multilabel_scores_accept_rows_that_do_not_sum_to_one_and_refuse_bad_options():
    assert multilabel_scores(np.array([[0.9, 0.9, 0.9]])).shape == (1,)  # sums to 2.7: fine
    with pytest.raises(ValueError, match="aggregate"):
        multilabel_scores(LABEL_PROBA, "entropy", "median")
    with pytest.raises(ValueError, match="least-confidence"):
        multilabel_scores(LABEL_PROBA, "committee")
    with pytest.raises(EmptyPool):
        multilabel_scores(np.empty((0, 3)))


def _multilabel_pool():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + 0.5 * rng.normal(size=150) > 0.3]).astype(int)
    model = multilabel_classifier(LogisticRegression()).fit(X[:50], Y[:50])
    return X[50:], model


@pytest.mark.parametrize("name", MULTILABEL_STRATEGIES)
def test_every_multilabel_strategy_scores_a_one_vs_rest_pool(name):
    X_pool, model = _multilabel_pool()
    _, scores = rank_pool(name, model, X_pool, rng=np.random.default_rng(1), multi_label=True,
                          aggregate="max", embeddings=np.abs(X_pool))
    assert scores.shape == (100,) and np.isfinite(scores).all()


def test_multilabel_score_pool_ranks_by_the_aggregate_of_the_models_label_probabilities():
    X_pool, model = _multilabel_pool()
    p = model.predict_proba(X_pool)
    by_hand = np.maximum(-(p * np.log(p) + (1 - p) * np.log(1 - p)), 0).mean(axis=1)
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(
        rank_pool("entropy", model, X_pool, rng=rng, multi_label=True, aggregate="mean")[1],
        by_hand)
    # density multiplies the same aggregate by each item's typicality
    _, density = rank_pool("density", model, X_pool, rng=rng, multi_label=True,
                           aggregate="mean")
    np.testing.assert_allclose(density, density_weighted(by_hand, X_pool))


def test_committee_is_refused_in_a_multi_label_project_with_the_names_that_work():
    X_pool, model = _multilabel_pool()
    with pytest.raises(ValueError, match="multi-label.*entropy"):
        rank_pool("committee", model, X_pool, rng=np.random.default_rng(0), multi_label=True)
    with pytest.raises(ValueError, match="multi-label.*entropy"):
        pool_scores("committee", model.predict_proba(X_pool), multi_label=True)


def test_rank_pool_returns_the_models_probabilities_and_mixes_exploration_in():
    X_pool, model = _multilabel_pool()
    proba, scores = rank_pool("entropy", model, X_pool, rng=np.random.default_rng(0),
                              multi_label=True)
    np.testing.assert_allclose(proba, model.predict_proba(X_pool))
    np.testing.assert_allclose(scores, multilabel_scores(proba, "entropy", "mean"))
    _, mixed = rank_pool("entropy", model, X_pool, rng=np.random.default_rng(0),
                         multi_label=True, explore=0.5)
    # half of the top ten are now random draws, not the ten most uncertain items
    assert set(top_n(mixed, 10)) != set(top_n(scores, 10))


def test_two_class_measures_pick_the_same_batches_from_a_real_models_probabilities():
    # Why simulate may copy one two-class curve to the others: on a fitted model's output the
    # three measures order the pool alike (a wrong measure would break this).
    X, _, model = _pool()
    proba = model.predict_proba(X[40:])
    orders = {name: np.argsort(-pool_scores(name, proba), kind="stable").tolist()
              for name in ("least-confidence", "margin", "entropy")}
    assert orders["margin"] == orders["least-confidence"] == orders["entropy"]
    # ... which is not so with three classes
    three = np.array([[0.5, 0.25, 0.25], [0.5, 0.45, 0.05], [0.45, 0.45, 0.10]])
    assert (np.argsort(-pool_scores("margin", three)).tolist()
            != np.argsort(-pool_scores("least-confidence", three)).tolist())


def test_strategies_module_fits_nothing():
    # the pure layer: no estimator cloning or fitting lives here (models.committee_proba does)
    import inspect

    import widgetal.strategies as strategies

    source = inspect.getsource(strategies)
    assert "clone(" not in source and ".fit(" not in source and "predict_proba(" not in source


def test_power_sample_draws_each_item_first_in_proportion_to_its_score_to_the_power():
    # weights 1 : 1 : 2 (beta 1) and 1 : 1 : 4 (beta 2): the third item comes first half of
    # the time, then two thirds of the time; a zero score never does
    scores = np.array([1.0, 1.0, 2.0, 0.0])
    rng = np.random.default_rng(5)
    for beta, share in ((1.0, 1 / 2), (2.0, 2 / 3)):
        firsts = np.array([np.argmax(power_sample(scores, beta, rng)) for _ in range(4000)])
        assert abs(np.mean(firsts == 2) - share) < 0.03
        assert not (firsts == 3).any()
    # beta 0 ignores the scores: every item alike, the zero score included
    firsts = np.array([np.argmax(power_sample(scores, 0.0, rng)) for _ in range(4000)])
    assert np.all(np.abs(np.bincount(firsts, minlength=4) / 4000 - 0.25) < 0.03)


def test_power_sample_is_the_strict_order_when_sharp_and_ignores_the_scores_scale():
    scores = np.linspace(0.1, 0.6, 200)
    strict = np.argsort(-scores).tolist()
    assert np.argsort(-power_sample(scores, np.inf, np.random.default_rng(0))).tolist() == strict
    assert np.argsort(-power_sample(scores, 1e6, np.random.default_rng(0))).tolist() == strict
    # margin is twice least-confidence for two classes: the same draw from the same seed
    a = power_sample(scores, 10.0, np.random.default_rng(3))
    b = power_sample(2 * scores, 10.0, np.random.default_rng(3))
    np.testing.assert_array_equal(np.argsort(-a), np.argsort(-b))
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="beta"):
            power_sample(scores, bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-negative"):
        power_sample(-scores, 1.0, np.random.default_rng(0))


def test_an_unsure_early_model_gets_a_spread_batch_and_a_trained_one_its_strict_top():
    # SpamAssassin after a seed of 100: the model's spam probabilities all sit between 0.2 and
    # 0.48, so the strict entropy order asks the 100 most spam-like e-mails, one end of the
    # ranking. Drawn at the sharpness of 100 labels, the batch reaches across the pool; at
    # that of 5,000 labels it keeps to the unsure end (entropy is flat near 0.5, so items
    # nearly as unsure as the strict top share its places).
    p = np.linspace(0.2, 0.48, 2000)
    proba = np.column_stack([1 - p, p])
    u = entropy(proba)
    strict = set(top_n(u, 100).tolist())
    assert p[list(strict)].min() > 0.46
    early = top_n(power_sample(u, sharpness(100), np.random.default_rng(0)), 100)
    assert len(strict & set(early.tolist())) < 20
    assert np.mean(p[early] < 0.4) > 0.3
    late = top_n(power_sample(u, sharpness(5000), np.random.default_rng(0)), 100)
    assert p[late].min() > 0.43
    assert len(strict & set(late.tolist())) > 50


def test_rank_pool_draws_the_order_at_the_sharpness_of_its_labelled_set():
    X, y, model = _pool()
    proba = model.predict_proba(X[40:])
    _, drawn = rank_pool("entropy", model, X[40:], rng=np.random.default_rng(4),
                         X_labelled=X[:40], y_labelled=y[:40])
    expected = power_sample(entropy(proba), sharpness(40), np.random.default_rng(4))
    np.testing.assert_array_equal(drawn, expected)
    _, strict = rank_pool("entropy", model, X[40:], rng=np.random.default_rng(4),
                          y_labelled=y[:40], sharpness_per_label=None)
    np.testing.assert_allclose(strict, entropy(proba))
    assert np.argsort(-drawn).tolist() != np.argsort(-strict).tolist()
    # random is random already: not drawn again
    _, rand = rank_pool("random", model, X[40:], rng=np.random.default_rng(4), y_labelled=y[:40])
    np.testing.assert_array_equal(rand, random_scores(proba, np.random.default_rng(4)))
    with pytest.raises(ValueError, match="sharpness_per_label"):
        rank_pool("entropy", model, X[40:], rng=np.random.default_rng(4), y_labelled=y[:40],
                  sharpness_per_label=-1.0)
