"""End to end, a multi-label project: `widgetal serve` (Voila) on loopback, driven by headless
Chromium through playwright. Labels are switched on by digit keys and by clicks, Enter submits
the set (also right after a click, with the toggle still focused), nothing switched on submits
"none of these", and Undo brings a text back with its set switched on. The database must hold
exactly the sets the page showed."""

from __future__ import annotations

import shutil
import sys

import pytest
from test_browser import (
    ARTIFACTS,
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
