"""The orchestrator end to end on SQLite and PostgreSQL: train, cross-validate, save, reorder by
uncertainty; skip when labels are too few; loop triggers and retries; the container entrypoint;
and a SIGKILL in the middle of a reorder that leaves the queue consistent and every label kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from widgetal import Queue
from widgetal.errors import DatabaseUnavailable, NotEnoughLabels
from widgetal.models import list_models, load_latest
from widgetal.orchestrator import Orchestrator, wait_for_database
from widgetal.ranking import rank_pool
from widgetal.strategies import STRATEGIES, power_sample, sharpness, top_n

REPO = Path(__file__).resolve().parents[1]
LABELS = ["negative", "positive"]
POSITIVE = "good great lovely happy love wonderful fun nice best enjoyed".split()
NEGATIVE = "bad awful sad hate terrible boring dull ugly worst tired".split()
NEUTRAL = "the film day work home today movie night we it was at my our this".split()


def generated(n: int, seed: int = 0, start: int = 0) -> pd.DataFrame:
    """Texts whose sentiment words mostly, not always, agree with the label (vectorised: the
    kill test needs 60,000 of them)."""
    rng = np.random.default_rng(seed + start)
    positive = rng.integers(2, size=n).astype(bool)[:, None]
    neutral = rng.choice(NEUTRAL, size=(n, 5))
    own = np.where(positive, rng.choice(POSITIVE, (n, 2)), rng.choice(NEGATIVE, (n, 2)))
    other = np.where(positive, rng.choice(NEGATIVE, (n, 1)), rng.choice(POSITIVE, (n, 1)))
    n_own, n_other = rng.integers(1, 3, n), rng.integers(0, 2, n)
    texts = [
        " ".join([*neutral[i, :3], *own[i, : n_own[i]], *neutral[i, 3:], *other[i, : n_other[i]]])
        for i in range(n)
    ]
    return pd.DataFrame(
        {
            "id": [f"g{i}" for i in range(start, start + n)],
            "text": texts,
            "label": np.where(positive[:, 0], "positive", "negative"),
        }
    )


@pytest.fixture
def corpus(request) -> pd.DataFrame:
    """The shared tweets (id, text, true label; not the date column, which leaks the label),
    or a generated set when ../shared is absent."""
    try:
        path = request.getfixturevalue("tweets_path")
    except pytest.skip.Exception:
        return generated(3000)
    raw = pd.read_csv(
        path, header=None, encoding="latin-1",
        names=["target", "ids", "date", "flag", "user", "text"],
    )
    return pd.DataFrame(
        {
            "id": raw["ids"].astype(str),
            "text": raw["text"],
            "label": np.where(raw["target"] == 4, "positive", "negative"),
        }
    ).drop_duplicates("id")


def label_through_queue(q: Queue, truth: dict[str, str], n: int, labeller: str = "ana") -> None:
    for _ in range(n):
        item = q.pop(labeller)
        q.submit(item.item_id, truth[item.external_id], labeller, seconds=1.0)


def entropy(proba: np.ndarray) -> np.ndarray:
    p = np.clip(proba, 1e-300, 1)
    return -(proba * np.log(p)).sum(axis=1)


def _labels_snapshot(q: Queue) -> list[tuple]:
    frame = q.labelled()
    return sorted(zip(frame["item_id"], frame["label"], frame["labeller"]))


# -- the cycle --------------------------------------------------------------------------------


def test_cycle_saves_a_scored_model_and_serves_the_least_sure_items_next(queue, corpus, tmp_path):
    queue.add(corpus[["id", "text"]], text="text", id="id")
    truth = dict(zip(corpus["id"], corpus["label"]))
    label_through_queue(queue, truth, 300)
    before = _labels_snapshot(queue)

    run = Orchestrator(queue, models_dir=tmp_path / "models").run_once()

    assert run.status == "trained" and run.n_labels == 300
    assert run.model_file.exists() and run.model_file.with_suffix(".json").exists()
    sidecar = json.loads(run.model_file.with_suffix(".json").read_text())
    assert 0.55 < sidecar["metrics"]["accuracy"] <= 1.0  # better than chance: a real CV score
    assert 0.5 < sidecar["metrics"]["roc_auc"] <= 1.0
    assert sum(sidecar["label_counts"].values()) == 300
    assert sidecar["labels"] == LABELS and sidecar["featurizer"] == "tfidf-char"
    assert {"cross_validate", "fit", "score", "reorder"} <= set(sidecar["timings"])
    assert sidecar["n_reranked"] == run.n_reranked
    matrix = np.asarray(sidecar["confusion_matrix"])  # out of fold, rows = true labels
    assert matrix.shape == (2, 2)
    assert matrix.sum(axis=1).tolist() == [sidecar["label_counts"][name] for name in LABELS]
    assert abs(np.trace(matrix) / matrix.sum() - sidecar["metrics"]["accuracy"]) < 0.02
    recorded = queue.runs(limit=1)[0]
    assert recorded["id"] == run.run_id
    assert recorded["status"] == "trained" and recorded["reason"] is None
    assert recorded["model_file"] == str(run.model_file)
    assert recorded["n_reranked"] == len(corpus) - 300 == run.n_reranked

    # Independently: load the saved model, score what is left (in id order, as the cycle
    # reads it), draw the queue from its entropy at the sharpness of 300 labels with the
    # run's seed (widgetal.ranking), and compare with what pops.
    model = load_latest(tmp_path / "models")
    undone = queue.undone().sort_values("item_id")
    uncertainty = entropy(model.predict_proba(undone["text"].tolist()))
    drawn = power_sample(uncertainty, sharpness(300), np.random.default_rng([0, run.run_id]))
    k = 15
    served = [queue.pop(f"reader{i}") for i in range(k)]
    assert all(item.ranked_by == run.run_id for item in served)
    assert [i.item_id for i in served] == undone["item_id"].to_numpy()[top_n(drawn, k)].tolist()
    # the draw leans to the least sure: what is served first is less sure than the rest
    unsure = dict(zip(undone["item_id"], uncertainty))
    assert np.mean([unsure[i.item_id] for i in served]) > np.mean(uncertainty)
    assert _labels_snapshot(queue) == before  # training and reordering changed no label


def test_a_run_publishes_its_models_guess_for_every_unlabelled_item(queue, tmp_path):
    """Label and probability beside each undone item's priority, stamped with the run; the
    guess is the saved model's prediction, and labelled items are left as they were."""
    data = generated(120)
    queue.add(data[["id", "text"]], text="text", id="id")
    label_through_queue(queue, dict(zip(data["id"], data["label"])), 40)
    with queue.engine.connect() as conn:
        labelled_before = conn.exec_driver_sql(
            "SELECT id, priority, ranked_by, guess_label, guess_proba FROM widgetal_items "
            "LEFT JOIN widgetal_ranks ON item_id = id WHERE done_at IS NOT NULL ORDER BY id"
        ).all()

    run = Orchestrator(queue, models_dir=tmp_path / "m", cv_folds=3).run_once()

    assert run.status == "trained" and run.n_reranked == 80
    with queue.engine.connect() as conn:
        undone = conn.exec_driver_sql(
            "SELECT id, text, ranked_by, guess_label, guess_proba FROM widgetal_items "
            "JOIN widgetal_ranks ON item_id = id WHERE done_at IS NULL ORDER BY id"
        ).all()
        labelled_after = conn.exec_driver_sql(
            "SELECT id, priority, ranked_by, guess_label, guess_proba FROM widgetal_items "
            "LEFT JOIN widgetal_ranks ON item_id = id WHERE done_at IS NOT NULL ORDER BY id"
        ).all()
    assert len(undone) == 80 and {r.ranked_by for r in undone} == {run.run_id}
    model = load_latest(tmp_path / "m")
    proba = model.predict_proba([r.text for r in undone])
    expected = model.classes_[proba.argmax(axis=1)]
    assert [r.guess_label for r in undone] == expected.tolist()
    assert [r.guess_proba for r in undone] == pytest.approx(proba.max(axis=1).tolist())
    assert all(0.5 <= r.guess_proba <= 1 for r in undone)
    assert labelled_after == labelled_before  # no guess on a labelled item
    assert all(r.guess_label is None for r in labelled_after)
    item = queue.pop("bo")
    assert (item.guess_label, item.ranked_by) == (
        dict((r.id, r.guess_label) for r in undone)[item.item_id], run.run_id
    )


