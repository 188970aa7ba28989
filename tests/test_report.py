"""`widgetal report`: one self-contained HTML page from a real project with real runs and a
real `widgetal simulate --out` folder; project text escaped; bad input refused."""

from __future__ import annotations

import base64
import html
import re

import pytest
from test_cli import run
from test_orchestrator import generated, label_through_queue

from widgetal import Queue
from widgetal.orchestrator import Orchestrator

EVIL = "<script>alert('x')</script>"


@pytest.fixture
def project(sqlite_url, tmp_path):
    """A project whose second label is a script tag, with three trained runs and an audit
    sample."""
    data = generated(900, seed=5)
    data["label"] = data["label"].map({"negative": "negative", "positive": EVIL})
    q = Queue(sqlite_url, labels=["negative", EVIL])
    q.configure(audit_share=0.2)  # a fifth of what is served is the audit sample
    q.add(data[["id", "text"]], text="text", id="id")
    truth = dict(zip(data["id"], data["label"]))
    orch = Orchestrator(q, models_dir=tmp_path / "models")
    label_through_queue(q, truth, 40)
    for _ in range(3):
        assert orch.run_once().status == "trained"
        label_through_queue(q, truth, 20)
    data.to_csv(tmp_path / "labelled.csv", index=False)
    return q, tmp_path


def test_report_command_writes_one_self_contained_page_with_runs_signal_and_simulation(
    project, sqlite_url
):
    q, tmp_path = project
    sim = tmp_path / "sim"
    run("simulate", str(tmp_path / "labelled.csv"), "--strategies", "random,entropy",
        "--batch", "60", "--start", "40", "--repeats", "1", "--max-labels", "220",
        "--out", str(sim), db=sqlite_url)
    out = tmp_path / "report.html"

    proc = run("report", "--out", str(out), "--simulation", str(sim), db=sqlite_url)

    assert str(out) in proc.stdout.replace("\n", "")
    page = out.read_text()
    # self-contained: no script, no link, no asset from anywhere; figures inline as PNG
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert not re.search(r"https?://", page)
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) == 2  # the stop-set kappa and the learning curve with the simulation
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # the label, escaped

    trained = [r for r in q.runs() if r["status"] == "trained"]
    assert len(trained) == 3
    for r in trained:  # every run, with its recorded CV score, audit score and stop-set kappa
        m = r["metrics"]
        assert f"<td>#{r['id']}</td>" in page
        assert f"<td>{m['f1_macro']:.3f}</td>" in page
        assert m["n_audit"] > 0
        assert (f"<td>{m['audit_f1_macro']:.3f} [{m['audit_ci_low']:.3f}, "
                f"{m['audit_ci_high']:.3f}]</td>") in page
        if r["metrics"]["stop_kappa"] is not None:
            assert f"<td>{r['metrics']['stop_kappa']:.3f}</td>" in page
    # the live audit curve and simulate's curves are drawn in the same metric
    assert "audit score with its interval; simulate&#x27;s f1_macro for random and entropy" in page
    signal = html.unescape(re.search(r"<p class='verdict[^']*'>([^<]*)</p>", page).group(1))
    status = run("status", db=sqlite_url).stdout
    assert f"Stop signal: {signal}" in status.replace("\n", " ") or signal in status
    table = page[page.index("What <code>simulate</code> predicted"):]
    assert "<td>random</td>" in table and "<td>entropy</td>" in table


def test_report_refuses_a_folder_simulate_did_not_write_and_writes_nothing(
    project, sqlite_url
):
    _q, tmp_path = project
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    out = tmp_path / "report.html"

    proc = run("report", "--out", str(out), "--simulation", str(empty), db=sqlite_url,
               check=False)

    assert proc.returncode == 1
    assert "holds no curves.csv" in proc.stderr and "simulate --out" in proc.stderr
    assert not out.exists()


def test_report_of_a_project_without_runs_says_so(sqlite_url, tmp_path):
    Queue(sqlite_url, labels=["negative", "positive"]).add(["a text", "another"])
    out = tmp_path / "r.html"
    run("report", "--out", str(out), db=sqlite_url)
    page = out.read_text()
    assert "No trained run yet" in page and "0</b> of <b>2</b> texts" in page
    assert "No stop signal yet: no trained run yet" in page


def test_models_notebook_draws_the_live_curve_against_the_simulation(
    project, sqlite_url, monkeypatch
):
    pytest.importorskip("nbclient")
    from test_notebooks import _errors, _outputs, _run

    from widgetal.serve import MODELS_NOTEBOOK

    _q, tmp_path = project
    sim = tmp_path / "sim"
    run("simulate", str(tmp_path / "labelled.csv"), "--strategies", "random,entropy",
        "--batch", "60", "--start", "40", "--repeats", "1", "--max-labels", "160",
        "--out", str(sim), db=sqlite_url)
    without = _run(MODELS_NOTEBOOK, monkeypatch, WIDGETAL_DB_URL=sqlite_url,
                   WIDGETAL_MODELS_DIR=str(tmp_path / "models"))
    with_sim = _run(MODELS_NOTEBOOK, monkeypatch, WIDGETAL_DB_URL=sqlite_url,
                    WIDGETAL_MODELS_DIR=str(tmp_path / "models"), WIDGETAL_SIMULATION_DIR=str(sim))

    assert not _errors(without) and not _errors(with_sim)
    said = " ".join(o.data["text/markdown"] for o in _outputs(without, "text/markdown"))
    assert "No simulation to compare with" in said
    # one figure more: the audit curve beside simulate's random and entropy curves
    assert len(_outputs(with_sim, "image/png")) == len(_outputs(without, "image/png")) + 1
