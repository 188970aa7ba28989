"""The labelling page's kernel: ipykernel, without two optional imports a Voila page never uses.

``widgetal serve`` starts every page's kernel (pooled or not) from widgetal's kernelspec,
``share/kernels/python3/kernel.json``, which Voila finds before any other ``python3`` spec
because :func:`widgetal.serve.kernel_environment` puts ``share`` first on ``JUPYTER_PATH``. The
spec runs ``python -m widgetal.kernel``, which is ipykernel's own launcher but for:

- **debugpy** (ipykernel's debugger, about 7 MB of a kernel's 88 MB resident): a Voila page
  has no debugger, and ipykernel runs without one when debugpy cannot be imported.
- **jedi** (IPython's code completion, about 6 MB with parso): a Voila page never asks for
  completions, and IPython completes without jedi when jedi cannot be imported.

Both are blocked the way the import system documents: a ``None`` in ``sys.modules`` makes
``import`` raise ``ImportError``, and both libraries treat that as "not installed". No library
code is changed. The spec's other settings (IPython's history off, no capture of C-level output,
two malloc arenas) are plain ipykernel options and environment; see the kernel.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: Modules a labelling page's kernel never uses; optional to ipykernel and IPython.
NOT_LOADED = ("debugpy", "jedi")


def main() -> None:
    """Start an ipykernel as ``python -m ipykernel_launcher`` does, without ``NOT_LOADED``."""
    # As ipykernel_launcher: the working folder leaves sys.path while the kernel loads
    # (IPython adds it back for the notebook's code).
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]
    for name in NOT_LOADED:
        sys.modules.setdefault(name, None)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
