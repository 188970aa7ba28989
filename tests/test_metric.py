"""--metric: the score that names model files and heads status, and that simulate's curves use.

Scores are checked against scikit-learn's on random probabilities with ties, against hand
counts, through real orchestrator cycles on SQLite (and PostgreSQL when given), and through
simulations of the shared tweets (skipped when ../shared is absent) and of texts built here.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TWEETS
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold
from typer.testing import CliRunner

from widgetal import Queue
from widgetal.cli import app
from widgetal.errors import InvalidInput
from widgetal.metrics import (
    METRICS,
    MULTILABEL_METRICS,
    average_precision,
    check_metric,
    classification_scores,
    positive_class,
)
from widgetal.models import list_models
from widgetal.orchestrator import Orchestrator
from widgetal.simulate import SimulationResult, load_labelled, simulate

WORDS = {"refund": ["refund", "money", "back", "charge"],
         "other": ["hello", "thanks", "question", "login", "password", "update"]}
FILLER = ["the", "my", "a", "today", "please", "account", "order", "it", "is", "was"]


def tickets(n: int, rare: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Support texts, a ``rare`` share about refunds; a word of the other class now and then."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "refund" if rng.random() < rare else "other"
        words = list(rng.choice(FILLER, 4)) + list(rng.choice(WORDS[label], rng.integers(1, 3)))
        if rng.random() < 0.3:
            words.append(rng.choice(WORDS["other" if label == "refund" else "refund"]))
        rng.shuffle(words)
        rows.append({"id": f"t{i}", "text": " ".join(words) + f" n{i}", "label": label})
    return pd.DataFrame(rows)


# -- the scores ------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [2, 3, 4])
def test_every_score_equals_scikit_learns_on_random_probabilities_with_ties(k):
    rng = np.random.default_rng(k)
    classes = np.array(["a", "b", "c", "d"][:k], dtype=object)
    for _ in range(25):
        n = int(rng.integers(20, 300))
        y = rng.choice(classes, n)
        proba = np.round(rng.dirichlet(np.ones(k), n), 1) + 1e-9  # coarse: many ties
        proba /= proba.sum(axis=1, keepdims=True)
        got = classification_scores(y, proba, classes, positive=classes[0] if k == 2 else None)
        predicted = classes[proba.argmax(axis=1)]
        if k == 2:
            auc = roc_auc_score(y == classes[1], proba[:, 1])
            ap = average_precision_score(y == classes[0], proba[:, 0])
        else:
            auc = roc_auc_score(y, proba, multi_class="ovr", labels=list(classes))
            ap = np.mean([average_precision_score(y == c, proba[:, j])
                          for j, c in enumerate(classes)])
        assert got["roc_auc"] == pytest.approx(auc, abs=1e-12)
        assert got["average_precision"] == pytest.approx(ap, abs=1e-12)
        assert got["accuracy"] == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
        assert got["f1_macro"] == pytest.approx(
            f1_score(y, predicted, average="macro", labels=list(classes)), abs=1e-12)


def test_average_precision_by_hand_and_the_rarer_class_is_the_positive():
    # scores for "refund", highest first: refund, other, refund, other
    # precision at each refund found: 1/1, 2/3 -> AP = (1 + 2/3) / 2
    y = ["refund", "other", "refund", "other"]
    p_refund = np.array([0.9, 0.7, 0.6, 0.1])
    proba = np.column_stack([1 - p_refund, p_refund])
    assert average_precision(y, proba, ["other", "refund"], "refund") == pytest.approx(5 / 6)
    # the positive is the rarer class, whatever its place; a tie goes to the later label
    assert positive_class(["other"] * 5 + ["refund"] * 2, ["refund", "other"]) == "refund"
    assert positive_class(["x", "y"], ["y", "x"]) == "x"
    # a class without a true row has no AP
    assert np.isnan(average_precision(["other"] * 4, proba, ["other", "refund"], "refund"))


def test_a_metric_that_does_not_apply_is_refused_with_the_ones_that_do():
    for name in METRICS:
        assert check_metric(name) == name
    for name in MULTILABEL_METRICS:
        assert check_metric(name, multi_label=True) == name
    with pytest.raises(ValueError, match="subset_accuracy.*choose one of f1_micro"):
        check_metric("accuracy", multi_label=True)
    with pytest.raises(ValueError, match="does not apply.*choose one of f1_micro"):
        check_metric("average_precision", multi_label=True)
    with pytest.raises(ValueError, match="lower is better"):
        check_metric("hamming_loss", multi_label=True)
    with pytest.raises(ValueError, match="Unknown metric 'auc'.*roc_auc, average_precision"):
        check_metric("auc")


# -- simulate --------------------------------------------------------------------------------

def test_the_summary_reads_the_curve_of_the_chosen_metric():
    # two metrics recorded per round; the table's labels-to-target follow the one chosen
    rows = [{"strategy": s, "repeat": 0, "n_labels": n, "roc_auc": 0.9, "average_precision": ap}
            for s, aps in {"random": [0.3, 0.5, 0.6], "entropy": [0.3, 0.6, 0.6]}.items()
            for n, ap in zip([100, 200, 300], aps)]
    by_ap = SimulationResult(pd.DataFrame(rows), "average_precision", full_score=0.6)
    table = by_ap.summary().set_index("strategy")
    assert table.loc["random", "labels_to_target"] == 300
    assert table.loc["entropy", "labels_to_target"] == 200
    assert "best_average_precision" in table.columns
    by_auc = SimulationResult(pd.DataFrame(rows), "roc_auc", full_score=0.9).summary()
    assert by_auc["labels_to_target"].tolist() == [100, 100]


def test_simulate_with_average_precision_follows_the_rare_class():
    data = tickets(400, rare=0.15)
    result = simulate(data.text, data.label, strategies=["random", "entropy"], batch=50,
                      start=20, repeats=1, progress=False, metric="average_precision")
    assert result.metric == "average_precision"
    assert result.settings["positive_class"] == "refund"
    assert result.settings["metric"] == "average_precision"
    summary = result.summary()
    assert summary.attrs["target"] == pytest.approx(0.99 * result.full_score)
    # with every pool text labelled, each curve ends at the full-data score of its own metric
    last = result.curves.groupby("strategy")["average_precision_mean"].last()
    np.testing.assert_allclose(last, result.full_score)
    # the other scores are recorded too, so one run answers for any of them
    assert {"roc_auc", "f1_macro", "accuracy"} <= set(result.runs.columns)


def test_simulate_refuses_a_metric_for_the_other_kind_of_file_before_any_work():
    data = tickets(60)
    with pytest.raises(InvalidInput, match="does not apply to a single-label.*roc_auc"):
        simulate(data.text, data.label, metric="f1_micro", progress=False)
    cells = [json.dumps([x] if x == "refund" else []) for x in data.label]
    with pytest.raises(InvalidInput, match="subset_accuracy"):
        simulate(data.text, cells, multi_label=True, metric="accuracy", progress=False)


def test_a_multi_label_simulation_can_be_judged_by_subset_accuracy():
    data = tickets(240, rare=0.4, seed=2)
    cells = [json.dumps(sorted({x, "any"})) if x == "refund" else json.dumps(["any"]) if i % 3
             else "[]" for i, x in enumerate(data.label)]
    result = simulate(data.text, cells, multi_label=True, strategies=["random", "entropy"],
                      batch=60, start=30, repeats=1, progress=False, metric="subset_accuracy")
    assert result.metric == "subset_accuracy"
    last = result.curves.groupby("strategy")["subset_accuracy_mean"].last()
    np.testing.assert_allclose(last, result.full_score)


@pytest.mark.skipif(not TWEETS.exists(), reason="the shared tweets are not here")
@pytest.mark.parametrize("metric", METRICS)
def test_simulate_on_the_shared_tweets_draws_its_curves_in_the_metric_asked_for(metric):
    texts, labels = load_labelled(TWEETS, "text", "target", encoding="latin-1",
                                  columns=["target", "ids", "date", "flag", "user", "text"])
    result = simulate(texts[:3000], labels[:3000], strategies=["random", "entropy"],
                      batch=100, start=100, repeats=1, progress=False, max_labels=300,
                      metric=metric)
    assert result.metric == metric
    # the target is the asked metric of the full-data model, which learns well beyond chance
    assert 0.6 < result.full_score <= 1
    curves = result.curves
    assert curves.groupby("strategy")[f"{metric}_mean"].max().between(0.5, 1).all()
    if metric == "average_precision":  # the pool's rarer class: a near tie in these tweets
        assert result.settings["positive_class"] in {"0", "4"}


# -- the orchestrator ------------------------------------------------------------------------

def _ticket_queue(url: str, labels: list[str]) -> tuple[Queue, pd.DataFrame]:
    q = Queue(url, labels=labels)
    data = tickets(150, rare=0.2, seed=4)
    q.add(data.iloc[:100], text="text", id="id", label="label")
    q.add(data.iloc[100:][["id", "text"]], text="text", id="id")
    return q, data


def test_the_orchestrator_names_its_model_by_the_chosen_metric(db_url, tmp_path):
    # the rare class listed first: average precision still ranks the rare class
    q, _ = _ticket_queue(db_url, ["refund", "other"])
    orch = Orchestrator(q, models_dir=tmp_path / "m", metric="average_precision")
    run = orch.run_once()
    assert run.status == "trained", run.reason
    ap = run.metrics["average_precision"]
    assert run.model_file.name.split("_", 1)[1].startswith(f"average_precision-{ap:.4f}")
    sidecar = json.loads(run.model_file.with_suffix(".json").read_text())
    assert sidecar["metric"] == "average_precision"
    assert sidecar["positive_class"] == "refund"
    # the figure is the mean over the orchestrator's own folds of scikit-learn's AP of "refund"
    labelled = q.labelled()
    X, y = labelled["text"].to_numpy(dtype=object), labelled["label"].to_numpy(dtype=object)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(X, y)
    by_fold = []
    for train, test in folds:
        model = orch._model(len(y)).fit(X[train], y[train])
        column = list(model.classes_).index("refund")
        by_fold.append(average_precision_score(y[test] == "refund",
                                               model.predict_proba(X[test])[:, column]))
    assert ap == pytest.approx(np.mean(by_fold), abs=1e-9)
    assert list_models(tmp_path / "m")["metric"].tolist() == ["average_precision"]


def test_status_and_models_headline_the_chosen_metric(sqlite_url, tmp_path):
    q, _ = _ticket_queue(sqlite_url, ["other", "refund"])
    runner = CliRunner()
    result = runner.invoke(app, ["orchestrate", "--once", "--db", sqlite_url, "--models-dir",
                                 str(tmp_path / "m"), "--metric", "accuracy"])
    assert result.exit_code == 0, result.output
    model = next((tmp_path / "m").glob("*.pkl"))
    assert "_accuracy-" in model.name
    assert "labels, accuracy" in result.output.replace("\n", " ")
    status = runner.invoke(app, ["status", "--db", sqlite_url], env={"COLUMNS": "250"})
    assert status.exit_code == 0, status.output
    assert "CV accuracy" in status.output  # the named score first
    listing = runner.invoke(app, ["models", "--models-dir", str(tmp_path / "m")],
                            env={"COLUMNS": "250"})
    assert listing.exit_code == 0, listing.output
    assert "named by" in listing.output and "accuracy 0." in listing.output


def test_the_default_names_stay_f1_macro_and_f1_micro(sqlite_url, tmp_path):
    q, _ = _ticket_queue(sqlite_url, ["other", "refund"])
    run = Orchestrator(q, models_dir=tmp_path / "m").run_once()
    assert "_f1_macro-" in run.model_file.name
    multi = Queue(f"sqlite:///{tmp_path / 'multi.db'}", labels=["refund", "any"],
                  multi_label=True)
    assert Orchestrator(multi, models_dir=tmp_path / "n").metric == "f1_micro"
    assert Orchestrator(multi, models_dir=tmp_path / "n", metric="roc_auc").metric == "roc_auc"


def test_the_orchestrator_refuses_a_metric_that_does_not_apply(sqlite_url, tmp_path):
    multi = Queue(sqlite_url, labels=["refund", "any"], multi_label=True)
    with pytest.raises(ValueError, match="subset_accuracy"):
        Orchestrator(multi, models_dir=tmp_path / "m", metric="accuracy")
    runs_before = multi.runs()
    result = CliRunner().invoke(app, ["orchestrate", "--once", "--db", sqlite_url,
                                      "--models-dir", str(tmp_path / "m"), "--metric", "auc"])
    assert result.exit_code != 0
    assert "Unknown metric 'auc'" in str(result.exception)
    assert multi.runs() == runs_before and not (tmp_path / "m").exists()


def test_simulate_cli_reports_the_chosen_metric(tmp_path):
    path = tmp_path / "tickets.csv"
    tickets(300, rare=0.2).to_csv(path, index=False)
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["simulate", str(path), "--strategies", "random,entropy",
                                      "--batch", "60", "--start", "20", "--repeats", "1",
                                      "--metric", "average_precision", "--out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "average_precision on" in result.output
    summary = pd.read_csv(out / "summary.csv")
    assert "final_average_precision" in summary.columns
    bad = CliRunner().invoke(app, ["simulate", str(path), "--metric", "f1_micro",
                                   "--out", str(out)])
    assert bad.exit_code != 0 and "does not apply" in str(bad.exception)
