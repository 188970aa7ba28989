"""A kernel manager for Voila that refuses to start more than ``max_kernels`` kernels at once.

Every page load starts a kernel of about 80 MB; without a cap a flood of page loads (or one
script reloading a page) exhausts the server's memory. ``widgetal serve --max-kernels N`` runs
Voila with ``--VoilaConfiguration.multi_kernel_manager_class`` set to :class:`CappedKernelManager`;
the page past the cap gets HTTP 503 and Voila's error page with a plain explanation, and the
kernels already running are untouched. Kernels that are still starting count, so a burst of
simultaneous loads cannot slip past the cap.

With the kernel pool (``widgetal serve --pool P``, Voila's ``preheat_kernel``) the cap counts
pages, not pooled kernels: ``--max-kernels N --pool P`` lets N pages be open at once and keeps
at most N + P kernels alive (P of them idle, waiting for the next pages). A pooled kernel counts
once a page takes it; past the cap a page takes none (:mod:`widgetal.voila_page` asks
:meth:`CappedKernelManager.room_for_a_page`) and gets the "app is full" page as before.
"""

from __future__ import annotations

import uuid

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import Int

# Voila's error page shows the status line's reason phrase, so the whole explanation is there
FULL_REASON = (
    "The labelling app is full: all {n} places are taken right now (each open page holds one). "
    "Close a page you no longer use, or try again in a few minutes"
)


def _pool_fill(kwargs) -> bool:
    """Whether Voila starts this kernel for its pool (it marks those kernels' environment)."""
    return (kwargs.get("env") or {}).get("VOILA_PREHEAT") == "True"


class CappedKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` (Voila's default) with a cap on live kernels."""

    max_kernels = Int(
        0, config=True, help="Most kernels alive at once; 0 means no cap."
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._starting: set[str] = set()  # ids of kernels asked for but maybe not listed yet
        self._pooled: set[str] = set()  # ids of Voila's pooled kernels no page has taken yet

    def pages(self) -> int:
        """Kernels that hold (or are starting for) a page: every kernel but the pooled ones."""
        return len((set(self.list_kernel_ids()) | self._starting) - self._pooled)

    def room_for_a_page(self) -> bool:
        return self.max_kernels <= 0 or self.pages() < self.max_kernels

    def take_pooled(self, kernel_id: str) -> None:
        """A page takes this pooled kernel: from now on it counts."""
        self._pooled.discard(kernel_id)

    async def start_kernel(self, *args, kernel_id: str | None = None, **kwargs):
        if kernel_id is not None and kernel_id in self:  # an existing kernel: nothing new
            return await super().start_kernel(*args, kernel_id=kernel_id, **kwargs)
        kernel_id = kernel_id or str(uuid.uuid4())
        if _pool_fill(kwargs):  # Voila's pool, at most pool_size: not a page yet
            self._pooled.add(kernel_id)
        elif not self.room_for_a_page():
            self.log.warning("Kernel cap of %d reached: a page was turned away.",
                             self.max_kernels)
            raise HTTPError(503, "kernel cap of %d reached", self.max_kernels,
                            reason=FULL_REASON.format(n=self.max_kernels))
        self._starting.add(kernel_id)
        try:
            return await super().start_kernel(*args, kernel_id=kernel_id, **kwargs)
        finally:
            self._starting.discard(kernel_id)

    async def shutdown_kernel(self, kernel_id: str, *args, **kwargs):
        try:
            return await super().shutdown_kernel(kernel_id, *args, **kwargs)
        finally:
            self._pooled.discard(kernel_id)


__all__ = ["CappedKernelManager"]
