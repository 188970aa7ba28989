"""``orchestrate --dask``: a real two-worker Dask cluster scores the pool exactly as the
in-process cycle does; an unreachable scheduler is a clear error that changes nothing."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli import run as run_cli

from widgetal import Queue, cluster
from widgetal.orchestrator import Orchestrator

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow

LABELS = ["negative", "positive"]
POSITIVE = "good great lovely happy love wonderful fun nice best enjoyed".split()
NEGATIVE = "bad awful sad hate terrible boring dull ugly worst tired".split()
NEUTRAL = "the film day work home today movie night we it was at my our this".split()


def texts(n: int) -> pd.DataFrame:
    """Texts whose sentiment words mostly agree with the label."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(n):
        positive = bool(rng.integers(2))
        own, other = (POSITIVE, NEGATIVE) if positive else (NEGATIVE, POSITIVE)
        words = [*rng.choice(NEUTRAL, 4), *rng.choice(own, rng.integers(1, 3)),
                 *rng.choice(other, rng.integers(0, 2))]
        rows.append((f"t{i}", " ".join(words), "positive" if positive else "negative"))
    return pd.DataFrame(rows, columns=["id", "text", "label"])


def labelled_queue(path: Path, data: pd.DataFrame, n_labels: int) -> Queue:
    """The same queue every time it is built from the same arguments."""
    q = Queue(f"sqlite:///{path}", labels=LABELS)
    q.add(data[["id", "text"]], text="text", id="id")
    truth = dict(zip(data["id"], data["label"]))
    for _ in range(n_labels):
        item = q.pop("ana")
        q.submit(item.item_id, truth[item.external_id], "ana", seconds=1.0)
    return q


def snapshot(q: Queue, n: int) -> list[tuple]:
    return [(i.item_id, i.priority, i.ranked_by, i.guess_label, i.guess_proba)
            for i in q.items(range(1, n + 1))]


@pytest.fixture(scope="module")
def scheduler():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as lc:
        with distributed.Client(lc) as client:
            yield lc.scheduler_address, client


def test_a_cycle_on_the_cluster_reorders_exactly_as_in_process(scheduler, tmp_path):
    address, client = scheduler
    data, n = texts(900), 900
    local = labelled_queue(tmp_path / "local.db", data, 120)
    remote = labelled_queue(tmp_path / "remote.db", data, 120)
    assert snapshot(local, n) == snapshot(remote, n)  # two identical copies

    expected = Orchestrator(local, models_dir=tmp_path / "m1", explore=0.1,
                            random_state=3).run_once()
    orch = Orchestrator(remote, models_dir=tmp_path / "m2", explore=0.1, random_state=3,
                        dask=address)
    with distributed.get_task_stream(client) as stream:
        got = orch.run_once()
    orch.close()

    assert expected.status == got.status == "trained"
    assert got.n_reranked == expected.n_reranked == n - 120
    after = snapshot(remote, n)
    assert after == snapshot(local, n)  # priorities, ranked_by and guesses, bit for bit
    assert len({row[1] for row in after}) > n // 2  # real, varied scores, not a constant
    assert sum(row[3] is not None for row in after) == n - 120
    # the workers did the scoring, and the run says so
    keys = [str(task["key"]) for task in stream.data]
    assert sum("_predict_proba" in k for k in keys) >= 2
    assert got.cluster == {"scheduler": address, "workers": 2} and expected.cluster is None
    sidecar = json.loads(got.model_file.with_suffix(".json").read_text())
    assert sidecar["cluster"]["workers"] == 2
    assert remote.runs(limit=1)[0]["metrics"]["cluster"]["workers"] == 2
    assert "cluster" not in local.runs(limit=1)[0]["metrics"]

    # the same through the command line; the client it opened is closed again
    data2 = texts(300)
    cli_q = labelled_queue(tmp_path / "cli.db", data2, 60)
    out = run_cli("orchestrate", "--once", "--dask", address, "--models-dir",
                  str(tmp_path / "m3"), db=f"sqlite:///{tmp_path / 'cli.db'}").stdout
    assert "reordered 240 items" in out
    assert cli_q.runs(limit=1)[0]["metrics"]["cluster"]["workers"] == 2


def test_transformer_embeddings_are_computed_on_the_workers_and_cached(scheduler, tmp_path):
    from test_features import build_tiny_model

    from widgetal.features import TransformerEmbedder

    address, client = scheduler
    spec = f"transformer:{build_tiny_model(tmp_path / 'tiny')}"
    data = texts(160)
    q = labelled_queue(tmp_path / "q.db", data, 40)
    orch = Orchestrator(q, models_dir=tmp_path / "m", featurizer=spec, strategy="density",
                        cv_folds=3, dask=address)
    with distributed.get_task_stream(client) as stream:
        run = orch.run_once()
    orch.close()

    assert run.status == "trained" and run.n_reranked == 120
    assert sum("_transform" in str(task["key"]) for task in stream.data) >= 2
    ids = list(range(1, 161))
    cached = q.cached_features(spec, ids)
    assert sorted(cached) == ids  # labelled and pool, each embedded once, by the workers
    here = TransformerEmbedder(model_name_or_path=spec.split(":", 1)[1]).transform(
        [i.text for i in q.items(ids)])
    there = np.stack([np.frombuffer(cached[i], dtype=np.float32) for i in ids])
    np.testing.assert_allclose(there, here, atol=1e-5)  # the same model, on another machine


