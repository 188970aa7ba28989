"""CI only (run by smoke.sh): label one text through Chromium in the containerised labelling app.

    python .ci/docker/browser_check.py http://127.0.0.1:8866/ LABELLER

Opens ``?labeller=LABELLER`` in headless Debian Chromium (never a downloaded browser), waits for
the text, clicks the first label button and waits for the next text. Prints ``LABEL<TAB>TEXT`` of
what it labelled, for smoke.sh to find in the database. Exits non-zero on any failure, printing
what the page showed.
"""

from __future__ import annotations

import re
import sys

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TEXT = ".widgetal-text"
BUTTON = ".widgetal-label-1"
LOAD_MS = 180_000  # the first page starts a kernel in the container and runs the notebook
STEP_MS = 30_000


def main(base: str, labeller: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS,
                                    timeout=60_000)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        try:
            page.goto(f"{base}?labeller={labeller}", timeout=LOAD_MS)
            page.wait_for_function(
                "sel => { const e = document.querySelector(sel); return e && e.innerText.trim() }",
                arg=TEXT, timeout=LOAD_MS,
            )
            text = page.inner_text(TEXT).strip()
            label = re.sub(r"\s*\(\d+\)$", "", page.inner_text(BUTTON).strip())  # "negative (1)"
            page.click(BUTTON, timeout=STEP_MS)
            page.wait_for_function(
                "([sel, before]) => { const e = document.querySelector(sel);"
                " return e && e.innerText.trim() !== before }",
                arg=[TEXT, text], timeout=STEP_MS,
            )
        except Exception:
            print(page.inner_text("body")[:2000], file=sys.stderr)
            raise
        finally:
            browser.close()
    print(f"{label}\t{text}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
