"""A kernel manager for Voila that refuses to start more than ``max_kernels`` kernels at once.

Every page load starts a kernel of about 150 MB; without a cap a flood of page loads (or one
script reloading a page) exhausts the server's memory. ``widgetal serve --max-kernels N`` runs
Voila with ``--VoilaConfiguration.multi_kernel_manager_class`` set to :class:`CappedKernelManager`;
the page past the cap gets HTTP 503 and Voila's error page with a plain explanation, and the
kernels already running are untouched. Kernels that are still starting count, so a burst of
simultaneous loads cannot slip past the cap.
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


class CappedKernelManager(AsyncMappingKernelManager):
    """``AsyncMappingKernelManager`` (Voila's default) with a cap on live kernels."""

    max_kernels = Int(
        0, config=True, help="Most kernels alive at once; 0 means no cap."
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._starting: set[str] = set()  # ids of kernels asked for but maybe not listed yet

    async def start_kernel(self, *args, kernel_id: str | None = None, **kwargs):
        if kernel_id is not None and kernel_id in self:  # an existing kernel: nothing new
            return await super().start_kernel(*args, kernel_id=kernel_id, **kwargs)
        alive = set(self.list_kernel_ids()) | self._starting
        if self.max_kernels > 0 and len(alive) >= self.max_kernels:
            self.log.warning("Kernel cap of %d reached: a page was turned away.",
                             self.max_kernels)
            raise HTTPError(503, "kernel cap of %d reached", self.max_kernels,
                            reason=FULL_REASON.format(n=self.max_kernels))
        kernel_id = kernel_id or str(uuid.uuid4())
        self._starting.add(kernel_id)
        try:
            return await super().start_kernel(*args, kernel_id=kernel_id, **kwargs)
        finally:
            self._starting.discard(kernel_id)


__all__ = ["CappedKernelManager"]
