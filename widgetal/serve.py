"""Serve the labelling notebook to several labellers with Voila.

Each page gets its own kernel (Voila's default), so labellers never share widget state; the
database is what they share. Kernels of closed or idle tabs are culled, sources are stripped
so labellers see the app and not the code, and the database URL reaches every kernel through
the environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

LABEL_NOTEBOOK = Path(__file__).with_name("notebooks") / "label.ipynb"
MODELS_NOTEBOOK = Path(__file__).with_name("notebooks") / "models.ipynb"


def voila_command(
    port: int = 8866,
    ip: str = "127.0.0.1",
    notebook: str | os.PathLike | None = None,
    cull_idle_seconds: int = 900,
) -> list[str]:
    """The Voila command line for the labelling app.

    Parameters
    ----------
    port, ip : int, str
        Where to listen. ``0.0.0.0`` serves the whole network: put it behind a proxy with
        authentication, since anyone who reaches it can label.
    notebook : path, optional
        The notebook to serve; default the packaged ``label.ipynb``.
    cull_idle_seconds : int
        A kernel whose page was closed is shut down after this long without activity; open
        pages keep their kernel however long the labeller pauses.
    """
    notebook = Path(notebook or LABEL_NOTEBOOK)
    return [
        sys.executable, "-m", "voila", str(notebook),
        "--no-browser",
        f"--port={int(port)}",
        f"--Voila.ip={ip}",
        "--strip_sources=True",  # labellers see the app, never the code
        "--show_tracebacks=False",
        f"--MappingKernelManager.cull_idle_timeout={int(cull_idle_seconds)}",
        "--MappingKernelManager.cull_interval=60",
        "--MappingKernelManager.cull_connected=False",  # an open tab keeps its kernel
        "--MappingKernelManager.cull_busy=False",
    ]


def kernel_environment(db_url: str, models_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """The environment for Voila and its kernels: the database URL and models folder, with
    relative SQLite paths made absolute (kernels run in the notebook's folder, not here)."""
    env = dict(os.environ)
    env["WIDGETAL_DB_URL"] = absolute_sqlite_url(db_url)
    if models_dir is not None:
        env["WIDGETAL_MODELS_DIR"] = str(Path(models_dir).resolve())
    return env


def start(
    db_url: str,
    port: int = 8866,
    ip: str = "127.0.0.1",
    models_dir: str | os.PathLike | None = None,
    notebook: str | os.PathLike | None = None,
    cull_idle_seconds: int = 900,
    **popen_kwargs,
) -> subprocess.Popen:
    """Start Voila in the background and return its process (the caller stops it)."""
    return subprocess.Popen(
        voila_command(port, ip, notebook, cull_idle_seconds),
        env=kernel_environment(db_url, models_dir),
        **popen_kwargs,
    )


def serve(
    db_url: str,
    port: int = 8866,
    ip: str = "127.0.0.1",
    models_dir: str | os.PathLike | None = None,
    cull_idle_seconds: int = 900,
) -> int:
    """Run Voila in the foreground until it exits or is stopped; returns its exit code.

    SIGTERM and SIGINT are passed on, so Voila shuts its kernels down cleanly.
    """
    proc = start(db_url, port, ip, models_dir, cull_idle_seconds=cull_idle_seconds)

    def _forward(signum, _frame):
        proc.send_signal(signum)

    previous = {s: signal.signal(s, _forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def absolute_sqlite_url(url: str) -> str:
    """``sqlite:///rel.db`` → ``sqlite:////abs/rel.db``; other URLs unchanged."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    path, sep, query = url[len(prefix):].partition("?")
    if not path or path == ":memory:" or os.path.isabs(path):
        return url
    return prefix + str(Path(path).resolve()) + sep + query


__all__ = ["serve", "start", "voila_command", "kernel_environment", "LABEL_NOTEBOOK"]
