"""widgetal: notebook-native active-learning labelling."""

from .errors import WidgetalError
from .queue import Item, Progress, Queue

__all__ = ["Queue", "Item", "Progress", "Labeller", "Orchestrator", "WidgetalError"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that the orchestrator never imports ipywidgets and the widget never sklearn.
    if name == "Labeller":
        from .widget import Labeller

        return Labeller
    if name == "Orchestrator":
        from .orchestrator import Orchestrator

        return Orchestrator
    raise AttributeError(f"module 'widgetal' has no attribute {name!r}")
