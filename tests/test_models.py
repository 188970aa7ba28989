"""The models folder: atomic saves with sidecars, unique names, listing, loading, pruning."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from widgetal.features import make_featurizer
from widgetal.models import (
    COLUMNS,
    MULTILABEL_NAME_METRIC,
    NoModelYet,
    list_models,
    load_latest,
    multilabel_classifier,
    multilabel_metrics,
    prune,
    save_model,
    update_info,
)

TEXTS = ["good film", "great film", "lovely film", "bad film", "dull film", "awful film"] * 3
Y = ["positive"] * 3 + ["negative"] * 3
Y = Y * 3


def _pipeline(C: float = 1.0) -> Pipeline:
    feats = make_featurizer("tfidf").set_params(min_df=1)
    return Pipeline([("features", feats), ("classifier", LogisticRegression(C=C))]).fit(TEXTS, Y)


def _info(**extra):
    return {
        "n_labels": 18,
        "label_counts": {"negative": 9, "positive": 9},
        "labels": ["negative", "positive"],
        "featurizer": "tfidf",
        "strategy": "entropy",
        "timings": {"fit": 0.01},
        **extra,
    }


METRICS = {"accuracy": 0.9, "f1_macro": 0.8765432, "roc_auc": 0.95}


def test_save_writes_a_time_named_model_and_a_sidecar(tmp_path):
    path = save_model(_pipeline(), tmp_path / "models", METRICS, _info(run_id=7))
    assert re.fullmatch(r"\d{8}T\d{6}Z_f1_macro-0\.8765\.pkl", path.name)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["metrics"] == METRICS
    assert sidecar["label_counts"] == {"negative": 9, "positive": 9}
    assert sidecar["labels"] == ["negative", "positive"]
    assert sidecar["featurizer"] == "tfidf" and sidecar["strategy"] == "entropy"
    assert sidecar["timings"] == {"fit": 0.01} and sidecar["run_id"] == 7
    assert {"python", "sklearn", "numpy"} <= set(sidecar["versions"])
    # nothing but the two finished files: temp files were renamed into place
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, path.stem + ".json"])


def test_nan_scores_are_stored_as_null_and_named_by_accuracy(tmp_path):
    path = save_model(_pipeline(), tmp_path, {"accuracy": 0.5, "f1_macro": float("nan")}, _info())
    assert "_accuracy-0.5000" in path.name
    assert json.loads(path.with_suffix(".json").read_text())["metrics"]["f1_macro"] is None


def test_saves_in_the_same_second_get_distinct_names(tmp_path):
    paths = []

    def save():
        paths.append(save_model(_pipeline(), tmp_path, METRICS, _info()))

    threads = [threading.Thread(target=save) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({p.name for p in paths}) == 6
    assert all(p.exists() and p.with_suffix(".json").exists() for p in paths)
    assert len(list_models(tmp_path)) == 6


def test_list_is_oldest_first_with_scores_and_counts(tmp_path):
    first = save_model(_pipeline(), tmp_path, {**METRICS, "f1_macro": 0.7}, _info(n_labels=10))
    time.sleep(0.01)
    second = save_model(_pipeline(), tmp_path, METRICS, _info(n_labels=20))
    frame = list_models(tmp_path)
    assert set(COLUMNS) <= set(frame.columns)
    assert frame["file"].tolist() == [first.name, second.name]
    assert frame["n_labels"].tolist() == [10, 20]
    assert frame["f1_macro"].tolist() == [0.7, METRICS["f1_macro"]]
    assert frame["label_counts"].iloc[0] == {"negative": 9, "positive": 9}
    assert frame["created_at"].is_monotonic_increasing


def test_listing_ignores_half_written_and_foreign_files(tmp_path):
    save_model(_pipeline(), tmp_path, METRICS, _info())
    (tmp_path / ".tmp-abc.part").write_bytes(b"partial")
    (tmp_path / "orphan.json").write_text("{}")  # sidecar without its model
    (tmp_path / "notes.json").write_text("not json")
    (tmp_path / "notes.pkl").write_bytes(b"")
    assert len(list_models(tmp_path)) == 1


def test_empty_or_missing_folder_lists_nothing_and_load_says_what_to_do(tmp_path):
    assert list_models(tmp_path / "nope").empty
    assert list(list_models(tmp_path).columns) == COLUMNS
    with pytest.raises(NoModelYet, match="widgetal orchestrate --once"):
        load_latest(tmp_path)


def test_load_latest_returns_the_newest_pipeline_scoring_raw_text(tmp_path):
    save_model(_pipeline(C=0.01), tmp_path, METRICS, _info())
    time.sleep(0.01)
    save_model(_pipeline(C=100.0), tmp_path, METRICS, _info())
    model = load_latest(tmp_path)
    assert model.named_steps["classifier"].C == 100.0
    proba = model.predict_proba(["great film", "awful film"])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1)
    assert list(model.classes_[proba.argmax(axis=1)]) == ["positive", "negative"]


def test_prune_keeps_the_newest_n_models_with_their_sidecars(tmp_path):
    saved = []
    for _ in range(5):
        saved.append(save_model(_pipeline(), tmp_path, METRICS, _info()))
        time.sleep(0.01)
    removed = prune(tmp_path, keep=2)
    assert removed == saved[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        n for p in saved[3:] for n in (p.name, p.stem + ".json")
    )
    with pytest.raises(ValueError):
        prune(tmp_path, keep=0)


def test_sidecar_fields_can_be_completed_after_the_save(tmp_path):
    path = save_model(_pipeline(), tmp_path, METRICS, _info())
    update_info(path, timings={"fit": 0.01, "reorder": 0.5}, n_reranked=40)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["timings"] == {"fit": 0.01, "reorder": 0.5} and sidecar["n_reranked"] == 40
    assert sidecar["metrics"] == METRICS  # the rest is kept
    assert len(list(tmp_path.iterdir())) == 2  # no temp file left behind


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_model_files_get_the_umasks_permissions_not_owner_only(tmp_path, umask):
    # A team reads ./models from another account or container: files are not -rw------- .
    old = os.umask(umask)
    try:
        path = save_model(_pipeline(), tmp_path, METRICS, _info())
        update_info(path, n_reranked=1)
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    for file in (path, path.with_suffix(".json")):
        assert stat.S_IMODE(file.stat().st_mode) == expected, f"{file.name}: {oct(expected)}"


# -- multi-label models ---------------------------------------------------------------------


def test_multilabel_metrics_match_hand_counts_and_skip_undefined_auc():
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    proba = np.array([[0.9, 0.2, 0.1], [0.6, 0.4, 0.3], [0.3, 0.7, 0.6], [0.2, 0.1, 0.2]])
    scores, auc = multilabel_metrics(truth, proba, ["a", "b", "c"])
    # predicted (p >= 0.5): [1,0,0] [1,0,0] [0,1,1] [0,0,0] -> tp 3, fp 1, fn 1
    assert scores["f1_micro"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))
    # per label F1: a = 1, b = 2/3 (tp 1, fn 1), c = 0 (fp 1, no positives)
    assert scores["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert scores["subset_accuracy"] == pytest.approx(2 / 4)  # rows 0 and 3 exactly right
    assert scores["hamming_loss"] == pytest.approx(2 / 12)
    # AUC: a separates perfectly (1.0); b: positives 0.4, 0.7 vs negatives 0.2, 0.1 -> 1.0;
    # c is never carried: undefined, left out of the mean
    assert auc == {"a": 1.0, "b": 1.0, "c": None}
    assert scores["roc_auc"] == 1.0 and scores["roc_auc_labels"] == 2
    with pytest.raises(ValueError, match="n_samples x 3"):
        multilabel_metrics(truth[:, :2], proba[:, :2], ["a", "b", "c"])


def test_a_multilabel_model_is_named_by_micro_f1_and_listed_as_multi_label(tmp_path):
    texts = ["invoice late", "refund please", "invoice and refund", "hello there"] * 4
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 4)
    feats = make_featurizer("tfidf").set_params(min_df=1)
    base = LogisticRegression()
    pipeline = Pipeline([("features", feats), ("classifier", multilabel_classifier(base))])
    pipeline.fit(texts, Y)
    assert not hasattr(base, "coef_")  # the template is cloned, never fitted
    metrics = {"f1_micro": 0.8123456, "f1_macro": 0.7, "subset_accuracy": 0.6}
    path = save_model(pipeline, tmp_path, metrics, _info(multi_label=True),
                      metric=MULTILABEL_NAME_METRIC)
    assert re.fullmatch(r"\d{8}T\d{6}Z_f1_micro-0\.8123\.pkl", path.name)
    row = list_models(tmp_path).iloc[0]
    assert bool(row["multi_label"]) and row["f1_micro"] == metrics["f1_micro"]
    # the saved file scores raw text: one probability per label, not a distribution
    proba = load_latest(tmp_path).predict_proba(["invoice and refund", "hello there"])
    assert proba.shape == (2, 2) and (proba[0] > 0.5).all() and (proba[1] < 0.5).all()
