"""Stopping on SIGTERM and SIGINT: the one place that installs a handler for both and puts the
previous handlers back, for the orchestrator, ``serve`` and ``quickstart``."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: What ``docker stop`` (SIGTERM) and Ctrl+C (SIGINT) send.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def on_stop(handler: Callable[[int, Any], Any]) -> Iterator[bool]:
    """``handler`` answers SIGTERM and SIGINT inside the block; yields whether it was installed.

    Python delivers signals to the main thread only, so elsewhere (a notebook's background
    thread, a test's worker) nothing is installed and the caller owns stopping.
    """
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield True
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
