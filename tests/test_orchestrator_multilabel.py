"""Multi-label projects end to end on SQLite and PostgreSQL: a cycle trains a one-vs-rest model,
scores it with multi-label metrics, publishes label-set guesses and orders the queue by the
aggregated per-label uncertainty, which the test recomputes on its own from the saved model;
too few labels wait; a label nobody has used yet is left out and named; simulate replays a
multi-label file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from widgetal import Queue, labelsets
from widgetal.errors import InvalidInput, NotEnoughLabels
from widgetal.models import list_models, load_model
from widgetal.orchestrator import Orchestrator
from widgetal.simulate import simulate
from widgetal.strategies import power_sample, sharpness

LABELS = ["billing", "urgent", "refund"]
WORDS = {
    "billing": "invoice charge bill payment card statement".split(),
    "urgent": "asap immediately emergency now quickly critical".split(),
    "refund": "refund money back return reimburse cancel".split(),
}
NOISE = "the a my account please thanks hello order today service help team".split()


def generated(n: int, seed: int = 0, share: float = 0.35) -> pd.DataFrame:
    """Texts carrying each label with probability ``share``: one or two of its words among noise,
    and now and then a stray word of another label, so the model is sure of some texts and not
    of others. ``labels`` holds the true set (a list, possibly empty)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        carried = [name for name in LABELS if rng.random() < share]
        words = list(rng.choice(NOISE, size=5))
        for name in carried:
            words += list(rng.choice(WORDS[name], size=rng.integers(1, 3)))
        if rng.random() < 0.3:
            words.append(rng.choice(WORDS[LABELS[rng.integers(len(LABELS))]]))
        rng.shuffle(words)
        rows.append({"id": f"m{i}", "text": " ".join(words), "labels": carried})
    return pd.DataFrame(rows)


@pytest.fixture
def multi_queue(db_url):
    q = Queue(db_url, labels=LABELS, multi_label=True, lease_seconds=600)
    yield q
    q.engine.dispose()


def label_through_queue(q: Queue, truth: dict[str, list[str]], n: int,
                        drop: str | None = None) -> None:
    for _ in range(n):
        item = q.pop("ana")
        answer = [x for x in truth[item.external_id] if x != drop]
        q.submit(item.item_id, answer, "ana", seconds=1.0)


def uncertainty(p: np.ndarray, measure: str, aggregate: str) -> np.ndarray:
    """Per-label uncertainty of [p, 1 - p], aggregated over labels: plain numpy, written apart
    from widgetal.strategies. (TF-IDF pipelines predict in float32; the ranking is in float64.)"""
    p = np.asarray(p, dtype=np.float64)
    if measure == "entropy":
        q = np.clip(p, 1e-300, 1.0)
        r = np.clip(1.0 - p, 1e-300, 1.0)
        per_label = -(p * np.log(q) + (1.0 - p) * np.log(r))
    else:  # least-confidence
        per_label = np.minimum(p, 1.0 - p)
    return per_label.mean(axis=1) if aggregate == "mean" else per_label.max(axis=1)


@pytest.mark.parametrize(("strategy", "aggregate"),
                         [("entropy", "mean"), ("least-confidence", "max")])