def test_one_class_only_is_skipped_with_the_reason_and_nothing_changes(queue, tmp_path):
    data = generated(40)
    queue.add(data[["id", "text"]], text="text", id="id")
    for _ in range(12):
        item = queue.pop("ana")
        queue.submit(item.item_id, "positive", "ana")
    order_before = queue.undone()["item_id"].tolist()

    # cold start off: import order stays (cold-start ordering: tests/test_coldstart.py)
    run = Orchestrator(queue, models_dir=tmp_path / "m", cold_start=False).run_once()

    assert run.status == "skipped" and "only one class" in run.reason
    assert "positive: 12" in run.reason
    assert not (tmp_path / "m").exists() or list_models(tmp_path / "m").empty
    recorded = queue.runs(1)[0]
    assert recorded["status"] == "skipped" and recorded["reason"] == run.reason
    assert recorded["reason"].startswith("only one class")
    assert queue.undone()["item_id"].tolist() == order_before


def test_too_few_labels_per_class_for_the_folds_is_skipped(queue, tmp_path):
    data = generated(40)
    queue.add(data[["id", "text"]], text="text", id="id")
    for label in ["positive"] * 6 + ["negative"] * 3:
        item = queue.pop("ana")
        queue.submit(item.item_id, label, "ana")
    orch = Orchestrator(queue, models_dir=tmp_path, cv_folds=5, cold_start=False)
    with pytest.raises(NotEnoughLabels, match="need 5 each"):
        orch.check_labels({"negative": 3, "positive": 6})
    run = orch.run_once()
    assert run.status == "skipped"
    assert "negative: 3" in run.reason and "need 5 each" in run.reason
    three_folds = Orchestrator(queue, models_dir=tmp_path, cv_folds=3)
    assert three_folds.run_once().status == "trained"  # 3 per class is enough for 3 folds


