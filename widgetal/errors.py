"""Every error widgetal raises on purpose, each with a message that says what to do."""


class WidgetalError(Exception):
    """Base class: catch this to handle any error widgetal raises deliberately."""


class DatabaseUnavailable(WidgetalError):
    """The database could not be reached (wrong URL, server down, network gone)."""


class SchemaVersionMismatch(WidgetalError):
    """The database was made by another version of widgetal's schema."""


class NotInitialised(WidgetalError):
    """The database has no label set yet (`widgetal init` has not run)."""


class LabelSetMismatch(WidgetalError):
    """The label set given differs from the one stored in the database."""


class LabelNotInLabelSet(WidgetalError):
    """A label that is not one of the project's labels."""


class ItemAlreadyLabelled(WidgetalError):
    """Someone labelled the item first; the later label is refused, not dropped silently."""


class UnknownItem(WidgetalError):
    """No item with that id."""


class NothingToUndo(WidgetalError):
    """The labeller has no label left to undo."""


class InvalidInput(WidgetalError):
    """A file or DataFrame that cannot be imported as it is; nothing was imported."""


class NotEnoughLabels(WidgetalError):
    """Too few labels, or a single class, to train and cross-validate."""


class EmptyPool(WidgetalError):
    """Nothing left to score: every item is labelled, or the pool given was empty."""


class ImportConflict(InvalidInput):
    """An import that would overwrite stored labels or texts; nothing was imported."""


class NotAReviewer(WidgetalError):
    """Someone who is not a registered reviewer tried to decide a disagreement."""


class NotAwaitingReview(WidgetalError):
    """A review of an item whose labels do not (or no longer) disagree."""


def first_line(exc: BaseException) -> str:
    """An error's first line for a message or a log: a driver's own error when SQLAlchemy wraps
    one (its text would add the statement and parameters), else the exception's."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
