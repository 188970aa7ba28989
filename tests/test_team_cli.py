"""The team loop as a user drives it: CLI commands and the orchestrator on final labels."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from test_cli import run
from test_orchestrator import generated

from widgetal import Queue
from widgetal.orchestrator import Orchestrator

LABELS = ["negative", "positive"]


def _two_labellers(q: Queue, truth: dict[str, str], flip: set[str]) -> None:
    """ana labels the truth; bob agrees except on ``flip``."""
    for who in ("ana", "bob"):
        while (item := q.pop(who)) is not None:
            label = truth[item.external_id]
            if who == "bob" and item.external_id in flip:
                label = "negative" if label == "positive" else "positive"
            q.submit(item.item_id, label, who)


def test_orchestrator_trains_on_final_labels_and_reports_those_awaiting_review(db_url, tmp_path):
    data = generated(80)
    truth = dict(zip(data.id, data.label))
    q = Queue(db_url, labels=LABELS)
    q.configure(overlap=2)
    q.add_person("rita", reviewer=True)
    q.add(data[["id", "text"]], id="id")
    flip = set(data.id[:6])
    _two_labellers(q, truth, flip)
    first = Orchestrator(q, models_dir=tmp_path / "models").run_once()
    assert (first.n_labels, first.awaiting_review) == (74, 6)
    sidecar = json.loads(Path(first.model_file).with_suffix(".json").read_text())
    assert sidecar["awaiting_review"] == 6 and sidecar["n_labels"] == 74
    assert q.runs(1)[0]["metrics"]["awaiting_review"] == 6
    status = run("status", db=db_url).stdout
    assert "awaiting review: 6" in status and "6 items left out, awaiting review" in status

    decided = {}
    while (item := q.pop_review("rita")) is not None:
        decided[item.external_id] = "positive"  # the reviewer's own call, not the truth
        q.review(item.item_id, "positive", "rita")
    second = Orchestrator(q, models_dir=tmp_path / "models").run_once()
    assert (second.n_labels, second.awaiting_review) == (80, 0)
    expected = pd.Series({**truth, **decided}).value_counts().to_dict()
    assert second.label_counts == expected


def test_init_overlap_labellers_agreement_and_event_export(sqlite_url, tmp_path):
    bad = run("init", "--labels", "negative,positive", "--overlap", "0", db=sqlite_url,
              check=False)
    assert bad.returncode == 1 and "at least 1" in bad.stderr
    out = run("init", "--labels", "negative,positive", "--overlap", "2", db=sqlite_url).stdout
    assert "each item labelled by 2 labellers" in out
    assert "rita is a reviewer" in run("labellers", "add", "rita", "--reviewer",
                                       db=sqlite_url).stdout
    listing = run("labellers", "list", db=sqlite_url).stdout
    assert "rita" in listing and "reviewer" in listing
    data = generated(30)
    src = tmp_path / "texts.csv"
    data[["id", "text"]].to_csv(src, index=False)
    run("import", str(src), "--id-col", "id", db=sqlite_url)
    status = run("status", db=sqlite_url).stdout
    assert "only 1 labellers known but each item needs 2" in status
    q = Queue(sqlite_url)
    _two_labellers(q, dict(zip(data.id, data.label)), set(data.id[:3]))
    report = run("agreement", "--min-shared", "5", db=sqlite_url).stdout
    assert "Krippendorff's alpha" in report and "ana" in report and "bob" in report
    too_few = run("agreement", "--min-shared", "50", db=sqlite_url).stdout
    assert "too little overlap" in too_few.lower()
    events = tmp_path / "events.csv"
    assert "Wrote 60 events" in run("export", "--events", str(events), db=sqlite_url).stdout
    frame = pd.read_csv(events)
    assert set(frame.event) == {"label"} and len(frame) == 60
    final = tmp_path / "final.csv"
    run("export", str(final), db=sqlite_url)
    assert len(pd.read_csv(final)) == 27  # 3 disagreements await review
    again = run("import", str(final), db=sqlite_url).stdout
    assert "added 0 texts" in again and "27 labels already present" in again