def test_a_failed_cycle_is_recorded_as_failed_with_its_error_and_raised(queue, tmp_path):
    queue.add(generated(60), text="text", id="id", label="label")
    queue.add(generated(20, start=60)[["id", "text"]], text="text", id="id")
    blocked = tmp_path / "models"
    blocked.write_text("a file where the models folder should be")

    with pytest.raises(OSError) as raised:
        Orchestrator(queue, models_dir=blocked).run_once()

    recorded = queue.runs(1)[0]
    assert recorded["status"] == "failed" and recorded["finished_at"] is not None
    assert recorded["reason"] == f"{type(raised.value).__name__}: {raised.value}"
    assert recorded["model_file"] is None and recorded["n_labels"] == 60


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_ranks_the_whole_pool(sqlite_url, tmp_path, strategy):
    q = Queue(sqlite_url, labels=LABELS)
    data = generated(400)
    q.add(data.iloc[:60], text="text", id="id", label="label")
    q.add(data.iloc[60:][["id", "text"]], text="text", id="id")
    run = Orchestrator(q, models_dir=tmp_path, strategy=strategy, explore=0.1).run_once()
    assert run.status == "trained" and run.n_reranked == 340
    assert {i.ranked_by for i in q.items(q.undone()["item_id"].tolist())} == {run.run_id}


