"""End to end, a multi-label project: `widgetal serve` (Voila) on loopback, driven by headless
Chromium through playwright. Labels are switched on by digit keys and by clicks, Enter submits
the set (also right after a click, with the toggle still focused), nothing switched on submits
"none of these", and Undo brings a text back with its set switched on. The database must hold
exactly the sets the page showed."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from test_browser import (
    ARTIFACTS,
    LOAD_MS,
    STEP_MS,
    TEXT,
    _after,
    _db,
    _free_port,
    _key,
    _open,
    _server,
    _shown,
    browser,  # noqa: F401 - the fixture
    needs_browser,
)

from widgetal import Queue

LABELS = ["billing", "urgent", "refund"]
SUBMIT = ".widgetal-submit"
HOSTILE = "<b>first</b> <script>window.__pwned = 1</script>"


@pytest.fixture
def multi_app(tmp_path):
    """A multi-label database of 20 texts and `widgetal serve` on a free loopback port."""
    url = f"sqlite:///{tmp_path / 'multi.db'}"
    q = Queue(url, labels=LABELS, multi_label=True)
    q.add([HOSTILE] + [f"mail number {i:02d}" for i in range(1, 20)])
    port = _free_port()
    exe = shutil.which("widgetal")
    cmd = [exe] if exe else [sys.executable, "-m", "widgetal.cli"]
    cmd += ["serve", "--port", str(port), "--ip", "127.0.0.1", "--db", url,
            "--models-dir", str(tmp_path / "models")]
    try:
        with _server(cmd, port, tmp_path / "voila.log", cwd=tmp_path):
            yield q, f"http://127.0.0.1:{port}/"
    finally:
        q.engine.dispose()


def _submit_reads(page, caption: str) -> None:
    """Wait until the Submit button names ``caption`` (the kernel has the toggles' state)."""
    page.wait_for_function(
        "([sel, want]) => { const e = document.querySelector(sel);"
        " return e && e.innerText.trim() === want }",
        arg=[SUBMIT, f"Submit: {caption} (Enter)"],
    )


def _press(page, key: str) -> None:
    _key(page, key)()  # with the pointer off the app: keys work wherever it is


@pytest.mark.browser
@pytest.mark.timeout(420)
@needs_browser
def test_toggle_labels_by_keys_and_clicks_submit_sets_with_enter_and_undo(
    multi_app, browser,  # noqa: F811 - the browser fixture's value
):
    q, base = multi_app
    page = _open(browser, base, "ana")
    first = _shown(page)
    assert first == HOSTILE and page.evaluate("window.__pwned") is None
    cue = page.wait_for_selector(".widgetal-keys.widgetal-keys-live")
    assert "1–3 toggle · Enter submit" in cue.inner_text()
    _submit_reads(page, "none of these")

    # Two labels by keys, then Enter.
    _press(page, "1")
    _submit_reads(page, "billing")
    _press(page, "3")
    _submit_reads(page, "billing + refund")
    assert page.locator(".widgetal-toggle-1").inner_text().startswith("✓")
    page.keyboard.press("Shift+Enter")  # Jupyter's run-cell: not a submit
    page.wait_for_timeout(1000)
    assert _shown(page) == first and _db(q) == []
    second = _after(page, _key(page, "Enter"))
    assert second != first
    assert _db(q) == [(first, '["billing","refund"]', "ana")]
    _submit_reads(page, "none of these")  # the next text starts with every label off

    # A click leaves the toggle focused: Enter submits, it does not click the toggle again.
    page.click(".widgetal-toggle-2")
    _submit_reads(page, "urgent")
    assert page.evaluate("document.activeElement.classList.contains('widgetal-toggle-2')")
    page.evaluate("() => { window.__clicks = 0; document.querySelector('.widgetal-toggle-2')"
                  ".addEventListener('click', () => { window.__clicks += 1; }); }")
    third = _after(page, lambda: page.keyboard.press("Enter"))
    assert page.evaluate("window.__clicks") == 0  # the focused toggle was not clicked

    # Nothing switched on: the button says so, and Enter sends the empty set.
    _submit_reads(page, "none of these")
    fourth = _after(page, _key(page, "Enter"))
    assert _db(q) == [(first, '["billing","refund"]', "ana"), (second, '["urgent"]', "ana"),
                      (third, "[]", "ana")]

    # Undo twice: the second text comes back with urgent switched on; change it and resubmit.
    assert _after(page, _key(page, "u")) == third
    assert _after(page, _key(page, "Backspace")) == second
    _submit_reads(page, "urgent")
    assert "with your answer, urgent" in page.inner_text(".widgetal-message")
    _press(page, "1")
    _submit_reads(page, "billing + urgent")
    assert _after(page, _key(page, "Enter")) == third
    assert _after(page, _key(page, "Enter")) == fourth  # the next text appeared
    assert _db(q) == [(first, '["billing","refund"]', "ana"),
                      (second, '["billing","urgent"]', "ana"), (third, "[]", "ana")]
    assert "none of these 1" in page.inner_text(".widgetal-panel")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "labeller-multilabel.png"))


