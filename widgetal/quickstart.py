"""One command from a fresh clone to a labelling app: a project on SQLite with the sample texts,
the orchestrator retraining in the background, and the Voila app in front."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from . import io, projectfile, serve, signals
from .errors import InvalidInput
from .project import DEFAULT_AUDIT_SHARE
from .queue import Queue

SAMPLE = Path(__file__).with_name("data") / "sample.csv"


def seed_project(
    db_url: str, sample: str | Path = SAMPLE, seed_per_label: int = 10,
    labels: list[str] | None = None,
) -> tuple[Queue, int]:
    """Create (or reopen) the project and import the sample.

    A sample with a ``label`` column: only ``seed_per_label`` of each label come in labelled,
    so that the first model can train at once; the rest wait for a labeller; the label set is
    ``labels`` (which must hold every label in the file) or the file's labels, sorted. A sample
    without one needs ``labels``: nothing is invented. Importing again adds nothing twice.
    Returns the queue and the number of texts added.
    """
    frame = io.read_table(sample)
    if "label" in frame.columns:
        found = sorted(v for v in frame["label"].unique() if v)
        missing = [v for v in found if labels and v not in labels]
        if missing:
            raise InvalidInput(
                f"{sample}'s label column holds {missing}, which --labels {labels} lacks; "
                "nothing was imported."
            )
        labels = labels or found
        seeds = frame.groupby("label").head(seed_per_label).index
        frame = frame.assign(label=frame["label"].where(frame.index.isin(seeds), ""))
    elif not labels:
        raise InvalidInput(
            f"{sample} has no label column, so widgetal cannot tell your label set: pass it, "
            "e.g. `widgetal quickstart --sample FILE --labels negative,positive`. Nothing was "
            "imported."
        )
    q = Queue(db_url, labels=labels)
    if q.setting("audit_share") is None and not q.count_label_events():
        q.configure(audit_share=DEFAULT_AUDIT_SHARE)  # a new project, as `widgetal init` makes
    has_label = "label" in frame.columns
    result = q.add(
        frame,
        text="text",
        id="id" if "id" in frame.columns else None,
        label="label" if has_label else None,
        labeller="sample-seed",
    )
    return q, result.added


def quickstart(
    db_url: str,
    models_dir: str | Path = "models",
    port: int = 8866,
    ip: str = "127.0.0.1",
    sample: str | Path = SAMPLE,
    interval_seconds: float = 15,
    min_new_labels: int = 5,
    ready: threading.Event | None = None,
    labels: list[str] | None = None,
    show_guess: bool | None = None,
    show_meta: bool | None = None,
) -> int:
    """Seed the project, start the orchestrator and the labelling app, run until stopped.

    SIGINT (Ctrl+C) or SIGTERM stops both children cleanly; returns the worst exit code.
    """
    url = serve.absolute_sqlite_url(db_url)
    q, added = seed_project(url, sample, labels=labels)
    projectfile.write(db_url, models_dir)  # notebooks and commands in subfolders find it
    progress = q.progress()
    print(
        f"Project {url}: {progress.total} texts ({added} new), {progress.done} labelled, "
        f"labels {q.labels}.",
        flush=True,
    )
    orchestrator = subprocess.Popen(
        [
            sys.executable, "-m", "widgetal.cli", "orchestrate",
            "--db", url,
            "--models-dir", str(Path(models_dir).resolve()),
            "--interval-seconds", str(interval_seconds),
            "--min-new-labels", str(min_new_labels),
        ]
    )
    app = serve.start(url, port=port, ip=ip, models_dir=models_dir, show_guess=show_guess,
                      show_meta=show_meta)
    print(f"Label at http://{ip}:{port}/?labeller=YOUR_NAME  (Ctrl+C stops everything)", flush=True)
    stop = threading.Event()

    def _stop(_signum, _frame):
        stop.set()

    with signals.on_stop(_stop):
        try:
            while not stop.wait(0.5):
                if orchestrator.poll() is not None or app.poll() is not None:
                    break
        finally:
            for child in (app, orchestrator):
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            codes = [_wait(child) for child in (app, orchestrator)]
    return 0 if stop.is_set() and all(c in (0, -15, 143) for c in codes) else max(map(abs, codes))


def _wait(child: subprocess.Popen, timeout: float = 30) -> int:
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()
