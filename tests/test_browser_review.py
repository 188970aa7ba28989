"""End to end, team labelling: two labellers label the same texts differently in `widgetal serve`
pages (headless Chromium through playwright), a reviewer resolves the disagreements in the review
page, and the orchestrator's next model is trained on the reviewer's labels (read back from the
run record and the model's sidecar)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_browser import (
    ARTIFACTS,
    LOAD_MS,
    STEP_MS,
    TEXT,
    _after,
    _click,
    _free_port,
    _key,
    _server,
    _shown,
    browser,  # noqa: F401 - the fixture
    needs_browser,
)

from widgetal import Queue

LABELS = ["negative", "positive"]
GIVEN = ".widgetal-given"
AWAITING = ".widgetal-awaiting"
MESSAGE = ".widgetal-message"

# (ana's label, bob's label, what rita decides); the order the queue serves them in.
PLAN = {
    "disputed one: <script>window.__pwned = 1</script>": ("positive", "negative", "negative"),
    "agreed two": ("positive", "positive", None),
    "disputed three & <b>more</b>": ("positive", "negative", "positive"),
    "disputed four": ("positive", "negative", "negative"),
}
POOL = [f"not labelled yet, number {i}" for i in range(4)]  # left for the orchestrator to rank
SEEDS = pd.DataFrame({
    "text": [f"a {w} film, seed {i}" for i in range(3) for w in ("great", "lovely")]
    + [f"a {w} film, seed {i}" for i in range(3) for w in ("awful", "dull")],
    "label": ["positive"] * 6 + ["negative"] * 6,
})


def _widgetal() -> list[str]:
    exe = shutil.which("widgetal")
    return [exe] if exe else [sys.executable, "-m", "widgetal.cli"]


def _open(browser, base: str, query: str):  # noqa: F811 - the browser fixture's value
    page = browser.new_context(viewport={"width": 1000, "height": 700}).new_page()
    page.set_default_timeout(STEP_MS)
    page.goto(f"{base}?{query}", timeout=LOAD_MS)
    page.wait_for_function(
        "sel => { const e = document.querySelector(sel); return e && e.innerText.trim() }",
        arg=TEXT, timeout=LOAD_MS,
    )
    return page


def _orchestrate_once(url: str, models_dir: Path) -> tuple[dict, dict]:
    """Run `widgetal orchestrate --once`; the run record and the sidecar of the model it saved."""
    out = subprocess.run(
        [*_widgetal(), "orchestrate", "--once", "--db", url, "--models-dir", str(models_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    q = Queue(url)
    try:
        run = q.runs(limit=1)[0]
    finally:
        q.engine.dispose()
    assert run["status"] == "trained", run["reason"]
    sidecar = json.loads(Path(run["model_file"]).with_suffix(".json").read_text())
    assert sidecar["run_id"] == run["id"]
    return run, sidecar


@pytest.fixture
def team_app(tmp_path):
    """Overlap 2 on a SQLite file: seeds imported with labels, texts to label, `widgetal serve`."""
    url = f"sqlite:///{tmp_path / 'team.db'}"
    q = Queue(url, labels=LABELS)
    # Seeds labelled before the team starts (overlap 1: one label each is final), so the model
    # can train; under overlap 2 an imported label would count as one of the two wanted.
    q.add(SEEDS, label="label")
    q.configure(overlap=2)  # items already complete stay so
    for name in ("ana", "bob"):
        q.add_person(name)
    q.add_person("rita", reviewer=True)
    q.add(list(PLAN) + POOL)
    port = _free_port()
    cmd = [*_widgetal(), "serve", "--port", str(port), "--ip", "127.0.0.1", "--db", url,
           "--models-dir", str(tmp_path / "models")]
    try:
        with _server(cmd, port, tmp_path / "voila.log", cwd=tmp_path):
            yield q, url, f"http://127.0.0.1:{port}/", tmp_path / "models"
    finally:
        q.engine.dispose()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(600)
@needs_browser
def test_reviewer_resolves_disagreements_in_the_page_and_the_model_trains_on_them(
    team_app, browser  # noqa: F811 - the fixture
):
    q, url, base, models_dir = team_app
    texts = list(PLAN)

    # Two labellers label the same four texts, by clicks; they disagree on three.
    ana, bob = _open(browser, base, "labeller=ana"), _open(browser, base, "labeller=bob")
    for who, page, column in (("ana", ana, 0), ("bob", bob, 1)):
        for text in texts:
            assert _shown(page) == text, who  # overlap 2: both are served the same texts
            label = PLAN[text][column]
            _after(page, _click(page, f".widgetal-label-{LABELS.index(label) + 1}"))
    assert ana.evaluate("window.__pwned") is None and bob.evaluate("window.__pwned") is None
    assert q.awaiting_review() == 3
    final = q.labelled()
    assert set(final["source"]) == {"labels"} and len(final) == len(SEEDS) + 1

    run, sidecar = _orchestrate_once(url, models_dir)  # before review: disagreements left out
    assert run["n_labels"] == sidecar["n_labels"] == len(SEEDS) + 1
    assert sidecar["label_counts"] == {"negative": 6, "positive": 7}
    # The run and the sidecar say how many items were left out, awaiting review.
    assert sidecar["awaiting_review"] == run["metrics"]["awaiting_review"] == 3

    # The reviewer resolves them in the review page: a click, a key, an undo and a redo.
    rita = _open(browser, base, "reviewer=rita")
    disputed = [t for t in texts if PLAN[t][2] is not None]
    assert _shown(rita) == disputed[0]  # shown as literal characters, never run
    assert rita.evaluate("window.__pwned") is None
    assert "3 awaiting review" in rita.inner_text(AWAITING)
    given = rita.inner_text(GIVEN)
    assert "positive (1): ana" in given and "negative (1): bob" in given
    ARTIFACTS.mkdir(exist_ok=True)
    rita.screenshot(path=str(ARTIFACTS / "reviewer.png"))
    decide = {label: f".widgetal-label-{i + 1}" for i, label in enumerate(LABELS)}
    assert _after(rita, _click(rita, decide[PLAN[disputed[0]][2]])) == disputed[1]
    wrong = "negative" if PLAN[disputed[1]][2] == "positive" else "positive"
    assert _after(rita, _key(rita, str(LABELS.index(wrong) + 1))) == disputed[2]
    assert _after(rita, _click(rita, ".widgetal-undo")) == disputed[1]  # taken back
    rita.wait_for_function(
        "sel => document.querySelector(sel).innerText.includes('Undone')", arg=MESSAGE
    )
    right = PLAN[disputed[1]][2]
    assert _after(rita, _key(rita, str(LABELS.index(right) + 1))) == disputed[2]
    assert _after(rita, _click(rita, decide[PLAN[disputed[2]][2]])) == ""
    rita.wait_for_function(
        "sel => document.querySelector(sel).innerText.includes('Nothing to review')",
        arg=MESSAGE,
    )
    assert "0 awaiting review" in rita.inner_text(AWAITING)

    # The database holds the reviewer's decisions as the final labels.
    assert q.awaiting_review() == 0
    final = q.labelled().set_index("text")
    for text in disputed:
        assert (final.loc[text, "label"], final.loc[text, "labeller"],
                final.loc[text, "source"]) == (PLAN[text][2], "rita", "review")
    assert final.loc["agreed two", "label"] == "positive"
    events = q.events()
    assert (events["event"] == "review").sum() == 4  # three decisions and the one taken back,
    undone = events[events["event"] == "undo-review"]  # which is kept, with its undo
    assert undone[["label", "labeller"]].values.tolist() == [[wrong, "rita"]]

    # The orchestrator's next model is trained on the reviewed labels.
    run, sidecar = _orchestrate_once(url, models_dir)
    expected = {"negative": 6, "positive": 7}
    for text in disputed:
        expected[PLAN[text][2]] += 1
    assert run["n_labels"] == sidecar["n_labels"] == len(SEEDS) + 4
    assert sidecar["label_counts"] == expected == {"negative": 8, "positive": 8}
    # Neither labeller's labels alone give these counts: ana's would be 6/10, bob's 9/7.
    assert sidecar["awaiting_review"] == run["metrics"]["awaiting_review"] == 0