@pytest.mark.browser
@pytest.mark.timeout(420)
@needs_browser
def test_enter_in_jupyterlab_stays_the_editors_and_submits_only_in_command_mode(
    tmp_path, browser,  # noqa: F811 - the browser fixture's value
):
    pytest.importorskip("jupyterlab")
    from widgetal.serve import LABEL_NOTEBOOK

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    q = Queue(url, labels=LABELS, multi_label=True)
    q.add(["lab one", "lab two", "lab three"])
    shutil.copy(LABEL_NOTEBOOK, tmp_path / "label.ipynb")
    port = _free_port()
    env = {**os.environ, "WIDGETAL_DB_URL": url, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt")}
    env.pop("QUERY_STRING", None)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    try:
        with _server(cmd, port, tmp_path / "lab.log", env=env, cwd=tmp_path):
            page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
            page.set_default_timeout(STEP_MS)
            page.goto(f"http://127.0.0.1:{port}/lab/tree/label.ipynb?reset", timeout=LOAD_MS)
            page.wait_for_function(
                "() => document.body.innerText.includes('(ipykernel) | Idle')", timeout=LOAD_MS
            )
            page.click(".jp-Notebook .jp-CodeCell .cm-content")
            page.keyboard.press("Control+Enter")  # run the cell
            page.wait_for_selector(".widgetal-name input", timeout=LOAD_MS)
            page.fill(".widgetal-name input", "jo")
            page.click(".widgetal-start")
            page.wait_for_function(
                "sel => { const e = document.querySelector(sel); return e && e.innerText.trim() }",
                arg=TEXT,
            )
            assert _shown(page) == "lab one"
            page.wait_for_selector(".widgetal-keys.widgetal-keys-live")
            _press(page, "2")
            _submit_reads(page, "urgent")
            assert _after(page, _key(page, "Enter")) == "lab two"  # command mode: the app's

            # Editing a cell: Enter is the editor's new line, and digits are its text.
            editor = page.locator(".jp-Notebook .jp-CodeCell .cm-content").first
            lines = editor.locator(".cm-line").count()
            editor.click()
            page.keyboard.press("End")
            page.keyboard.type(" # 1")
            page.keyboard.press("Enter")
            page.keyboard.type("# 3")
            page.wait_for_timeout(1500)  # time for a wrongly sent key to reach the kernel
            assert editor.locator(".cm-line").count() == lines + 1  # Enter made a new line
            assert " # 1" in editor.inner_text() and "# 3" in editor.inner_text()
            assert _shown(page) == "lab two" and len(_db(q)) == 1
            assert page.inner_text(SUBMIT).strip() == "Submit: none of these (Enter)"

            page.keyboard.press("Escape")  # command mode: the keys are the app's again
            _press(page, "1")
            _press(page, "3")
            _submit_reads(page, "billing + refund")
            assert _after(page, _key(page, "Enter")) == "lab three"
        assert _db(q) == [("lab one", '["urgent"]', "jo"),
                          ("lab two", '["billing","refund"]', "jo")]
    finally:
        q.engine.dispose()
