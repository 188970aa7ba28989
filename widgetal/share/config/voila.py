"""Voila settings for `widgetal serve`, loaded through --Voila.config_file_paths (see serve.py).

A voila.py in the folder serve runs from, or in a Jupyter config folder, takes precedence.
"""

from widgetal import voila_page

# The page's response sets the XSRF cookie that Voila's shutdown-on-close call sends back
# (upstream bug voila#1458), with or without the kernel pool, and a page takes a pooled kernel
# only when it is ready and the kernel cap has room (see widgetal/voila_page.py). This replaces
# the former prelaunch_hook, which Voila refuses together with preheat_kernel (`--pool`).
voila_page.install()
