"""A labeller's (and a reviewer's) kernel stays lean: it imports neither pandas nor scikit-learn nor
torch nor numpy, because guesses come from the queue and tables are only built off the labelling
path.

Each check runs in a fresh interpreter, as a Voila kernel does; the database is prepared here, in
the test process, where pandas is welcome (adding texts reads a table). The last checks read a
kernel that real Voila started through ``widgetal serve``: it comes from widgetal's kernelspec,
with its memory settings.
"""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from widgetal import Queue

LABELS = ["negative", "positive"]
HEAVY = ("pandas", "sklearn", "torch", "numpy")  # numpy alone is 11 MB of a kernel
REPO = Path(__file__).resolve().parents[1]


def _run(code: str, url: str) -> dict:
    """Run ``code`` in a fresh interpreter (``url`` in scope); it must print one JSON line."""
    heavy = f"[m for m in {HEAVY!r} if m in sys.modules]"
    report = f"print(json.dumps({{'heavy': {heavy}, 'out': out}}))"
    script = "import json, sys\nurl = sys.argv[1]\n" + code + "\n" + report
    env = {k: v for k, v in os.environ.items()
           if k != "QUERY_STRING" and not k.startswith("WIDGETAL_")}
    done = subprocess.run(
        [sys.executable, "-c", script, url], cwd=REPO, capture_output=True, text=True,
        timeout=120, env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_labellers_kernel_labels_skips_and_undoes_without_pandas_sklearn_or_torch(tmp_path):
    url = f"sqlite:///{tmp_path / 'lean.db'}"
    q = Queue(url, labels=LABELS)
    q.add(["great film", "dull film", "fine film"])
    ids = [i.item_id for i in q.items([1, 2, 3])]
    q.reorder(ids, [0.9, 0.5, 0.1], ranked_by=1, guesses=(["positive"] * 3, [0.8, 0.6, 0.7]))
    q.engine.dispose()

    got = _run(
        "from widgetal import Labeller, Queue\n"  # the package itself, as the label notebook does
        "q = Queue(url)\n"
        "w = Labeller(q, labeller='ana', show_guess=True, show_meta=True)\n"
        "guess = w._guess.value\n"
        "w.submit('positive')\n"
        "w.skip()\n"
        "w.undo()\n"
        "back = w.item.text\n"
        "w.submit('negative')\n"
        "p = q.progress('ana')\n"
        "out = {'guess': guess, 'back': back, 'mine': p.mine, 'message': w.message}\n",
        url,
    )
    assert got["heavy"] == []
    assert "<b>positive</b> (80%)" in got["out"]["guess"]
    assert got["out"]["back"] == "dull film"  # the skip was undone: the text came back
    assert got["out"]["mine"] == 2


def test_a_reviewers_kernel_decides_without_pandas_sklearn_or_torch(tmp_path):
    url = f"sqlite:///{tmp_path / 'lean.db'}"
    q = Queue(url, labels=LABELS)
    q.configure(overlap=2)
    q.add_person("rita", reviewer=True)
    q.add(["a film"])
    for who, label in (("ana", "negative"), ("bo", "positive")):
        item = q.pop(who)
        q.submit(item.item_id, label, who)
    assert q.awaiting_review() == 1
    q.engine.dispose()

    got = _run(
        "from widgetal import Queue\n"
        "from widgetal.reviewing import Reviewer\n"
        "q = Queue(url)\n"
        "r = Reviewer(q, reviewer='rita')\n"
        "r.decide('positive')\n"
        "out = {'waiting': q.awaiting_review()}\n",
        url,
    )
    assert got["heavy"] == []
    assert got["out"]["waiting"] == 0
    assert Queue(url).labelled()["label"].tolist() == ["positive"]


def test_a_pooled_kernel_reads_its_page_request_without_loading_the_voila_server(tmp_path):
    """A pre-heated kernel waits for its page's request on Voila's query websocket; reading it
    must not import the Voila server (about 45 MB per pooled kernel). Voila's side of the
    exchange is played by a websockets server sending what Voila sends; the browser test of
    the pool checks the same code against real Voila."""
    from websockets.sync.server import serve

    url = f"sqlite:///{tmp_path / 'lean.db'}"
    Queue(url, labels=LABELS).engine.dispose()
    asked = []

    def voila(socket):
        asked.append(socket.request.path)
        socket.send(json.dumps({"QUERY_STRING": "labeller=ana", "SERVER_NAME": "example"}))

    with serve(voila, "127.0.0.1", 0) as server:
        port = server.socket.getsockname()[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        preheat = {"VOILA_PREHEAT": "True", "VOILA_APP_PORT": str(port),
                   "VOILA_KERNEL_ID": "k-123", "VOILA_SERVER_URL": "/base/"}
        got = _run(
            "import os\n"
            f"os.environ.update({preheat!r})\n"
            "from widgetal import Queue, access\n"
            "who = access.page_identity(Queue(url))\n"
            "server = [m for m in ('voila', 'voila.utils', 'jupyter_server', 'jupyterlab_server')"
            " if m in sys.modules]\n"
            "out = {'name': who.name, 'server': server, 'query': os.environ['QUERY_STRING']}\n",
            url,
        )
        server.shutdown()
    assert asked == ["/base/voila/query/k-123"]
    assert got["out"] == {"name": "ana", "server": [], "query": "labeller=ana"}
    assert got["heavy"] == []


# A notebook that reports, as its output, what its kernel sees of the lean kernel's settings.
KERNEL_REPORT = """import json, os, sys
from ipykernel.kernelapp import IPKernelApp
seen = {
    "argv0": os.path.basename(sys.argv[0]),
    "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"),
    "history": get_ipython().history_manager.enabled,
    "capture_fd_output": IPKernelApp.instance().capture_fd_output,
    "loaded": [m for m in ("debugpy", "jedi", "parso") if sys.modules.get(m) is not None],
    "pooled": os.environ.get("VOILA_PREHEAT") == "True",
}
print("KERNEL" + json.dumps(seen) + "KERNEL")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _served_kernel(tmp_path: Path, pool: int) -> dict:
    """Serve the report notebook with ``widgetal serve``'s Voila command line, from a folder of
    its own (no project there), and read what the page's kernel reported."""
    from widgetal import serve

    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "report",
                     "metadata": {}, "outputs": [], "source": KERNEL_REPORT}],
          "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)",
                                      "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    notebook = tmp_path / "report.ipynb"
    notebook.write_text(json.dumps(nb))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log_path = tmp_path / "voila.log"
    port = _free_port()
    with open(log_path, "wb") as log:
        proc = serve.start(f"sqlite:///{tmp_path / 'k.db'}", port=port, notebook=notebook,
                           pool=pool, cwd=elsewhere, stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            filled = f"is filled with {pool} kernel(s)"
            while time.monotonic() < deadline and proc.poll() is None:
                with socket.socket() as s:
                    up = s.connect_ex(("127.0.0.1", port)) == 0
                if up and (not pool or filled in log_path.read_text(errors="replace")):
                    break
                time.sleep(0.3)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as page:
                body = html.unescape(page.read().decode())
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    found = re.search(r"KERNEL(\{.*?\})KERNEL", body)
    assert found, log_path.read_text(errors="replace")[-2000:]
    return json.loads(found.group(1))


@pytest.mark.slow
@pytest.mark.parametrize("pool", [0, 1])
def test_served_kernels_come_from_widgetals_kernelspec_with_its_memory_settings(tmp_path, pool):
    """A page's kernel, pooled or not, runs widgetal.kernel: no debugger (debugpy) and no jedi
    loaded, IPython's history and the capture of C-level output off, two malloc arenas."""
    pytest.importorskip("voila")
    seen = _served_kernel(tmp_path, pool)
    assert seen == {"argv0": "kernel.py", "malloc_arena_max": "2", "history": False,
                    "capture_fd_output": False, "loaded": [], "pooled": bool(pool)}
