"""The stop signal: each run's kappa on the fixed stop set, checked against the saved models'
own predictions; the signal on a project whose models have stabilized and on one whose have
not; the audit half of the rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from test_orchestrator import NEGATIVE, NEUTRAL, POSITIVE, generated, label_through_queue

from widgetal import Queue, stopping
from widgetal.models import list_models, load_model
from widgetal.orchestrator import Orchestrator
from widgetal.widget import Labeller


def separable(n: int, seed: int = 0) -> pd.DataFrame:
    """Texts whose sentiment words always match the label: a model learns it from a few
    hundred labels, and more labels stop changing what it predicts."""
    rng = np.random.default_rng(seed)
    positive = rng.integers(2, size=n).astype(bool)
    texts = [" ".join([*rng.choice(NEUTRAL, 3), *rng.choice(POSITIVE if p else NEGATIVE, 2),
                       *rng.choice(NEUTRAL, 2)]) for p in positive]
    return pd.DataFrame({"id": [f"s{i}" for i in range(n)], "text": texts,
                         "label": np.where(positive, "positive", "negative")})


def cycles(q: Queue, data: pd.DataFrame, models_dir, first: int, step: int, runs: int):
    """Label ``first`` texts in queue order, then run and label ``step`` more, ``runs`` times."""
    q.add(data[["id", "text"]], text="text", id="id")
    truth = dict(zip(data["id"], data["label"]))
    orch = Orchestrator(q, models_dir=models_dir)
    label_through_queue(q, truth, first)
    out = []
    for _ in range(runs):
        out.append(orch.run_once())
        label_through_queue(q, truth, step)
    return out


def test_each_run_records_the_kappa_of_its_and_the_previous_saved_models_predictions(
    queue, tmp_path
):
    data = generated(1500, seed=3)
    models_dir = tmp_path / "models"
    runs = cycles(queue, data, models_dir, first=40, step=15, runs=3)
    assert [r.status for r in runs] == ["trained"] * 3

    stop_set = json.loads((models_dir / stopping.STOP_SET_FILE).read_text())["item_ids"]
    assert len(stop_set) == stopping.STOP_SET_SIZE == len(set(stop_set))
    texts = [item.text for item in queue.items(stop_set)]
    saved = list_models(models_dir)
    predicted = [load_model(path).predict(texts) for path in saved["path"]]
    recorded = {r["id"]: r["metrics"] for r in queue.runs()}

    assert recorded[runs[0].run_id]["stop_kappa"] is None  # nothing before it
    for i in (1, 2):
        expected = cohen_kappa_score(predicted[i - 1], predicted[i])
        sidecar = _sidecar(saved["path"].iloc[i])
        assert recorded[runs[i].run_id]["stop_kappa"] == pytest.approx(expected, abs=1e-12)
        assert sidecar["metrics"]["stop_kappa"] == pytest.approx(expected, abs=1e-12)
        assert recorded[runs[i].run_id]["stop_changed"] == int(
            (predicted[i - 1] != predicted[i]).sum())
        # the sidecar keeps the run's predictions on the stop set, keyed by item id
        assert sidecar["stop_set"]["predictions"] == {
            str(k): p for k, p in zip(stop_set, predicted[i].tolist())}
    assert len({tuple(p) for p in predicted}) > 1  # the models did differ: kappa below 1 somewhere


def test_the_stop_set_is_drawn_once_from_unlabelled_texts_and_kept(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=["negative", "positive"])
    data = separable(600)
    models_dir = tmp_path / "models"
    cycles(q, data, models_dir, first=60, step=0, runs=1)
    first = json.loads((models_dir / stopping.STOP_SET_FILE).read_text())["item_ids"]
    labelled = set(q.labelled()["item_id"])
    assert len(first) == 540 and not labelled & set(first)  # 600 texts, 60 labelled then

    label_through_queue(q, dict(zip(data["id"], data["label"])), 50)  # some of the stop set
    Orchestrator(q, models_dir=models_dir).run_once()
    assert json.loads((models_dir / stopping.STOP_SET_FILE).read_text())["item_ids"] == first
    newest = _sidecar(list_models(models_dir)["path"].iloc[-1])
    assert sorted(map(int, newest["stop_set"]["predictions"])) == first


def test_the_kappa_part_holds_where_models_have_stabilized_and_not_where_they_have_not(
    sqlite_url, tmp_path
):
    stable_q = Queue(sqlite_url, labels=["negative", "positive"])
    stable_q.configure(audit_share=0.1)  # a tenth of what is served is the audit sample
    cycles(stable_q, separable(2000), tmp_path / "stable", first=200, step=20, runs=5)
    stable = stopping.stop_signal(stable_q.runs())

    few_q = Queue(f"sqlite:///{tmp_path / 'few.db'}", labels=["negative", "positive"])
    few_q.configure(audit_share=0.1)
    cycles(few_q, generated(2000), tmp_path / "few", first=12, step=10, runs=5)
    unstable = stopping.stop_signal(few_q.runs())

    assert stable.kappa_stable and all(k >= 0.99 for _, _, k in stable.kappas)
    assert len(stable.kappas) == stopping.WINDOW
    # the audit score, on labels no model trained on, no longer rises beyond its interval
    assert stable.audit_flat is True and len(stable.audits) == 2
    latest, earlier = stable.audits
    assert latest[2] <= earlier[4]
    assert stable.stop and stable.line().startswith("More labels are unlikely to help")
    # the labelling app says so under the queue line, from the runs table (no model loaded)
    shown = Labeller(stable_q, labeller="ana")._model_line.value
    assert "More labels are unlikely to help" in shown
    assert f"{stable.kappas[0][2]:.3f}" in shown and f"{latest[2]:.3f}" in shown

    assert not unstable.kappa_stable
    assert min(k for _, _, k in unstable.kappas if k is not None) < 0.99
    assert not unstable.stop
    assert "Not yet stable" in unstable.line()
    assert "unlikely" not in Labeller(few_q, labeller="ana")._model_line.value


def test_without_audit_scores_the_audit_part_is_unknown_and_no_stop_is_claimed(
    sqlite_url, tmp_path
):
    q = Queue(sqlite_url, labels=["negative", "positive"])  # audit share unset: off
    cycles(q, separable(1500), tmp_path / "models", first=200, step=20, runs=4)
    signal = stopping.stop_signal(q.runs())
    assert signal.kappa_stable and signal.audit_flat is None and not signal.stop
    assert "audit part unknown" in signal.line()


def _sidecar(model_path: str) -> dict:
    return json.loads(Path(model_path).with_suffix(".json").read_text())


def _run(run_id: int, kappa: float | None, audit: tuple | None = None) -> dict:
    metrics = {"stop_kappa": kappa}
    if audit:
        metrics.update(audit_f1_macro=audit[0], audit_ci_low=audit[1], audit_ci_high=audit[2])
    return {"id": run_id, "n_labels": 100 * run_id, "status": "trained", "model_file": "m.pkl",
            "metrics": metrics}


def test_the_signal_needs_the_audit_score_to_have_stopped_rising_within_its_interval():
    flat = [_run(5, 0.995, (0.84, 0.80, 0.88)), _run(4, 1.0), _run(3, 0.992),
            _run(2, 0.97, (0.82, 0.78, 0.86))]
    rising = [_run(5, 0.995, (0.90, 0.87, 0.93)), *flat[1:]]
    failed = {"id": 6, "n_labels": 600, "status": "failed", "reason": "boom", "model_file": None,
              "metrics": None}

    fires = stopping.stop_signal([failed, *flat])  # a failed run is not a model
    assert fires.stop and fires.audit_flat and fires.kappa_stable
    assert [a[0] for a in fires.audits] == [5, 2]
    assert "More labels are unlikely to help" in fires.line() and "0.840" in fires.line()

    still = stopping.stop_signal(rising)
    assert still.kappa_stable and still.audit_flat is False and not still.stop
    assert "still rising" in still.line()

    shaky = stopping.stop_signal([_run(5, 0.98, (0.84, 0.80, 0.88)), *flat[1:]])
    assert shaky.audit_flat and not shaky.kappa_stable and not shaky.stop


def test_a_multi_label_run_records_kappa_over_the_flattened_label_decisions(
    sqlite_url, tmp_path
):
    from test_orchestrator_multilabel import LABELS as ML_LABELS
    from test_orchestrator_multilabel import generated as generated_sets
    from test_orchestrator_multilabel import label_through_queue as label_sets

    q = Queue(sqlite_url, labels=ML_LABELS, multi_label=True)
    data = generated_sets(700, seed=2)
    q.add(data[["id", "text"]], text="text", id="id")
    truth = dict(zip(data["id"], data["labels"]))
    orch = Orchestrator(q, models_dir=tmp_path / "models")
    label_sets(q, truth, 60)
    first = orch.run_once()
    label_sets(q, truth, 30)
    second = orch.run_once()
    assert first.status == second.status == "trained"

    stop_set = json.loads((tmp_path / "models" / stopping.STOP_SET_FILE).read_text())["item_ids"]
    texts = [item.text for item in q.items(stop_set)]
    decisions = [  # (texts x labels) 0/1, in project label order, from the saved models
        (load_model(run.model_file).predict_proba(texts) >= 0.5).astype(int).ravel()
        for run in (first, second)]
    assert first.trained_labels == second.trained_labels == ML_LABELS
    expected = cohen_kappa_score(*decisions)
    recorded = next(r for r in q.runs() if r["id"] == second.run_id)["metrics"]["stop_kappa"]
    assert recorded == pytest.approx(expected, abs=1e-12) and expected < 1
    sidecar = _sidecar(str(second.model_file))
    rows = decisions[1].reshape(len(stop_set), len(ML_LABELS))
    assert sidecar["stop_set"]["predictions"] == {  # each text's predicted set, sorted
        str(i): sorted(name for name, on in zip(ML_LABELS, row) if on)
        for i, row in zip(stop_set, rows)}


def test_the_documented_examples_hold():
    import doctest

    result = doctest.testmod(stopping)
    assert result.attempted >= 5 and result.failed == 0
