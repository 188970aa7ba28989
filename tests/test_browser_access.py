"""End to end, who may label: `widgetal serve` in keys and header access, driven by headless
Chromium through playwright; a valid key or header labels under its name, anything else is
refused with nothing handed out; the kernel cap turns the page past it away with a clear page;
Voila's token is required when set."""

from __future__ import annotations

import shutil
import sys

import pytest
from test_browser import (
    LOAD_MS,
    STEP_MS,
    TEXT,
    _after,
    _click,
    _free_port,
    _kernel_id,
    _server,
    _wait_for_pool,
    browser,  # noqa: F401 - the fixture
    needs_browser,
)

from widgetal import Queue, access

REFUSED = ".widgetal-refused"
TEXTS = [f"text number {i:02d}" for i in range(20)]


def _widgetal() -> list[str]:
    exe = shutil.which("widgetal")
    return [exe] if exe else [sys.executable, "-m", "widgetal.cli"]


def _project(tmp_path, policy: access.AccessPolicy) -> tuple[Queue, str]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    q = Queue(url, labels=["negative", "positive"])
    q.add(TEXTS)
    access.configure(q, policy)
    return q, url


def _serve(url: str, tmp_path, *options: str):
    port = _free_port()
    cmd = [*_widgetal(), "serve", "--port", str(port), "--db", url,
           "--models-dir", str(tmp_path / "models"), *options]
    return _server(cmd, port, tmp_path / "voila.log", cwd=tmp_path), f"http://127.0.0.1:{port}/"


def _page(browser, headers: dict | None = None):  # noqa: F811 - the fixture's value
    context = browser.new_context(viewport={"width": 1000, "height": 700},
                                  extra_http_headers=headers or {})
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    return page


def _labelling(browser, url: str, headers: dict | None = None):  # noqa: F811
    page = _page(browser, headers)
    page.goto(url, timeout=LOAD_MS)
    page.wait_for_function(
        "sel => { const e = document.querySelector(sel); return e && e.innerText.trim() }",
        arg=TEXT, timeout=LOAD_MS,
    )
    return page


def _refused(browser, url: str, headers: dict | None = None) -> str:  # noqa: F811
    page = _page(browser, headers)
    page.goto(url, timeout=LOAD_MS)
    page.wait_for_selector(REFUSED, timeout=LOAD_MS)
    assert page.query_selector(TEXT) is None and page.query_selector(".widgetal-label-1") is None
    why = page.inner_text(REFUSED)
    page.context.close()
    return why


def _leases(q: Queue) -> set[str]:
    with q.engine.connect() as conn:
        return {r[0] for r in conn.exec_driver_sql(
            "SELECT leased_by FROM widgetal_items WHERE leased_by IS NOT NULL")}


def _labels(q: Queue) -> list[tuple[str, str]]:
    frame = q.labelled()
    return sorted(zip(frame["labeller"], frame["label"], strict=True))


@pytest.mark.browser
@pytest.mark.timeout(600)
@needs_browser
def test_keys_access_labels_under_the_keys_name_and_refuses_bad_keys(tmp_path, browser):  # noqa: F811
    q, url = _project(tmp_path, access.AccessPolicy("keys"))
    q.add_person("ana")
    q.add_person("bo")
    ana_key, bo_key = access.rotate_key(q, "ana"), access.rotate_key(q, "bo")
    q.set_person_active("bo", False)
    server, base = _serve(url, tmp_path)
    try:
        with server:
            page = _labelling(browser, access.key_link(base, ana_key) + "&labeller=mallory")
            assert "Labelling as ana" in page.inner_text(".widgetal-labeller")
            assert "mallory" not in page.content()
            _after(page, _click(page, ".widgetal-label-2"))
            assert _labels(q) == [("ana", "positive")]
            leases = _leases(q)
            assert leases == {"ana"}

            assert "personal link" in _refused(browser, f"{base}?labeller=mallory")
            assert "not valid" in _refused(browser, access.key_link(base, ana_key[:-2] + "xy"))
            assert "disabled" in _refused(browser, access.key_link(base, bo_key))
            assert _leases(q) == {"ana"} and _labels(q) == [("ana", "positive")]  # none popped
    finally:
        q.engine.dispose()


@pytest.mark.browser
@pytest.mark.timeout(600)
@needs_browser
def test_keys_access_identifies_by_key_in_a_pooled_kernel(tmp_path, browser):  # noqa: F811
    q, url = _project(tmp_path, access.AccessPolicy("keys"))
    q.add_person("ana")
    ana_key = access.rotate_key(q, "ana")
    server, base = _serve(url, tmp_path, "--pool", "2")
    log = tmp_path / "voila.log"
    try:
        with server:
            _wait_for_pool(log, 2)  # the kernel starts before the page (and its key) exists
            page = _labelling(browser, access.key_link(base, ana_key) + "&labeller=mallory")
            assert "Labelling as ana" in page.inner_text(".widgetal-labeller")
            assert f"Using pre-heated kernel: {_kernel_id(page)}" in log.read_text()
            _after(page, _click(page, ".widgetal-label-2"))
            assert _labels(q) == [("ana", "positive")]
            assert "personal link" in _refused(browser, f"{base}?labeller=mallory")
            assert _labels(q) == [("ana", "positive")] and _leases(q) == {"ana"}
    finally:
        q.engine.dispose()


@pytest.mark.browser
@pytest.mark.timeout(600)
@needs_browser
def test_header_access_labels_under_the_headers_name_and_refuses_others(tmp_path, browser):  # noqa: F811
    policy = access.check_policy("header", "X-Forwarded-User", ["dana", "eli"])
    q, url = _project(tmp_path, policy)
    server, base = _serve(url, tmp_path)
    try:
        with server:
            page = _labelling(browser, f"{base}?labeller=mallory", {"X-Forwarded-User": "dana"})
            assert "Labelling as dana" in page.inner_text(".widgetal-labeller")
            _after(page, _click(page, ".widgetal-label-1"))
            assert _labels(q) == [("dana", "negative")]

            assert "not signed in" in _refused(browser, f"{base}?labeller=dana")
            off = _refused(browser, base, {"X-Forwarded-User": "eve"})
            assert "eve" in off and "not on this project's list" in off
            assert _leases(q) == {"dana"} and _labels(q) == [("dana", "negative")]
    finally:
        q.engine.dispose()


@pytest.mark.browser
@pytest.mark.timeout(600)
@needs_browser
def test_token_is_required_and_the_kernel_cap_turns_the_next_page_away(tmp_path, browser):  # noqa: F811
    q, url = _project(tmp_path, access.AccessPolicy())
    server, base = _serve(url, tmp_path, "--token", "s3cret-token", "--max-kernels", "1")
    try:
        with server:
            no_token = _page(browser)
            response = no_token.goto(f"{base}?labeller=ana", timeout=LOAD_MS)
            assert no_token.query_selector(TEXT) is None
            assert response.status in (401, 403) or "/login" in no_token.url
            assert _leases(q) == set()

            _labelling(browser, f"{base}?labeller=ana&token=s3cret-token")
            full = _page(browser)
            response = full.goto(f"{base}?labeller=bo&token=s3cret-token", timeout=LOAD_MS)
            assert response.status == 503
            body = full.inner_text("body")
            assert "The labelling app is full" in body and "places" in body
            assert _leases(q) == {"ana"}
    finally:
        q.engine.dispose()
    log = (tmp_path / "voila.log").read_text()
    assert "Kernel cap of 1 reached" in log
