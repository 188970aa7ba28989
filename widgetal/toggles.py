"""Answers in multi-label projects: one toggle per label and one button that sends the set.

The labelling and the review app take a set of labels this way: labels are switched on and off
(by click, or by their digit key), and the send button (Enter) sends the labels that are on.
With none on it sends the empty set, "none of these", and its caption says so, so an empty
answer is never given by accident. Sets are shown as people read them ("billing + urgent");
the queue stores them as :mod:`widgetal.labelsets` strings.

Light on purpose, like the apps: ipywidgets and the standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import ipywidgets as widgets

from . import labelsets
from .errors import WidgetalError

NONE_OF_THESE = "none of these"
_ON = "✓ "  # marks a label that is switched on, in its caption
_REMEMBERED = 50  # sets kept for undo


def readable(labels: Iterable[str]) -> str:
    """A set of labels as a person reads it.

    >>> readable(["billing", "urgent"]), readable([])
    ('billing + urgent', 'none of these')
    """
    labels = list(labels)
    return " + ".join(labels) if labels else NONE_OF_THESE


def readable_stored(value: str) -> str:
    """A stored answer (a :mod:`widgetal.labelsets` string) as a person reads it; anything
    that is not a stored set (a single label) is shown as it is.

    >>> readable_stored('["billing","urgent"]'), readable_stored("[]"), readable_stored("spam")
    ('billing + urgent', 'none of these', 'spam')
    """
    try:
        return readable(labelsets.decode(value))
    except (ValueError, TypeError, WidgetalError):  # JSONDecodeError is a ValueError
        return str(value)


class LabelToggles:
    """One toggle button per label and a send button whose caption names the set it sends.

    Parameters
    ----------
    labels : sequence of str
        The project's labels, in order; the first ``max_keyed`` get a digit key in their caption.
    verb : str
        What the send button does ("Submit", "Decide"); also its CSS class
        (``widgetal-submit``), as each toggle has ``widgetal-toggle-N``.
    on_send : callable
        Called without arguments when the send button is clicked.
    max_keyed : int
        How many labels have a digit key.

    Examples
    --------
    >>> t = LabelToggles(["billing", "urgent", "refund"], "Submit", lambda: None, 9)
    >>> t.send.description
    'Submit: none of these (Enter)'
    >>> t.toggle("refund"); t.toggle("billing"); t.chosen
    ['billing', 'refund']
    >>> t.send.description
    'Submit: billing + refund (Enter)'
    """

    def __init__(self, labels: Sequence[str], verb: str, on_send: Callable[[], None],
                 max_keyed: int):
        self.labels = list(labels)
        self._verb = verb
        self._sent: dict[int, list[str]] = {}  # item id -> the set sent for it, latest last
        self.toggles = [self._toggle_button(i, label, max_keyed)
                        for i, label in enumerate(self.labels)]
        self.send = widgets.Button(button_style="primary",
                                   layout=widgets.Layout(width="auto", min_width="10em"))
        self.send.add_class(f"widgetal-{verb.lower()}")
        self.send.on_click(lambda _b: on_send())
        self._redraw()

    @property
    def chosen(self) -> list[str]:
        """The labels switched on, in project order."""
        return [label for label, t in zip(self.labels, self.toggles, strict=True) if t.value]

    @property
    def buttons(self) -> list[widgets.Widget]:
        """The toggles, then the send button."""
        return [*self.toggles, self.send]

    def answer(self, labels: Iterable[str] | None = None) -> list[str]:
        """The set to send: ``labels`` checked and in project order, or (None) the labels
        switched on.

        Raises
        ------
        LabelNotInLabelSet, InvalidInput
            For a label not in the project's set, or a plain string instead of a list.
        """
        if labels is None:
            return self.chosen
        return labelsets.decode(labelsets.encode(labels, self.labels))

    def toggle(self, label: str) -> None:
        """Switch ``label`` on if it is off, off if it is on."""
        t = self.toggles[self.labels.index(label)]
        t.value = not t.value

    def set(self, labels: Iterable[str] = ()) -> None:
        """Switch exactly ``labels`` on (none: all off, for the next text)."""
        on = set(labels)
        for label, t in zip(self.labels, self.toggles, strict=True):
            t.value = label in on

    def remember(self, item_id: int, labels: Iterable[str]) -> None:
        """Keep the set sent for ``item_id``, for :meth:`restore` after an undo. Only the
        last few are kept: undo goes back one action at a time."""
        self._sent.pop(item_id, None)
        self._sent[item_id] = list(labels)
        if len(self._sent) > _REMEMBERED:
            del self._sent[next(iter(self._sent))]

    def forget(self, item_id: int) -> None:
        """The item was skipped: an undo brings it back with every label off."""
        self._sent.pop(item_id, None)

    def restore(self, item_id: int) -> bool:
        """Switch on the set last sent for ``item_id``; False (nothing changed) when this page
        sent none, e.g. it was reloaded since."""
        if item_id not in self._sent:
            return False
        self.set(self._sent[item_id])
        return True

    def _toggle_button(self, i: int, label: str, max_keyed: int) -> widgets.ToggleButton:
        key = f" ({i + 1})" if i < max_keyed else ""
        t = widgets.ToggleButton(value=False, description=f"{label}{key}",
                                 tooltip=f"Switch {label} on or off{key}",
                                 layout=widgets.Layout(width="auto", min_width="8em"))
        t.add_class(f"widgetal-toggle-{i + 1}")
        t.observe(lambda change, caption=f"{label}{key}": self._redraw_toggle(change, caption),
                  names="value")
        return t

    def _redraw_toggle(self, change: dict, caption: str) -> None:
        t = change["owner"]
        t.description = (_ON if change["new"] else "") + caption
        t.button_style = "success" if change["new"] else ""
        self._redraw()

    def _redraw(self) -> None:
        chosen = self.chosen
        self.send.description = f"{self._verb}: {readable(chosen)} (Enter)"
        self.send.tooltip = (
            f"{self._verb} the labels switched on" if chosen
            else f"{self._verb} the empty set: none of these labels applies"
        )


__all__ = ["LabelToggles", "NONE_OF_THESE", "readable", "readable_stored"]