def test_an_unreachable_scheduler_is_a_clear_error_and_changes_nothing(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    q = labelled_queue(tmp_path / "q.db", texts(200), 40)
    before = snapshot(q, 200)
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)

    with pytest.raises(cluster.ClusterUnavailable, match=f"No Dask scheduler answered at "
                       f"{address}"):
        Orchestrator(q, models_dir=tmp_path / "m", dask=address)
    with pytest.raises(ValueError, match="committee strategy needs a transformer featurizer"):
        Orchestrator(q, models_dir=tmp_path / "m", strategy="committee", dask=address)
    with monkeypatch.context() as m:  # as without the extra installed
        m.setitem(sys.modules, "distributed", None)
        with pytest.raises(cluster.ClusterNotInstalled, match=r"widgetal\[cluster\]"):
            Orchestrator(q, models_dir=tmp_path / "m", dask=address)
    assert snapshot(q, 200) == before and q.runs() == []

    proc = run_cli("orchestrate", "--once", "--dask", address, "--models-dir",
                   str(tmp_path / "m"), db=f"sqlite:///{tmp_path / 'q.db'}", check=False)
    assert proc.returncode == 1
    assert f"No Dask scheduler answered at {address}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(q, 200) == before and q.runs() == []
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


def test_each_worker_runs_embeddings_on_its_own_device(scheduler, tmp_path):
    """The orchestrator loaded the model on its CPU; a worker whose torch sees a GPU loads it
    on CUDA, the other on its CPU. (No GPU here: "sees" is torch.cuda.is_available patched in
    one worker process, and loading on CUDA then fails in this CPU build of torch, as it
    must.)"""
    from test_features import build_tiny_model

    from widgetal.features import TransformerEmbedder

    _, client = scheduler
    gpu, cpu = sorted(client.scheduler_info(n_workers=-1)["workers"])
    embedder = TransformerEmbedder(model_name_or_path=str(build_tiny_model(tmp_path / "tiny")))
    here = embedder.transform(["good film"])
    assert embedder._device == "cpu"

    def pretend_gpu(on: bool) -> None:
        import torch

        if on:
            torch.cuda._widgetal_real, torch.cuda.is_available = (torch.cuda.is_available,
                                                                 lambda: True)
        else:
            torch.cuda.is_available = torch.cuda._widgetal_real

    client.run(pretend_gpu, True, workers=[gpu])
    try:
        on_cpu = client.submit(cluster._transform, embedder, ["good film"], workers=[cpu],
                               pure=False).result()
        np.testing.assert_allclose(on_cpu, here, atol=1e-6)
        on_gpu = client.submit(cluster._transform, embedder, ["good film"], workers=[gpu],
                               pure=False)
        with pytest.raises(AssertionError, match="Torch not compiled with CUDA"):
            on_gpu.result()
    finally:
        client.run(pretend_gpu, False, workers=[gpu])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_compose_profiles_scheduler_and_late_worker_score_a_cycle(tmp_path, monkeypatch):
    """docker-compose.yml's `cluster` commands, run here: a cycle waits for a worker still
    starting, and with none at all it is a clear error."""
    import subprocess
    import time

    import yaml
    from test_deploy import COMPOSE, env_example, interpolate

    services = yaml.safe_load(COMPOSE.read_text())["services"]
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    settings = {**env_example(), "WIDGETAL_DASK_WORKERS": "1"}
    worker_cmd = [interpolate(c, settings).replace("tcp://dask-scheduler:8786", address)
                  for c in services["dask-worker"]["command"]]
    assert address in worker_cmd
    procs = [subprocess.Popen([*services["dask-scheduler"]["command"], "--host", "127.0.0.1",
                               "--port", str(port)], stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert time.monotonic() < deadline and procs[0].poll() is None, "no scheduler"
            time.sleep(0.5)
        q = labelled_queue(tmp_path / "q.db", texts(300), 60)
        orch = Orchestrator(q, models_dir=tmp_path / "m", dask=address)
        try:
            with monkeypatch.context() as m:  # no worker yet: a clear error, not a hang
                m.setattr(cluster, "WORKERS_TIMEOUT", 1.0)
                with pytest.raises(cluster.ClusterUnavailable, match="has no workers"):
                    orch._cluster.map_rows(cluster._predict_proba, None, np.zeros((3, 1)))
            procs.append(subprocess.Popen(worker_cmd, stderr=subprocess.DEVNULL))
            run = orch.run_once()  # the worker joins while the cycle waits for it
        finally:
            orch.close()
        assert run.status == "trained" and run.n_reranked == 240
        assert q.runs(limit=1)[0]["metrics"]["cluster"] == {"scheduler": address, "workers": 1}
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(timeout=30)