def test_a_cycle_orders_the_queue_by_aggregated_per_label_uncertainty(
    multi_queue, tmp_path, strategy, aggregate
):
    q = multi_queue
    data = generated(300)
    q.add(data[["id", "text"]], text="text", id="id")
    truth = dict(zip(data["id"], data["labels"]))
    label_through_queue(q, truth, 120)

    run = Orchestrator(q, models_dir=tmp_path / "models", strategy=strategy, explore=0.0,
                       aggregate=aggregate).run_once()

    assert run.status == "trained" and run.n_labels == 120
    assert run.trained_labels == LABELS and run.untrained_labels == {}
    assert run.model_file.name.split("_", 1)[1].startswith("f1_micro-")

    # The queue, read back, against the saved model scored here with plain numpy (in id
    # order, as the cycle reads it), drawn from at the sharpness of 120 labels with the run's
    # seed (widgetal.ranking).
    pool = q.undone().sort_values("item_id")
    model = load_model(run.model_file)
    proba = model.predict_proba(pool["text"].tolist())
    assert proba.shape == (180, len(LABELS))
    expected = uncertainty(proba, strategy, aggregate)
    drawn = power_sample(expected, sharpness(120), np.random.default_rng([0, run.run_id]))
    items = q.items(pool["item_id"].tolist())
    priorities = np.array([item.priority for item in items])
    np.testing.assert_allclose(priorities, drawn, rtol=1e-9, atol=1e-12)
    assert all(item.ranked_by == run.run_id for item in items)
    # undone() is the serving order, and the draw leans to the least sure texts
    serving = pool["item_id"].to_numpy()[np.argsort(-drawn, kind="stable")]
    assert q.undone()["item_id"].tolist() == serving.tolist()
    assert expected[np.argsort(-drawn)[:30]].mean() > expected.mean()
    first = q.pop("bob")
    assert first.item_id == pool["item_id"].iloc[int(np.argmax(drawn))]

    # Guesses: canonical label-set strings, the labels with p >= 0.5, with their joint
    # probability prod max(p, 1 - p).
    for item, p in zip(items, proba):
        assert labelsets.encode(labelsets.decode(item.guess_label), LABELS) == item.guess_label
        assert labelsets.decode(item.guess_label) == [
            name for name, pj in zip(LABELS, p) if pj >= 0.5
        ]
        assert item.guess_proba == pytest.approx(np.prod(np.maximum(p, 1 - p)))
    assert len({item.guess_label for item in items}) > 1  # the model tells texts apart

    sidecar = json.loads(run.model_file.with_suffix(".json").read_text())
    metrics = sidecar["metrics"]
    assert sidecar["multi_label"] is True and sidecar["aggregate"] == aggregate
    assert sidecar["strategy"] == strategy and sidecar["labels"] == LABELS
    # label_counts: texts carrying each label among those labelled
    labelled = q.labelled()
    carried = labelsets.indicator(labelled["label"].tolist(), LABELS).sum(axis=0)
    assert sidecar["label_counts"] == dict(zip(LABELS, carried.tolist()))
    # the words are informative: real CV scores well beyond chance, all in range
    assert 0.85 < metrics["roc_auc"] <= 1.0
    assert 0.0 < metrics["f1_micro"] <= 1.0 and 0.0 < metrics["f1_macro"] <= 1.0
    assert 0.0 < metrics["subset_accuracy"] <= 1.0 and 0.0 <= metrics["hamming_loss"] < 0.5
    assert metrics["cv_folds"] == 5
    assert set(sidecar["roc_auc_per_label"]) == set(LABELS)
    assert all(0.8 < v <= 1.0 for v in sidecar["roc_auc_per_label"].values())
    # out-of-fold confusion per label: [[tn, fp], [fn, tp]], rows add up to the label counts
    for name in LABELS:
        (tn, fp), (fn, tp) = sidecar["confusion_matrix"][name]
        assert fn + tp == sidecar["label_counts"][name] and tn + fp + fn + tp == 120
    recorded = q.runs(limit=1)[0]
    assert recorded["status"] == "trained" and recorded["model_file"] == str(run.model_file)
    assert recorded["metrics"]["f1_micro"] == pytest.approx(metrics["f1_micro"])
    listed = list_models(tmp_path / "models").iloc[-1]
    assert bool(listed["multi_label"]) and listed["f1_micro"] == pytest.approx(metrics["f1_micro"])


def test_too_few_labels_wait_with_the_counts_and_change_nothing(multi_queue, tmp_path):
    q = multi_queue
    data = generated(60, seed=1)
    q.add(data[["id", "text"]], text="text", id="id")
    models_dir = tmp_path / "models"
    orch = Orchestrator(q, models_dir=models_dir, cold_start=False)  # import order stays

    empty = orch.run_once()
    assert empty.status == "skipped" and empty.reason.startswith("no labels yet")

    label_through_queue(q, dict(zip(data["id"], data["labels"])), 6)
    before = [(i.item_id, i.priority, i.guess_label) for i in q.items(q.undone()["item_id"])]
    run = orch.run_once()

    assert run.status == "skipped" and run.n_labels == 6
    assert "no label can be learnt yet" in run.reason
    for name in LABELS:  # every label's counts, so the labeller knows what is missing
        assert f"{name}: " in run.reason
    assert not models_dir.exists() or not list(models_dir.iterdir())
    after = [(i.item_id, i.priority, i.guess_label) for i in q.items(q.undone()["item_id"])]
    assert after == before
    recorded = q.runs(limit=1)[0]
    assert recorded["status"] == run.status and recorded["reason"] == run.reason
    assert recorded["reason"].startswith("no label can be learnt yet")


def test_a_label_nobody_used_yet_is_left_out_and_named_while_the_others_train(
    sqlite_url, tmp_path
):
    q = Queue(sqlite_url, labels=LABELS, multi_label=True)
    data = generated(200, seed=2)
    q.add(data[["id", "text"]], text="text", id="id")
    label_through_queue(q, dict(zip(data["id"], data["labels"])), 80, drop="refund")

    run = Orchestrator(q, models_dir=tmp_path / "models").run_once()

    assert run.status == "trained"
    assert run.trained_labels == ["billing", "urgent"]
    assert run.untrained_labels == {"refund": {"positive": 0, "negative": 80}}
    sidecar = json.loads(run.model_file.with_suffix(".json").read_text())
    assert sidecar["trained_labels"] == ["billing", "urgent"]
    assert sidecar["untrained_labels"] == {"refund": {"positive": 0, "negative": 80}}
    assert sidecar["label_counts"]["refund"] == 0
    # the saved model has one column per trained label; no guess names the untrained one
    assert load_model(run.model_file).predict_proba(["refund invoice asap"]).shape == (1, 2)
    guesses = {i.guess_label for i in q.items(q.undone()["item_id"])}
    assert guesses and not any("refund" in g for g in guesses)


