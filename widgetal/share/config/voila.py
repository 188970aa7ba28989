"""Voila settings for `widgetal serve`, loaded through --Voila.config_file_paths (see serve.py).

A voila.py in the folder serve runs from, or in a Jupyter config folder, takes precedence.
"""

from widgetal.serve import set_xsrf_cookie

# The page sets the XSRF cookie that Voila's shutdown-on-close call sends back (see serve.py).
c.VoilaConfiguration.prelaunch_hook = set_xsrf_cookie  # noqa: F821 - `c` is the loader's config
