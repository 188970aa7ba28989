"""Serve the labelling notebook to several labellers with Voila.

Each page gets its own kernel (Voila's default), so labellers never share widget state; the
database is what they share. Kernels of closed or idle tabs are culled, sources are stripped
so labellers see the app and not the code, and the database URL reaches every kernel through
the environment. A pool of pre-started kernels (``pool``, Voila's ``preheat_kernel``) lets a
page take a kernel that has already imported widgetal and opened the database; the kernel then
waits for its page's request (query string, headers) before deciding who labels. Every kernel,
pooled or not, is started from widgetal's own ``python3`` kernelspec (:mod:`widgetal.kernel`):
ipykernel without the debugger, jedi's completion and the input history a page never uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from . import signals

LABEL_NOTEBOOK = Path(__file__).with_name("notebooks") / "label.ipynb"
POOL_FILL_DELAY_SECONDS = 20
SHARE = Path(__file__).with_name("share")  # widgetal's Voila template and Voila config file
TEMPLATE = "widgetal"  # SHARE/voila/templates/widgetal: the lab template, every asset local
MODELS_NOTEBOOK = Path(__file__).with_name("notebooks") / "models.ipynb"
#: The front-end extensions the labelling page needs: ipywidgets, Voila's widget manager and
#: anywidget (the key listener).
APP_EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "@voila-dashboards/widgets-manager8",
                  "anywidget")

# Pre-started kernels kept waiting for pages (--pool). Each idle one costs a kernel's memory
# (76 MB resident, 62 MB proportional, measured; see the README's Performance section): 20 (a
# class opening together) about 1.5 GB. Off by default: one person needs none, and a team lead
# sizes it to the burst of pages expected.
DEFAULT_POOL = 0


def voila_command(
    port: int = 8866,
    ip: str = "127.0.0.1",
    notebook: str | os.PathLike | None = None,
    cull_idle_seconds: int = 900,
    token: str | None = None,
    max_kernels: int = 0,
    header_envs: Sequence[str] = (),
    pool: int = DEFAULT_POOL,
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
    token : str, optional
        Require Voila's own token: the first visit must carry ``?token=TOKEN``.
    max_kernels : int
        Most kernels (open pages) at once, 0 for no cap; the page past the cap gets a clear
        "the app is full" page (:mod:`widgetal.kernel_cap`).
    header_envs : sequence of str
        Request headers Voila hands to each kernel's environment (header access mode).
    pool : int
        Kernels started ahead of pages (Voila's ``preheat_kernel`` with ``pool_size``); 0 starts
        each page's kernel when the page is asked for. A pooled kernel runs the notebook up to
        ``access.page_identity``, which waits for the page's query string and headers (Voila's
        ``wait_for_request``). Pooled kernels do not count toward ``max_kernels``.
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
        # nbclient's 4 s wait for a cell's output drops the app's widget when many pages start
        # at once on a busy server (the page then stays blank: "Timeout waiting for IOPub
        # output"); a page that is slow to appear is better than one that never does.
        "--VoilaExecutor.iopub_timeout=120",
        # Kernels talk to Voila over Unix sockets, not TCP ports picked at random: no port
        # clashes when many kernels start at once (the pool refilling failed with "Address
        # already in use"), and nothing listens on the network.
        "--KernelManager.transport=ipc",
        f"--template={TEMPLATE}",  # found through JUPYTER_PATH (kernel_environment)
        # Only the front-end extensions the app draws with: every other one installed in the
        # environment (ipycanvas, ipyevents, ...) would be fetched by every page for nothing.
        f"--VoilaConfiguration.extension_allowlist={list(APP_EXTENSIONS)!r}",
        *voila_config_paths(),
        *access_options(token, max_kernels, header_envs),
        *pool_options(pool),
    ]


def pool_options(pool: int = DEFAULT_POOL) -> list[str]:
    """Voila options for a pool of ``pool`` pre-started kernels (none for 0)."""
    if not pool or int(pool) <= 0:
        return []
    return ["--VoilaConfiguration.preheat_kernel=True",
            f"--VoilaConfiguration.default_pool_size={int(pool)}",
            # Refill the pool a while after pages take kernels, not at once: a burst of page
            # loads would otherwise start as many new kernels while those pages still render,
            # and on a small server the pages wait for the refill's CPU.
            f"--VoilaKernelManager.fill_delay={POOL_FILL_DELAY_SECONDS}"]


def access_options(
    token: str | None = None, max_kernels: int = 0, header_envs: Sequence[str] = ()
) -> list[str]:
    """Voila options for who may reach the app: its token, the kernel cap, the headers passed
    to kernels (the voila command's first words are added by the caller)."""
    options = []
    if token:
        options.append(f"--token={token}")
    if max_kernels and int(max_kernels) > 0:
        options += [
            "--VoilaConfiguration.multi_kernel_manager_class="
            "widgetal.kernel_cap.CappedKernelManager",
            f"--CappedKernelManager.max_kernels={int(max_kernels)}",
        ]
    if header_envs:
        options.append(f"--VoilaConfiguration.http_header_envs={list(header_envs)!r}")
    return options


def kernel_environment(
    db_url: str,
    models_dir: str | os.PathLike | None = None,
    show_guess: bool | None = None,
    show_meta: bool | None = None,
) -> dict[str, str]:
    """The environment for Voila and its kernels: the database URL and models folder, with
    relative SQLite paths made absolute (kernels run in the notebook's folder, not here), and
    the display switches when given (else ``WIDGETAL_SHOW_GUESS``/``_META`` pass through).

    ``HTTP_*`` variables are dropped: Voila adds the request's headers under those names, and
    one set here would pass for a header every page sent (header access mode)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HTTP_")}
    for name, on in (("WIDGETAL_SHOW_GUESS", show_guess), ("WIDGETAL_SHOW_META", show_meta)):
        if on is not None:
            env[name] = "1" if on else "0"
    env["WIDGETAL_DB_URL"] = absolute_sqlite_url(db_url)
    # Voila finds widgetal's template (SHARE/voila/templates) and kernelspec
    # (SHARE/kernels/python3: the lean kernel of widgetal.kernel, found before any other python3
    # spec) on the Jupyter data path, which its kernels inherit too.
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(SHARE), env.get("JUPYTER_PATH")) if p)
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
    token: str | None = None,
    max_kernels: int = 0,
    header_envs: Sequence[str] = (),
    show_guess: bool | None = None,
    show_meta: bool | None = None,
    pool: int = DEFAULT_POOL,
    **popen_kwargs,
) -> subprocess.Popen:
    """Start Voila in the background and return its process (the caller stops it)."""
    env = kernel_environment(db_url, models_dir, show_guess=show_guess, show_meta=show_meta)
    # A pooled kernel fetches its page's request from Voila at VOILA_APP_IP (Voila's default
    # 127.0.0.1, which a server bound to one other address does not answer).
    app_ip = "127.0.0.1" if ip in ("", "0.0.0.0", "::", "localhost") else ip
    env["VOILA_APP_IP"] = f"[{app_ip}]" if ":" in app_ip else app_ip  # an IPv6 address
    return subprocess.Popen(
        voila_command(port, ip, notebook, cull_idle_seconds, token=token,
                      max_kernels=max_kernels, header_envs=header_envs, pool=pool),
        env=env,
        **popen_kwargs,
    )


def serve(
    db_url: str,
    port: int = 8866,
    ip: str = "127.0.0.1",
    models_dir: str | os.PathLike | None = None,
    cull_idle_seconds: int = 900,
    **options,
) -> int:
    """Run Voila in the foreground until it exits or is stopped; returns its exit code.

    SIGTERM and SIGINT are passed on, so Voila shuts its kernels down cleanly. ``options``:
    ``token``, ``max_kernels``, ``header_envs``, ``show_guess``, ``show_meta``, ``pool`` of
    :func:`start`.
    """
    proc = start(db_url, port, ip, models_dir, cull_idle_seconds=cull_idle_seconds, **options)

    def _forward(signum, _frame):
        proc.send_signal(signum)

    with signals.on_stop(_forward):
        return proc.wait()


def voila_config_paths() -> list[str]:
    """Where Voila looks for its config (voila.py): its usual folders first (the current folder,
    then Jupyter's config path), then widgetal's own, which installs
    :mod:`widgetal.voila_page` (the XSRF cookie on the page, the pool with the kernel cap)."""
    from jupyter_core.paths import jupyter_config_path

    paths = [os.getcwd(), *jupyter_config_path(), str(SHARE / "config")]
    return [f"--Voila.config_file_paths={p}" for p in paths]


def set_xsrf_cookie(handler, notebook=None, cwd=None):
    """Give the page the XSRF cookie its shutdown call needs (a ``prelaunch_hook`` signature;
    the packaged config now sets the cookie from the page handler instead, see
    :mod:`widgetal.voila_page`, since Voila refuses a prelaunch hook with the kernel pool).

    On closing the tab, Voila 0.5's page posts ``/voila/api/shutdown/KERNEL`` with ``_xsrf``
    read from the ``_xsrf`` cookie, and jupyter_server refuses a POST without it (``403 ...
    '_xsrf' argument missing``). Voila's page handler never asks for the token, so tornado
    never sets the cookie and every closed tab's kernel lived until culled. Asking for the
    token sets the cookie on the page's response; XSRF checks stay on for every request.
    """
    from .voila_page import set_xsrf_cookie as set_cookie

    set_cookie(handler)
    return None  # the notebook unchanged


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
