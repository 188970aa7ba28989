"""The README's main job, run as a newcomer runs it: sample imported, orchestrator and app up."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from widgetal import Queue
from widgetal.quickstart import SAMPLE, seed_project

README = Path(__file__).resolve().parents[1] / "README.md"
MAIN_JOB = 'pip install -e ".[app]" && widgetal quickstart'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def test_seed_project_imports_the_sample_with_a_few_seed_labels_once(sqlite_url):
    q, added = seed_project(sqlite_url)
    assert added == 400
    per_label = q.progress().per_label
    assert per_label == {"negative": 10, "positive": 10}
    assert seed_project(sqlite_url)[1] == 0  # a second start adds nothing twice


def test_readme_main_job_serves_the_app_and_trains_a_model(tmp_path):
    assert MAIN_JOB in README.read_text(), "README's main-job command changed: update this test"
    command = MAIN_JOB.split("&& ", 1)[1].split()  # installing is .ci/run's job here
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGETAL_")}
    env["WIDGETAL_PORT"] = str(port)
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 240
        app_up = model = False
        while time.monotonic() < deadline and not (app_up and model):
            assert proc.poll() is None, proc.stdout.read()
            app_up = app_up or _answers(f"http://127.0.0.1:{port}/")
            model = model or any((tmp_path / "models").glob("*.pkl"))
            time.sleep(1)
        assert app_up, "the labelling app never answered"
        assert model, "the orchestrator wrote no model"
        assert (tmp_path / "widgetal.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("quickstart did not stop within 60 s of Ctrl+C")
    assert proc.returncode == 0, output
    assert re.search(r"Label at http://127\.0\.0\.1:\d+/\?labeller=", output)
    assert not _answers(f"http://127.0.0.1:{port}/"), "the app is still running"
    q = Queue(f"sqlite:///{tmp_path / 'widgetal.db'}")
    assert q.runs()[0]["model_file"], "the run that wrote the model is recorded"
    assert SAMPLE.exists()
