"""The `widgetal` command end to end, as a user runs it (a real subprocess, a real database)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pandas as pd
import pytest


def run(*args: str, db: str, cwd=None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "WIDGETAL_DB_URL": db, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "widgetal.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr or proc.stdout)
    return proc


def test_init_import_status_export_round_trip(db_url, tmp_path):
    src = tmp_path / "tweets.csv"
    src.write_text("id,text,label\n1,great day,positive\n2,awful day,negative\n3,so-so,\n")
    run("init", "--labels", "negative,positive", db=db_url)
    out = run("import", str(src), "--id-col", "id", "--label-col", "label", db=db_url).stdout
    assert "Read 3 rows: added 3 texts (2 with labels)" in out
    again = run("import", str(src), "--id-col", "id", "--label-col", "label", db=db_url).stdout
    assert "added 0 texts" in again and "3 were already there" in again
    assert "2 labels already present" in again
    status = run("status", db=db_url).stdout
    assert "Items: 3   labelled: 2   left: 1" in status
    out_file = tmp_path / "labels.csv"
    run("export", str(out_file), db=db_url)
    exported = pd.read_csv(out_file)
    assert sorted(exported.label) == ["negative", "positive"]
    assert {"text", "labeller", "created_at"} <= set(exported.columns)


def test_default_database_is_a_sqlite_file_in_the_current_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WIDGETAL_DB_URL"}
    subprocess.run(
        [sys.executable, "-m", "widgetal.cli", "init", "--labels", "a,b"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (tmp_path / "widgetal.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import", "missing.csv"), "No such file"),
        (("status", "--db", "postgresql://u:p@127.0.0.1:1/x"), "Cannot reach the database"),
        (("init", "--labels", "onlyone"), "at least two labels"),
    ],
)
def test_errors_are_one_clear_line_and_exit_code_1(sqlite_url, tmp_path, args, message):
    proc = run(*args, db=sqlite_url, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_status_shows_the_latest_run_and_its_cv_scores(sqlite_url, tmp_path):
    from widgetal.orchestrator import Orchestrator
    from widgetal.quickstart import seed_project

    q, _ = seed_project(sqlite_url)
    Orchestrator(q, models_dir=tmp_path / "models").run_once()
    out = run("status", db=sqlite_url).stdout
    # the score the model file is named by (f1_macro unless --metric says otherwise) first
    assert re.search(r"Latest run #1 at .* UTC: 20 labels, CV macro-F1 0\.\d{3}, accuracy", out)
    assert "models/" in out and ".pkl" in out


def test_status_says_why_the_latest_run_trained_no_model(sqlite_url, tmp_path):
    from widgetal import Queue
    from widgetal.orchestrator import Orchestrator

    q = Queue(sqlite_url, labels=["negative", "positive"])
    q.add(["a fine day", "a bad day"])
    Orchestrator(q, models_dir=tmp_path / "m", cold_start=False).run_once()
    out = run("status", db=sqlite_url).stdout
    assert re.search(r"Latest run #1 at .* UTC: skipped: no labels yet: label at least 5", out)
    failed = q.start_run()
    q.finish_run(failed, status="failed", reason="OSError: disk full")
    assert re.search(r"Latest run #2 at .* UTC: failed: OSError: disk full",
                     run("status", db=sqlite_url).stdout)
    q.start_run()
    assert re.search(r"Latest run #3 at .* UTC: running \(or stopped before it finished\)",
                     run("status", db=sqlite_url).stdout)
    q.engine.dispose()


def _multilabel_rows(n: int, seed: int = 0) -> list[dict]:
    import random

    rng = random.Random(seed)
    words = {"billing": "invoice", "urgent": "asap", "refund": "moneyback"}
    rows = []
    for i in range(n):
        chosen = [label for label in words if rng.random() < 0.4]
        filler = " ".join(rng.choice(["hello", "the", "ticket", "day"]) for _ in range(4))
        rows.append({"id": i, "text": " ".join(words[x] for x in chosen) + " " + filler,
                     "label": "|".join(chosen) if chosen else "[]"})
    return rows


def test_a_multi_label_project_trains_with_the_chosen_aggregate_and_simulates_from_the_cli(
    sqlite_url, tmp_path
):
    labelled = tmp_path / "labelled.csv"
    pd.DataFrame(_multilabel_rows(60)).to_csv(labelled, index=False)
    fresh = pd.DataFrame(_multilabel_rows(40, seed=1)).assign(id=lambda f: f.id + 1000)
    unlabelled = tmp_path / "unlabelled.csv"
    fresh[["id", "text"]].to_csv(unlabelled, index=False)
    run("init", "--labels", "billing,urgent,refund", "--multi-label", db=sqlite_url)
    run("import", str(labelled), "--id-col", "id", "--label-col", "label", "--label-sep", "|",
        db=sqlite_url)
    run("import", str(unlabelled), "--id-col", "id", db=sqlite_url)
    models = tmp_path / "models"
    out = run("orchestrate", "--once", "--aggregate", "max", "--models-dir", str(models),
              db=sqlite_url).stdout
    assert "reordered 40 items" in out
    sidecar = sorted(models.glob("*.json"))[-1].read_text()
    assert '"aggregate": "max"' in sidecar and "f1_micro" in sidecar
    bad = run("orchestrate", "--once", "--aggregate", "median", "--models-dir", str(models),
              db=sqlite_url, check=False)
    assert bad.returncode != 0 and "aggregate must be one of" in bad.stderr + bad.stdout

    sim = tmp_path / "sim.csv"
    pd.DataFrame(_multilabel_rows(300, seed=2)).to_csv(sim, index=False)
    res = run("simulate", str(sim), "--multi-label", "--label-sep", "|", "--repeats", "1",
              "--batch", "50", "--start", "50", "--strategies", "random,entropy",
              "--out", str(tmp_path / "res"), db=sqlite_url).stdout
    assert "f1_micro" in res and "entropy" in res
    curves = pd.read_csv(tmp_path / "res" / "curves.csv")
    assert set(curves["strategy"]) == {"random", "entropy"}
