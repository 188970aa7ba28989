"""Two small changes to Voila 0.5's page handler, installed by widgetal's packaged Voila config
(``share/config/voila.py``, loaded by ``widgetal serve``) into the Voila process only.

1. **The page's response sets the ``_xsrf`` cookie** (upstream bug voila#1458). On closing the
   tab, Voila's page posts ``/voila/api/shutdown/KERNEL`` with ``_xsrf`` read from the
   ``_xsrf`` cookie, and jupyter_server refuses a POST without it (``403 ... '_xsrf' argument
   missing from POST``). Voila's page handler never asks tornado for the token, so tornado never
   sets the cookie, and every closed tab's kernel lived until culled. widgetal used to ask for
   it in a ``prelaunch_hook``, but Voila refuses ``prelaunch_hook`` together with
   ``preheat_kernel`` (the kernel pool: a pooled page is rendered before its request exists).
   So the handler's ``prepare`` asks for the token instead, on every page request, pooled or
   not. XSRF checks stay on for every request: this only hands the browser its token.

2. **A page takes a pooled kernel only when one is ready, and only if the kernel cap leaves
   room for a page.** Voila pops the pool's next entry even while it is still starting, and a
   page taking a pooled kernel bypasses the kernel manager's ``start_kernel``, where
   ``--max-kernels`` is checked. Here a page takes a pooled kernel only once it is ready (else
   it starts its own, as without the pool: no waiting behind a slow start) and only while
   :meth:`widgetal.kernel_cap.CappedKernelManager.room_for_a_page` says yes (else it starts
   its own, which the cap turns away with the "app is full" page); the manager is told the
   kernel now holds a page.
"""

from __future__ import annotations

import inspect

_INSTALLED = "_widgetal_patched"


def set_xsrf_cookie(handler) -> None:
    """Ask tornado for the XSRF token: the property sets the ``_xsrf`` cookie on the response
    when the request has none (and leaves a valid one alone)."""
    handler.xsrf_token  # noqa: B018 - read for its side effect


def pool_kernel_ready(kernel_manager, notebook_path: str) -> bool:
    """Whether the pool's next kernel for ``notebook_path`` has started and rendered up to the
    page's identity (so a page taking it need not wait). Voila's pool is a list of tasks."""
    pools = getattr(kernel_manager, "_pools", None)
    if not isinstance(pools, dict):  # a Voila without the pool we know: let Voila decide
        return True
    pool = pools.get(notebook_path) or []
    if not pool:
        return False
    first = pool[0]
    done = getattr(first, "done", None)
    if done is None:
        return True
    return done() and not first.cancelled() and first.exception() is None


def install() -> None:
    """Patch :class:`voila.handler.VoilaHandler` (idempotent)."""
    from voila.handler import VoilaHandler

    if getattr(VoilaHandler, _INSTALLED, False):
        return
    prepare = VoilaHandler.prepare

    async def prepare_with_xsrf_cookie(self, *args, **kwargs):
        result = prepare(self, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        set_xsrf_cookie(self)
        return result

    should_use = VoilaHandler.should_use_rendered_notebook

    def should_use_ready_pool_kernel(self, notebook_data, pool_size, *args, **kwargs):
        if not should_use(self, notebook_data, pool_size, *args, **kwargs):
            return False
        km = self.kernel_manager
        if not pool_kernel_ready(km, self.notebook_path):
            return False
        room = getattr(km, "room_for_a_page", None)
        if room is not None and not room():
            return False
        take = getattr(km, "take_pooled", None)
        if take is not None:  # Voila pops exactly this entry next, with no await in between
            take(km._pools[self.notebook_path][0].result()["kernel_id"])
        return True

    VoilaHandler.prepare = prepare_with_xsrf_cookie
    VoilaHandler.should_use_rendered_notebook = should_use_ready_pool_kernel
    setattr(VoilaHandler, _INSTALLED, True)


__all__ = ["install", "set_xsrf_cookie", "pool_kernel_ready"]
