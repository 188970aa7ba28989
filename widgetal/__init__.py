"""widgetal: notebook-native active-learning labelling."""

from .errors import WidgetalError
from .queue import Item, Progress, Queue

__all__ = ["Queue", "Item", "Progress", "WidgetalError"]
__version__ = "0.1.0"