def test_exploration_puts_random_items_among_the_top(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=LABELS)
    data = generated(1000)
    q.add(data.iloc[:100], text="text", id="id", label="label")
    q.add(data.iloc[100:][["id", "text"]], text="text", id="id")
    run = Orchestrator(q, models_dir=tmp_path, explore=0.3).run_once()
    mixed = q.undone()["item_id"].tolist()[:100]
    # the same run's order without exploration: its model, labels and seed, explore 0
    pool = q.undone().sort_values("item_id")
    _, scores = rank_pool("entropy", load_latest(tmp_path), pool["text"].tolist(),
                          rng=np.random.default_rng([0, run.run_id]),
                          y_labelled=q.labelled()["label"].to_numpy())
    pure = pool["item_id"].to_numpy()[top_n(scores, 100)].tolist()
    overlap = len(set(pure) & set(mixed))
    assert 50 <= overlap <= 85  # about 70 of the top 100 stay; about 30 are random


def test_retention_keeps_the_newest_models(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=LABELS)
    q.add(generated(100), text="text", id="id", label="label")
    q.add(generated(50, start=100)[["id", "text"]], text="text", id="id")
    orch = Orchestrator(q, models_dir=tmp_path, keep=2)
    runs = [orch.run_once() for _ in range(4)]
    assert list_models(tmp_path)["file"].tolist() == [r.model_file.name for r in runs[-2:]]


def test_transformer_featurizer_trains_and_a_second_cycle_embeds_nothing(
    sqlite_url, tmp_path, embedded
):
    from test_features import build_tiny_model

    model_dir = build_tiny_model(tmp_path / "tiny")
    q = Queue(sqlite_url, labels=LABELS)
    data = generated(120)
    q.add(data.iloc[:40], text="text", id="id", label="label")
    q.add(data.iloc[40:][["id", "text"]], text="text", id="id")
    orch = Orchestrator(
        q, models_dir=tmp_path / "m", featurizer=f"transformer:{model_dir}", strategy="density"
    )
    first = orch.run_once()
    assert first.status == "trained" and first.n_reranked == 80
    assert sorted(embedded) == sorted(data["text"])  # each text once: labelled and pool
    assert np.isfinite(first.metrics["accuracy"])

    embedded.clear()
    second = orch.run_once()
    assert second.status == "trained" and embedded == []  # everything came from the cache

    saved = load_latest(tmp_path / "m")  # embedder + classifier: raw text in
    assert saved.predict_proba(["a good film", "a bad day"]).shape == (2, 2)


# -- the loop -----------------------------------------------------------------------------------


def test_loop_retrains_only_after_enough_new_labels_and_stops_on_request(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=LABELS)
    data = generated(200)
    q.add(data.iloc[:30], text="text", id="id", label="label")
    q.add(data.iloc[30:][["id", "text"]], text="text", id="id")
    truth = dict(zip(data["id"], data["label"]))
    stop = threading.Event()
    orch = Orchestrator(q, models_dir=tmp_path)
    loop = threading.Thread(
        target=orch.run_forever,
        kwargs={"interval_seconds": 0.05, "min_new_labels": 5, "stop_event": stop},
    )
    loop.start()
    try:
        _wait_for(lambda: len(q.runs()) == 1 and q.runs(1)[0]["finished_at"] is not None)
        time.sleep(0.5)
        assert len(q.runs()) == 1  # nothing new: no retraining
        label_through_queue(q, truth, 4)
        time.sleep(0.5)
        assert len(q.runs()) == 1  # 4 < 5 new labels
        label_through_queue(q, truth, 1)
        _wait_for(lambda: len(q.runs()) == 2 and q.runs(1)[0]["finished_at"] is not None)
        assert q.runs(1)[0]["n_labels"] == 35
    finally:
        stop.set()
        loop.join(timeout=30)
    assert not loop.is_alive()


class _FlakyQueue:
    """A queue whose first calls fail as if the database server were restarting."""

    def __init__(self, q: Queue, failures: int):
        self._q, self.failures = q, failures

    def count_label_events(self):
        if self.failures > 0:
            self.failures -= 1
            raise DatabaseUnavailable("Cannot reach the database: connection refused")
        return self._q.count_label_events()

    def __getattr__(self, name):
        return getattr(self._q, name)