def test_committee_is_refused_for_a_multi_label_project_before_any_work(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=LABELS, multi_label=True)
    with pytest.raises(ValueError, match="not available in a multi-label project"):
        Orchestrator(q, models_dir=tmp_path, strategy="committee")
    with pytest.raises(ValueError, match="aggregate"):
        Orchestrator(q, models_dir=tmp_path, aggregate="median")


def test_a_single_label_project_keeps_its_metrics_and_names(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=["negative", "positive"])
    rng = np.random.default_rng(0)
    words = {"negative": "bad awful sad dull".split(), "positive": "good great happy fun".split()}
    texts = [" ".join([*rng.choice(NOISE, 4), rng.choice(words[lab])])
             for lab in ["negative", "positive"] * 30]
    q.add(pd.DataFrame({"id": range(60), "text": texts}), text="text", id="id")
    truth = {str(i): lab for i, lab in enumerate(["negative", "positive"] * 30)}
    for _ in range(30):
        item = q.pop("ana")
        q.submit(item.item_id, truth[item.external_id], "ana")

    run = Orchestrator(q, models_dir=tmp_path).run_once()

    assert run.status == "trained" and "_f1_macro-" in run.model_file.name
    assert {"accuracy", "f1_macro", "roc_auc"} <= set(run.metrics)
    assert "f1_micro" not in run.metrics and run.trained_labels == []
    guess = q.items([int(q.undone()["item_id"].iloc[0])])[0].guess_label
    assert guess in ("negative", "positive")  # a plain label, not a set


# -- simulate --------------------------------------------------------------------------------


def test_simulate_replays_a_multi_label_file_and_active_learning_beats_nothing_learnt():
    data = generated(500, seed=3)
    cells = [json.dumps(x) for x in data["labels"]]  # '[]' is the answer "none of these"

    result = simulate(
        data["text"], cells, multi_label=True, label_set=LABELS,
        strategies=["random", "entropy", "least-confidence"], batch=40, start=20, repeats=2,
        max_labels=180, aggregate="max", progress=False,
    )

    assert result.metric == "f1_micro"
    assert result.settings["multi_label"] and result.settings["aggregate"] == "max"
    assert result.settings["classes"] == LABELS and result.settings["untrained_labels"] == {}
    assert result.settings["n_pool"] + result.settings["n_test"] == 500  # no row dropped
    curves = result.curves
    assert {"f1_micro_mean", "f1_macro_mean", "subset_accuracy_mean", "roc_auc_mean"} <= set(
        curves.columns)
    for name in ["random", "entropy", "least-confidence"]:
        curve = curves[curves.strategy == name]
        assert curve.n_labels.tolist() == [20, 60, 100, 140, 180]
        # learning happens: the last round beats the seed set on the held-out rows
        assert curve.f1_micro_mean.iloc[-1] > curve.f1_micro_mean.iloc[0] + 0.1
        assert curve.roc_auc_mean.iloc[-1] > 0.85
    assert 0.7 < result.full_score <= 1.0
    summary = result.summary(share=0.9)
    assert list(summary.strategy) == ["random", "entropy", "least-confidence"]
    assert "saving_vs_random_pct" in summary.columns


def test_simulate_reads_separated_cells_and_refuses_what_cannot_work():
    data = generated(120, seed=4, share=0.5)
    cells = ["|".join(x) if x else "[]" for x in data["labels"]]
    result = simulate(data["text"], cells, multi_label=True, label_sep="|",
                      strategies=["random", "margin"], batch=50, start=20, repeats=1,
                      progress=False)
    assert result.settings["classes"] == sorted(LABELS)  # inferred from the cells
    with pytest.raises(InvalidInput, match="multi-label"):
        simulate(data["text"], cells, multi_label=True, label_sep="|",
                 strategies=["committee"], progress=False)
    with pytest.raises(NotEnoughLabels, match="--start 2 is too small"):
        simulate(data["text"], cells, multi_label=True, label_sep="|",
                 strategies=["random"], start=2, progress=False)
    with pytest.raises(NotEnoughLabels, match="No label is both carried"):
        simulate(data["text"], ["[]"] * len(data), multi_label=True, label_set=LABELS,
                 strategies=["random"], progress=False)
