"""The access commands as a project owner runs them: init --access, labellers add/list/rotate/
disable with personal links, serve's Voila options, quickstart's label set."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from widgetal import Queue, access
from widgetal.quickstart import seed_project
from widgetal.serve import kernel_environment, voila_command


def run(*args: str, db: str, check: bool = True, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WIDGETAL_DB_URL": db, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "widgetal.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr or proc.stdout)
    return proc


def _key(out: str) -> str:
    return re.search(r"\?key=([A-Za-z0-9_-]+)", out).group(1)


def test_keys_access_from_init_to_rotate(db_url, tmp_path):
    out = run("init", "--labels", "negative,positive", "--access", "keys", db=db_url,
              cwd=tmp_path).stdout
    assert "Access: keys" in out
    out = run("labellers", "add", "ana", "--url", "http://labels.example:8866", db=db_url).stdout
    assert "ana is a labeller" in out and "http://labels.example:8866/?key=" in out
    key = _key(out)
    out = run("labellers", "add", "rita", "--reviewer", db=db_url).stdout
    assert re.search(r"\?key=[\w-]+&review=1", out)
    again = run("labellers", "add", "ana", db=db_url).stdout
    assert "unchanged" in again and "?key=" not in again
    q = Queue(db_url)
    try:
        assert access.page_identity(q, {"QUERY_STRING": f"key={key}"}).name == "ana"
        listing = run("labellers", "list", db=db_url).stdout
        assert re.search(r"ana\W+labeller\W+yes\W+yes", listing) and "Access: keys" in listing
        new = _key(run("labellers", "rotate", "ana", db=db_url).stdout)
        assert new != key
        assert access.page_identity(q, {"QUERY_STRING": f"key={key}"}).refused
        assert access.page_identity(q, {"QUERY_STRING": f"key={new}"}).name == "ana"
        run("labellers", "disable", "ana", db=db_url)
        assert access.page_identity(q, {"QUERY_STRING": f"key={new}"}).refused
        run("labellers", "add", "ana", db=db_url)  # enabled again, same link
        assert access.page_identity(q, {"QUERY_STRING": f"key={new}"}).name == "ana"
        bad = run("labellers", "rotate", "nobody", db=db_url, check=False)
        assert bad.returncode == 1 and "No labeller named 'nobody'" in bad.stderr
    finally:
        q.engine.dispose()


def test_header_access_and_changing_back(sqlite_url, tmp_path):
    out = run("init", "--labels", "negative,positive", "--access", "header", "--header-name",
              "X-Remote-User", "--allow", "ana,bo", db=sqlite_url, cwd=tmp_path).stdout
    assert "Access: header" in out and "X-Remote-User" in out and "ana, bo" in out
    q = Queue(sqlite_url)
    assert access.policy(q) == access.AccessPolicy("header", "X-Remote-User", ("ana", "bo"))
    out = run("init", "--labels", "negative,positive", db=sqlite_url, cwd=tmp_path).stdout
    assert "Access: header" in out  # init without --access keeps the mode
    run("init", "--labels", "negative,positive", "--access", "open", db=sqlite_url, cwd=tmp_path)
    assert access.policy(q).mode == "open"
    q.engine.dispose()
    bad = run("init", "--labels", "negative,positive", "--access", "keys", "--allow", "ana",
              db=sqlite_url, check=False, cwd=tmp_path)
    assert bad.returncode == 1 and "header mode only" in bad.stderr
    bad = run("init", "--labels", "negative,positive", "--access", "password",
              db=sqlite_url, check=False, cwd=tmp_path)
    assert bad.returncode == 1 and "must be one of open, keys, header" in bad.stderr


def test_open_project_still_prints_a_link_and_says_keys_need_keys_access(sqlite_url, tmp_path):
    run("init", "--labels", "a,b", db=sqlite_url, cwd=tmp_path)
    out = run("labellers", "add", "ana", db=sqlite_url).stdout
    assert "?key=" in out and "access is open" in out


def test_serve_options_reach_voila_and_kernels(monkeypatch):
    cmd = voila_command(token="t0k", max_kernels=4, header_envs=["X-Remote-User"])
    assert "--token=t0k" in cmd
    assert ("--VoilaConfiguration.multi_kernel_manager_class="
            "widgetal.kernel_cap.CappedKernelManager") in cmd
    assert "--CappedKernelManager.max_kernels=4" in cmd
    assert "--VoilaConfiguration.http_header_envs=['X-Remote-User']" in cmd
    plain = voila_command()
    assert not any("token" in c or "http_header_envs" in c or "Capped" in c for c in plain)
    monkeypatch.setenv("HTTP_X_REMOTE_USER", "mallory")  # would pass for every page's header
    monkeypatch.setenv("WIDGETAL_SHOW_META", "1")
    env = kernel_environment("sqlite:///x.db", show_guess=True)
    assert "HTTP_X_REMOTE_USER" not in env
    assert env["WIDGETAL_SHOW_GUESS"] == "1" and env["WIDGETAL_SHOW_META"] == "1"
    assert kernel_environment("sqlite:///x.db", show_meta=False)["WIDGETAL_SHOW_META"] == "0"


def test_quickstart_sample_without_labels_needs_a_label_set(tmp_path):
    sample = tmp_path / "texts.csv"
    sample.write_text("id,text\n1,first\n2,second\n")
    url = f"sqlite:///{tmp_path / 'q.db'}"
    out = run("quickstart", "--sample", str(sample), "--port", "1", db=url, check=False)
    assert out.returncode == 1 and "has no label column" in out.stderr
    assert "--labels" in out.stderr
    q, added = seed_project(url, sample, labels=["spam", "ham"])
    assert added == 2 and q.labels == ["spam", "ham"]
    q.engine.dispose()
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("text,label\nfirst,spam\nsecond,other\n")
    out = run("quickstart", "--sample", str(labelled), "--labels", "spam,ham", "--port", "1",
              db=f"sqlite:///{tmp_path / 'r.db'}", check=False)
    assert out.returncode == 1 and "'other'" in out.stderr