def test_loop_retries_database_errors_with_backoff(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=LABELS)
    q.add(generated(60), text="text", id="id", label="label")
    q.add(generated(20, start=60)[["id", "text"]], text="text", id="id")
    flaky = _FlakyQueue(q, failures=3)
    stop = threading.Event()
    orch = Orchestrator(flaky, models_dir=tmp_path)
    loop = threading.Thread(
        target=orch.run_forever,
        kwargs={"interval_seconds": 0.05, "stop_event": stop, "backoff_seconds": 0.05},
    )
    loop.start()
    try:
        _wait_for(lambda: len(q.runs()) == 1 and q.runs(1)[0]["finished_at"] is not None)
    finally:
        stop.set()
        loop.join(timeout=30)
    assert flaky.failures == 0 and q.runs(1)[0]["status"] == "trained"


def test_waiting_for_an_unreachable_database_gives_up_with_a_clear_error():
    with pytest.raises(DatabaseUnavailable, match="gave up"):
        wait_for_database("postgresql://nobody@127.0.0.1:9/none", timeout_seconds=1)


# -- the entrypoint -----------------------------------------------------------------------------


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGETAL_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def test_entrypoint_once_reads_its_configuration_from_the_environment(db_url, tmp_path):
    q = Queue(db_url, labels=LABELS)
    q.add(generated(80), text="text", id="id", label="label")
    q.add(generated(40, start=80)[["id", "text"]], text="text", id="id")
    models_dir = tmp_path / "from-env"
    env = _env(
        WIDGETAL_DB_URL=db_url,
        WIDGETAL_MODELS_DIR=str(models_dir),
        WIDGETAL_STRATEGY="margin",
        WIDGETAL_EXPLORE="0.2",
        WIDGETAL_FEATURIZER="tfidf",
    )
    done = subprocess.run(
        [sys.executable, "orchestrator.py", "--once"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "saved" in done.stdout and "reordered 40 items" in done.stdout
    (model,) = list_models(models_dir).itertuples()
    assert model.strategy == "margin" and model.n_labels == 80
    assert q.runs(1)[0]["strategy"] == "margin"

    # Options on the command line win over the environment.
    done = subprocess.run(
        [sys.executable, "orchestrator.py", "--once", "--strategy", "random",
         "--models-dir", str(tmp_path / "from-cli")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert list_models(tmp_path / "from-cli")["strategy"].tolist() == ["random"]


def test_entrypoint_runs_until_sigterm_then_exits_cleanly(sqlite_url, tmp_path):
    q = Queue(sqlite_url, labels=LABELS)
    q.add(generated(60), text="text", id="id", label="label")
    q.add(generated(20, start=60)[["id", "text"]], text="text", id="id")
    proc = subprocess.Popen(
        [sys.executable, "orchestrator.py", "--interval-seconds", "0.2"],
        cwd=REPO,
        env=_env(WIDGETAL_DB_URL=sqlite_url, WIDGETAL_MODELS_DIR=str(tmp_path / "m")),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        _wait_for(lambda: not list_models(tmp_path / "m").empty, timeout=120)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "stopping after the current cycle" in out and "stopped" in out


def test_entrypoint_with_an_unreachable_database_fails_with_one_clear_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "orchestrator.py", "--once"], cwd=REPO, timeout=120,
        env=_env(WIDGETAL_DB_URL="postgresql://nobody@127.0.0.1:9/none",
                 WIDGETAL_WAIT_SECONDS="1"),
        capture_output=True, text=True,
    )
    assert done.returncode == 1
    assert "error:" in done.stderr and "Cannot reach the database" in done.stderr
    assert "Traceback" not in done.stderr


# -- killed mid-reorder -------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys, time
    import sqlalchemy as sa
    from widgetal import Queue
    from widgetal.orchestrator import Orchestrator

    q = Queue(sys.argv[1])

    @sa.event.listens_for(q.engine, "after_cursor_execute")
    def hold(conn, cursor, statement, params, context, executemany):
        # The reorder has written ranks inside its open transaction (in place, anew, or into
        # PostgreSQL's next table): announce it and wait there to be killed.
        if statement.startswith(("UPDATE widgetal_ranks", "INSERT INTO widgetal_ranks")):
            print("MID-REORDER", flush=True)
            time.sleep(600)

    run = Orchestrator(q, models_dir=sys.argv[2]).run_once()
    print("FINISHED", run.status, flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_in_the_middle_of_a_reorder_loses_nothing(db_url, tmp_path):
    n_pool = 60_000  # more than one PostgreSQL chunk of 50,000
    q = Queue(db_url, labels=LABELS)
    data = generated(300 + n_pool)
    truth = dict(zip(data["id"], data["label"]))
    q.add(data.iloc[:300], text="text", id="id", label="label")
    q.add(data.iloc[300:][["id", "text"]], text="text", id="id")
    before_labels = _labels_snapshot(q)
    pool_ids = q.undone()["item_id"].tolist()
    script = tmp_path / "child.py"
    script.write_text(_CHILD)

    child = subprocess.Popen(
        [sys.executable, str(script), db_url, str(tmp_path / "models")],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    submitted: list[tuple] = []
    try:
        line = child.stdout.readline()
        assert line.strip() == "MID-REORDER", child.stderr.read()

        def labeller():  # a live labeller keeps working while the orchestrator dies
            for _ in range(5):
                item = q.pop("bea")
                q.submit(item.item_id, truth[item.external_id], "bea")
                submitted.append((item.item_id, truth[item.external_id], "bea"))

        worker = threading.Thread(target=labeller)
        worker.start()
        time.sleep(0.5)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        worker.join(timeout=120)
        assert not worker.is_alive()
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()

    assert child.returncode == -signal.SIGKILL
    # Every label is there: those from before and those given while the orchestrator died.
    assert len(submitted) == 5
    assert _labels_snapshot(Queue(db_url)) == sorted(before_labels + submitted)
    # The reorder rolled back as a whole: no item carries the dead run's priorities.
    run_id = q.runs(1)[0]["id"]
    assert q.runs(1)[0]["finished_at"] is None  # the run never finished
    assert q.runs(1)[0]["status"] == "running"
    left = q.items([i for i in pool_ids if i not in {s[0] for s in submitted}])
    assert len(left) == n_pool - 5
    assert {(i.ranked_by, i.priority) for i in left} == {(None, 0.0)}
    assert all(p.suffix != ".part" for p in (tmp_path / "models").iterdir())
    # The queue works on: a new cycle takes the lock and reorders everything left.
    run = Orchestrator(Queue(db_url), models_dir=tmp_path / "models").run_once()
    assert run.status == "trained" and run.run_id != run_id
    assert run.n_reranked == n_pool - 5


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_training_side_modules_import_no_widget_code():
    import ast

    import widgetal

    root = Path(widgetal.__file__).parent
    for name in ("orchestrator.py", "features.py", "models.py"):
        tree = ast.parse((root / name).read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0
        } | {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1
        }
        assert not imported & {"ipywidgets", "IPython", "widget", "voila"}, name


def test_models_command_lists_each_saved_model_with_its_scores(sqlite_url, tmp_path):
    from typer.testing import CliRunner

    from widgetal.cli import app

    q = Queue(sqlite_url, labels=LABELS)
    q.add(generated(60), text="text", id="id", label="label")
    q.add(generated(20, start=60)[["id", "text"]], text="text", id="id")
    runner = CliRunner()
    empty = runner.invoke(app, ["models", "--models-dir", str(tmp_path / "m")])
    assert empty.exit_code == 0 and "No models" in empty.output
    run = Orchestrator(q, models_dir=tmp_path / "m").run_once()
    shown = runner.invoke(
        app, ["models", "--models-dir", str(tmp_path / "m")], env={"COLUMNS": "250"}
    )
    assert shown.exit_code == 0, shown.output
    assert run.model_file.name in shown.output
    assert f"{run.metrics['accuracy']:.3f}" in shown.output and "entropy" in shown.output
