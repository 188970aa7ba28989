"""Simulation: curves are computed, the table's arithmetic is right, bad files fail clearly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from typer.testing import CliRunner

from widgetal import Queue
from widgetal.cli import app
from widgetal.errors import InvalidInput, NotEnoughLabels
from widgetal.models import load_model
from widgetal.orchestrator import Orchestrator
from widgetal.simulate import (
    SimulationResult,
    default_estimator,
    labels_to_reach,
    load_labelled,
    replay_round,
    saving_vs_random,
    simulate,
)
from widgetal.strategies import STRATEGIES, entropy, power_sample, sharpness, top_n

POSITIVE = ["great", "love", "happy", "good", "fun", "nice"]
NEGATIVE = ["awful", "hate", "sad", "bad", "boring", "ugly"]
FILLER = ["the", "a", "day", "movie", "food", "weather", "today", "really", "so", "it"]


def make_texts(n: int, classes: int = 2, seed: int = 0) -> pd.DataFrame:
    """Texts whose label shows in a few signal words among filler, some of them ambiguous."""
    rng = np.random.default_rng(seed)
    vocab = [POSITIVE, NEGATIVE, ["maybe", "perhaps", "unsure", "meh", "whatever", "okay"]]
    rows = []
    for i in range(n):
        label = i % classes
        words = list(rng.choice(FILLER, size=5))
        words += list(rng.choice(vocab[label], size=rng.integers(1, 3)))
        if rng.random() < 0.3:  # noise: a word of another class
            words.append(rng.choice(vocab[(label + 1) % classes]))
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": ["neg", "pos", "neutral"][label]})
    return pd.DataFrame(rows)


def test_every_strategy_gets_a_learning_curve_with_one_point_per_batch():
    data = make_texts(300)
    result = simulate(
        data.text, data.label, strategies=["random", "entropy", "committee", "density"],
        batch=40, start=20, repeats=2, progress=False,
    )
    assert result.metric == "roc_auc"
    curves = result.curves
    n_pool = result.settings["n_pool"]
    assert n_pool == 270  # 10% held out
    expected = [20, 60, 100, 140, 180, 220, 260, 270]
    for name in ["random", "entropy", "committee", "density"]:
        curve = curves[curves.strategy == name]
        assert curve.n_labels.tolist() == expected
        assert curve.repeats.eq(2).all()
        assert curve.roc_auc_mean.between(0, 1).all()
    # With every pool item labelled, every strategy trained the full-data model.
    last = curves[curves.n_labels == n_pool]
    np.testing.assert_allclose(last.roc_auc_mean, result.full_score)
    # The words are informative: the model learns well beyond chance.
    assert result.full_score > 0.85


def test_simulation_repeats_exactly_with_the_same_seed():
    data = make_texts(200)
    kwargs = dict(strategies=["random", "margin"], batch=50, start=20, repeats=1, progress=False)
    a = simulate(data.text, data.label, **kwargs).runs
    b = simulate(data.text, data.label, **kwargs).runs
    pd.testing.assert_frame_equal(a, b)


def _curve_of(result, name):
    return result.runs[result.runs.strategy == name].drop(columns="strategy").reset_index(drop=True)


def test_a_copied_two_class_curve_is_the_curve_its_strategy_computes_alone():
    # Simulate copies least-confidence's curve to margin and entropy for two classes. Each
    # strategy run on its own (nothing to copy from) must give that same curve.
    data = make_texts(200)
    kwargs = dict(batch=30, start=20, repeats=1, progress=False, max_labels=140)
    together = simulate(data.text, data.label, strategies=["least-confidence", "margin",
                                                           "entropy"], **kwargs)
    for name in ("least-confidence", "margin", "entropy"):
        alone = simulate(data.text, data.label, strategies=[name], **kwargs)
        pd.testing.assert_frame_equal(_curve_of(alone, name), _curve_of(together, name))


@pytest.mark.parametrize("explore", [0.0, 0.5])
def test_once_the_queue_is_drawn_margin_is_least_confidences_curve_and_entropy_its_own(explore):
    # Margin is twice least-confidence for two classes: from the same generator the draw is
    # the same, so simulate copies it; computed alone it must be that same curve. Entropy is
    # not proportional to them: it is drawn differently and gets its own curve.
    data = make_texts(300)
    kwargs = dict(batch=30, start=20, repeats=1, progress=False, max_labels=140,
                  explore=explore)
    together = simulate(data.text, data.label,
                        strategies=["least-confidence", "margin", "entropy"], **kwargs)
    alone = simulate(data.text, data.label, strategies=["margin"], **kwargs)
    lc, en = _curve_of(together, "least-confidence"), _curve_of(together, "entropy")
    pd.testing.assert_frame_equal(_curve_of(alone, "margin"), lc)
    pd.testing.assert_frame_equal(_curve_of(together, "margin"), lc)
    assert lc.n_labels.tolist() == en.n_labels.tolist()
    assert not lc.equals(en)
    # in strict order (no draw) all three rank alike and share one curve
    strict = simulate(data.text, data.label, strategies=["least-confidence", "entropy"],
                      sharpness_per_label=None, **kwargs)
    entropy_alone = simulate(data.text, data.label, strategies=["entropy"],
                             sharpness_per_label=None, **kwargs)
    pd.testing.assert_frame_equal(_curve_of(strict, "entropy"),
                                  _curve_of(strict, "least-confidence"))
    pd.testing.assert_frame_equal(_curve_of(entropy_alone, "entropy"),
                                  _curve_of(strict, "entropy"))


@pytest.mark.parametrize(
    "strategy,explore",
    [(name, 0.0) for name in sorted(STRATEGIES)] + [("entropy", 0.3), ("committee", 0.2)],
)
def test_a_simulated_round_ranks_the_pool_as_the_orchestrator_cycle_does(
    sqlite_url, tmp_path, strategy, explore
):
    # The same 60 labels in a real SQLite queue and in a simulation's pool: the orchestrator's
    # cycle and simulate's round must order the other 100 texts identically, with the same
    # default model, strategy, exploration and seed.
    data = make_texts(160, seed=3)
    data["text"] = [f"{t} t{i}" for i, t in enumerate(data.text)]  # no two texts alike
    labelled = np.arange(len(data)) < 60
    q = Queue(sqlite_url, labels=["neg", "pos"])
    q.add(data.assign(label=data.label.where(labelled, None)), label="label")
    run = Orchestrator(q, models_dir=tmp_path / "models", strategy=strategy, explore=explore,
                       random_state=7).run_once()
    assert run.status == "trained", run.reason
    queue_order = q.undone()["item_id"].tolist()  # served first to last
    # item ids by position: the rows were imported in order
    ids = np.sort(np.concatenate([q.labelled()["item_id"], q.undone()["item_id"]]))

    # simulate's side: the orchestrator's features (its fitted vectorizer), simulate's model
    vectorizer = load_model(run.model_file).named_steps["features"]
    X = vectorizer.transform(data.text.tolist())
    y = data.label.to_numpy(dtype=object)
    model = clone(default_estimator()).fit(X[labelled], y[labelled])
    left, scores = replay_round(strategy, model, X, y, labelled, explore=explore,
                                rng=np.random.default_rng([7, run.run_id]))
    simulated_order = ids[left][np.lexsort((ids[left], -scores))].tolist()
    assert simulated_order == queue_order
    # the guesses the app shows come from the same model: same probabilities
    guesses = {i.item_id: i.guess_proba for i in q.items(queue_order)}
    np.testing.assert_allclose([guesses[i] for i in ids[left]],
                               model.predict_proba(X[left]).max(axis=1), rtol=1e-6)


def test_the_orchestrator_draws_its_queue_at_the_sharpness_of_its_labels(sqlite_url, tmp_path):
    # The orchestrator's cycle serves the draw (strategies.power_sample at the sharpness of its
    # 60 labels), not the strict entropy order, which a first batch after a small seed is
    # hurt by (README: "Will active learning pay off on my data?").
    data = make_texts(160, seed=3)
    data["text"] = [f"{t} t{i}" for i, t in enumerate(data.text)]
    labelled = np.arange(len(data)) < 60
    q = Queue(sqlite_url, labels=["neg", "pos"])
    q.add(data.assign(label=data.label.where(labelled, None)), label="label")
    run = Orchestrator(q, models_dir=tmp_path / "models", strategy="entropy",
                       random_state=7).run_once()
    assert run.status == "trained", run.reason
    queue_order = q.undone()["item_id"].tolist()
    ids = np.sort(np.concatenate([q.labelled()["item_id"], q.undone()["item_id"]]))[~labelled]
    proba = load_model(run.model_file).predict_proba(data.text[~labelled].tolist())
    drawn = power_sample(entropy(proba), sharpness(60), np.random.default_rng([7, run.run_id]))
    assert ids[np.lexsort((ids, -drawn))].tolist() == queue_order
    strict = entropy(proba)
    assert ids[np.lexsort((ids, -strict))].tolist() != queue_order


def test_changing_the_strategy_changes_the_items_a_round_picks():
    data = make_texts(300, seed=1)
    from widgetal.features import make_featurizer

    X = make_featurizer("tfidf").fit_transform(data.text.tolist())
    y = data.label.to_numpy(dtype=object)
    labelled = np.arange(300) < 40
    model = clone(default_estimator()).fit(X[labelled], y[labelled])
    picks = {}
    for name in ("random", "entropy", "density", "committee"):
        left, scores = replay_round(name, model, X, y, labelled, rng=np.random.default_rng(0))
        picks[name] = frozenset(left[top_n(scores, 20)].tolist())
    assert len(set(picks.values())) == 4  # four strategies, four different batches
    # entropy asks about the texts the model is least sure of; random does not prefer them
    p = model.predict_proba(X)
    unsure = lambda rows: np.mean(1 - p[list(rows)].max(axis=1))  # noqa: E731
    assert unsure(picks["entropy"]) > unsure(picks["random"])
    # an exploration share swaps part of entropy's batch for random texts
    left, mixed = replay_round("entropy", model, X, y, labelled, rng=np.random.default_rng(0),
                               explore=0.5)
    explored = frozenset(left[top_n(mixed, 20)].tolist())
    assert 0 < len(explored & picks["entropy"]) < 20


def test_more_than_two_classes_report_macro_f1_and_every_other_score():
    data = make_texts(240, classes=3)
    result = simulate(
        data.text, data.label, strategies=["random", "margin"], batch=60, start=30,
        repeats=1, progress=False,
    )
    assert result.metric == "f1_macro"  # the orchestrator's name for it
    assert {"f1_macro_mean", "accuracy_mean", "roc_auc_mean",
            "average_precision_mean"} <= set(result.curves.columns)


def test_the_seed_set_holds_every_class_even_when_one_is_rare():
    data = make_texts(200)
    rare = data[data.label == "pos"].index[:6]
    data = pd.concat([data[data.label == "neg"], data.loc[rare]])
    # Four seed labels out of ~95 negatives: a plain random draw would usually miss "pos".
    result = simulate(data.text, data.label, strategies=["random"], batch=50, start=4,
                      repeats=3, progress=False, max_labels=4)
    assert result.runs.n_labels.eq(4).all()  # training succeeded: both classes were there


def test_labels_to_target_and_saving_on_a_hand_made_curve():
    n = [100, 200, 300, 400, 500]
    curves = {
        "random": [0.60, 0.70, 0.80, 0.85, 0.90],
        "entropy": [0.60, 0.80, 0.895, 0.91, 0.90],
        "density": [0.50, 0.55, 0.60, 0.65, 0.70],
    }
    rows = [
        {"strategy": s, "repeat": r, "n_labels": k, "roc_auc": v + (0.01 if r else -0.01)}
        for s, values in curves.items() for r in (0, 1) for k, v in zip(n, values)
    ]
    result = SimulationResult(pd.DataFrame(rows), "roc_auc", full_score=0.90)
    table = result.summary().set_index("strategy")
    # Target 0.99 * 0.90 = 0.891: random reaches it at 500, entropy at 300, density never.
    assert table.attrs["target"] == pytest.approx(0.891)
    assert table.loc["random", "labels_to_target"] == 500
    assert table.loc["entropy", "labels_to_target"] == 300
    assert np.isnan(table.loc["density", "labels_to_target"])
    assert table.loc["entropy", "saving_vs_random_pct"] == pytest.approx(40.0)
    assert table.loc["random", "saving_vs_random_pct"] == 0
    assert np.isnan(table.loc["density", "saving_vs_random_pct"])
    assert table.loc["entropy", "best_roc_auc"] == pytest.approx(0.91)


def test_arithmetic_helpers():
    assert labels_to_reach(np.array([10, 20, 30]), np.array([0.5, 0.7, 0.6]), 0.65) == 20
    assert np.isnan(labels_to_reach(np.array([10, 20]), np.array([0.5, 0.6]), 0.65))
    assert saving_vs_random(2500, 5000) == 50.0
    assert saving_vs_random(6000, 5000) == -20.0
    assert np.isnan(saving_vs_random(float("nan"), 5000))


def test_a_one_class_file_is_refused_with_a_clear_error():
    data = make_texts(100)
    data["label"] = "pos"
    with pytest.raises(NotEnoughLabels, match="at least two"):
        simulate(data.text, data.label, strategies=["random"], progress=False)


def test_unknown_strategy_is_refused_before_any_work():
    data = make_texts(100)
    with pytest.raises(InvalidInput, match="least-confidence"):
        simulate(data.text, data.label, strategies=["random", "uncertainty"], progress=False)


def test_a_missing_column_names_the_columns_the_file_has(tmp_path):
    path = tmp_path / "data.csv"
    make_texts(50).to_csv(path, index=False)
    with pytest.raises(InvalidInput, match=r"\['sentiment'\].*'text', 'label'"):
        load_labelled(path, "text", "sentiment")


def test_a_headerless_latin1_file_is_read_with_column_names(tmp_path):
    path = tmp_path / "sentiment140.csv"
    path.write_bytes(
        '"0","1","Mon","NO_QUERY","u1","caf\xe9 was bad"\n'
        '"4","2","Tue","NO_QUERY","u2","so good"\n'.encode("latin-1")
    )
    texts, labels = load_labelled(
        path, "text", "target", encoding="latin-1",
        columns=["target", "ids", "date", "flag", "user", "text"],
    )
    assert texts == ["café was bad", "so good"]
    assert labels == ["0", "4"]
    texts, labels = load_labelled(path, "5", "0", encoding="latin-1", columns=[])
    assert labels == ["0", "4"]


def test_cli_writes_curves_summary_and_plot_and_prints_the_table(tmp_path):
    path = tmp_path / "data.csv"
    make_texts(200).to_csv(path, index=False)
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        ["simulate", str(path), "--strategies", "random,entropy", "--batch", "50",
         "--start", "20", "--repeats", "1", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "saving vs random" in result.output and "entropy" in result.output
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves.strategy) == {"random", "entropy"}
    assert {"roc_auc_mean", "roc_auc_std", "n_labels"} <= set(curves.columns)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.strategy) == ["random", "entropy"]
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_reports_a_one_class_file_as_an_error(tmp_path):
    path = tmp_path / "data.csv"
    data = make_texts(60)
    data["label"] = "pos"
    data.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["simulate", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0
    assert isinstance(result.exception, NotEnoughLabels)


def test_curves_computed_in_worker_processes_are_the_curves_computed_one_after_another():
    # --jobs spreads the (repeat, strategy) curves over processes; each curve is seeded on its
    # own, so the result, twins included, is the same as in one process
    data = make_texts(240, seed=5)
    kwargs = dict(strategies=["random", "least-confidence", "margin", "entropy", "committee"],
                  batch=30, start=20, repeats=2, progress=False, max_labels=110, explore=0.2)
    alone = simulate(data.text, data.label, n_jobs=1, **kwargs)
    spread = simulate(data.text, data.label, n_jobs=2, **kwargs)
    pd.testing.assert_frame_equal(alone.runs, spread.runs)
    pd.testing.assert_frame_equal(alone.curves, spread.curves)
    assert len(alone.runs) == 5 * 2 * 4  # every strategy, repeat and round


@pytest.mark.parametrize("jobs", [0, 1.5])
def test_a_jobs_count_that_means_nothing_is_refused(jobs):
    data = make_texts(60)
    with pytest.raises(InvalidInput, match="--jobs"):
        simulate(data.text, data.label, n_jobs=jobs, progress=False, repeats=1)
