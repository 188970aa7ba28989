"""The review app: a reviewer decides, one at a time, the items whose labels disagree.

It shows every label and who gave it, one button per label to decide the final label, Send back
(one more label wanted) and Undo (takes back the latest decision). Like the labelling widget it
talks to the queue only (pop_review, review, undo_review, awaiting_review) and never trains;
buttons and key presses call the same handlers, so the handlers can be tested without a browser.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from .apps import (
    MAX_KEYED_LABELS,
    _AppLines,
    _message,
    _meta_html,
    _note,
    answer_keys,
    label_buttons,
    labeller_from_url,
)
from .errors import (
    DatabaseUnavailable,
    NotAReviewer,
    NotAwaitingReview,
    NothingToUndo,
    WidgetalError,
)
from .keys import APP_CLASS, KeyListener
from .toggles import LabelToggles, readable, readable_stored


@dataclass
class _Pending:
    """A decision the reviewer asked for that the database has not confirmed yet."""

    label: str | None  # the decision as shown ("billing + urgent"); None: send the item back
    run: Callable[[], Any]


class Reviewer(_AppLines, widgets.VBox):
    """A review app for one reviewer: an item whose labels disagree, who gave which label,
    one button per label to decide, Send back and Undo.

    In a multi-label project the labels given are sets, shown per set with who gave it
    ("billing + urgent (1): ana"), and the decision is a set too: one toggle per label and a
    Decide button that sends the labels switched on ("Decide: none of these" when none is).

    Parameters
    ----------
    queue : widgetal.Queue
        Where items awaiting review come from and decisions go.
    reviewer : str, optional
        Who is reviewing; must be registered as a reviewer (``widgetal labellers add NAME
        --reviewer``). If not given, the ``reviewer`` parameter of the page's URL is used
        (Voila passes it as ``QUERY_STRING``), else the widget asks for a name first.
    show_meta : bool
        Show the item's other columns (meta fields) under the text.

    Notes
    -----
    Keys: 1-9 decide, ``b`` send back, ``u`` or Backspace undo, captured while the pointer is
    over the widget (as in :class:`widgetal.widget.Labeller`). In a multi-label project 1-9
    switch labels on and off and Enter decides; after Undo the item comes back with the set
    this page decided switched on again.

    Examples
    --------
    >>> from widgetal import Queue
    >>> q = Queue("sqlite://", labels=["negative", "positive"])
    >>> q.configure(overlap=2)
    >>> _ = q.add_person("rita", reviewer=True)
    >>> _ = q.add(["odd film"])
    >>> for who, label in (("ana", "positive"), ("bob", "negative")):
    ...     q.submit(q.pop(who).item_id, label, who)
    >>> w = Reviewer(q, reviewer="rita")
    >>> w.item.labels
    [('ana', 'positive'), ('bob', 'negative')]
    >>> w.decide("negative")
    >>> q.labelled()[["label", "source"]].values.tolist()
    [['negative', 'review']]
    """

    def __init__(self, queue: Any, reviewer: str | None = None, show_meta: bool = False):
        super().__init__(layout=widgets.Layout(max_width="60em", width="100%"))
        self.add_class("widgetal-reviewer")
        self.add_class(APP_CLASS)  # a click inside makes this app's keys live
        self.queue = queue
        self.show_meta = show_meta
        self.reviewer: str | None = None
        self.item = None
        self._multi = bool(getattr(queue, "multi_label", False))
        self._pending: _Pending | None = None
        self._shown_at = time.monotonic()

        self._build()
        reviewer = reviewer or labeller_from_url(param="reviewer")
        if reviewer:
            self.start(reviewer)
        else:
            self.children = [self._title, self._name_box]

    # -- the reviewer's actions -------------------------------------------------------------

    def start(self, reviewer: str) -> None:
        """Begin reviewing as ``reviewer``; someone who is not a reviewer is refused."""
        reviewer = (reviewer or "").strip()
        if not reviewer:
            self._name_message.value = _message("Type your name first: every decision carries it.")
            return
        self.reviewer = reviewer
        self._who.value = _note(f"Reviewing as <b>{html.escape(reviewer)}</b>")
        self.children = [self._title, self._panel]
        self._next()  # pop_review checks the role before it hands anything out

    def decide(self, label: str | Iterable[str] | None = None) -> None:
        """Make ``label`` the final label of the item on screen, then show the next one.

        In a multi-label project the decision is a set: ``label`` is a list of labels (``[]``:
        none of these); without it, the labels switched on are decided.
        """
        if self.item is None:
            self._say("There is no item on screen to decide.", error=True)
            return
        if self._multi:
            try:
                answer = self._toggles.answer(label)
            except WidgetalError as exc:  # an unknown label, or a string for a list
                self._say(str(exc), error=True)
                return
            self._toggles.remember(self.item.item_id, answer)  # switched on again after Undo
            self._record(readable(answer), answer)
            return
        if label not in self.queue.labels:
            self._say(f"'{label}' is not one of the labels {self.queue.labels}.", error=True)
            return
        self._record(label, label)

    def send_back(self) -> None:
        """Ask for one more label on the item on screen instead of deciding it."""
        if self.item is None:
            self._say("There is no item on screen to send back.", error=True)
            return
        self._toggles.forget(self.item.item_id)
        self._record(None, None)

    def undo(self) -> None:
        """Take back this reviewer's latest decision (or send-back) and show that item again."""
        if self.reviewer is None:
            return
        if self._pending is not None and not self._flush():
            return  # the unsaved decision stays on screen with its message
        try:
            item = self.queue.undo_review(self.reviewer)
        except NothingToUndo as exc:
            self._say(f"Nothing to undo: {exc}")
            return
        except NotAReviewer as exc:
            self._refuse(exc)
            return
        except DatabaseUnavailable as exc:
            self._say(f"Could not undo: {exc} Try again.", error=True)
            return
        self._show(item)
        if self._multi and self._toggles.restore(item.item_id):
            self._say(f"Undone: your decision, {readable(self.chosen)}, was taken back and is "
                      "switched on again. Decide this item again.")
        else:
            self._say("Undone: your decision was taken back. Decide this item again.")

    def retry(self) -> None:
        """Try again whatever the database refused: an unsaved decision, or the next item."""
        if self._pending is not None:
            self._flush()
        elif self.reviewer is not None:
            self._next()

    def handle_key(self, event: dict) -> None:
        """Map a keydown event (as ``KeyListener`` sends it) to an action: 1-9, b, u, Backspace;
        in a multi-label project 1-9 toggle and Enter decides."""
        if self.reviewer is not None:
            self._dispatch(event, self.decide,
                           {"b": self.send_back, "u": self.undo, "Backspace": self.undo})

    # -- what happens between actions -------------------------------------------------------

    def _record(self, shown: str | None, answer: Any) -> None:
        """Send ``answer`` (None: send back), shown in messages as ``shown``."""
        item_id, reviewer = self.item.item_id, self.reviewer
        seconds = round(time.monotonic() - self._shown_at, 3)
        # A new choice for the same item replaces one the database has not confirmed yet.
        self._pending = _Pending(
            shown, lambda: self.queue.review(item_id, answer, reviewer, seconds=seconds)
        )
        self._flush()

    def _flush(self) -> bool:
        """Send the pending decision; True when the database took it (or it became moot)."""
        pending = self._pending
        try:
            pending.run()
        except NotAwaitingReview:
            self._pending = None
            self._next(
                notice="That item no longer awaits review (another reviewer decided it, or a "
                "labeller took a label back), so your decision was not recorded. Here is the "
                "next one."
            )
            return True
        except NotAReviewer as exc:
            self._pending = None
            self._refuse(exc)
            return False
        except DatabaseUnavailable as exc:
            what = ("your send-back" if pending.label is None
                    else f"your decision '{pending.label}'")
            self._say(
                f"Not saved yet: {exc} {what.capitalize()} for this item is kept: press Retry, "
                "or press a button again, once the database is back.",
                error=True,
                retry=True,
            )
            return False
        except WidgetalError as exc:
            self._pending = None
            self._say(str(exc), error=True)
            return False
        self._pending = None
        self._next()
        return True

    def _next(self, notice: str | None = None) -> None:
        try:
            item = self.queue.pop_review(self.reviewer)
        except NotAReviewer as exc:
            self._refuse(exc)
            return
        except DatabaseUnavailable as exc:
            self.item = None
            self._clear()
            self._say(f"Cannot fetch the next item: {exc} Press Retry.", error=True, retry=True)
            self._enable(False)
            return
        self._show(item)
        if notice:
            self._say(notice, error=True)

    def _refuse(self, exc: NotAReviewer) -> None:
        """Not a registered reviewer: say so, show nothing to decide, keep no name."""
        self.reviewer = None
        self.item = None
        self._refusal.value = _message(
            f"You cannot review here. {exc} To label texts instead, open the page with "
            "?labeller=YOUR_NAME.",
            error=True,
        )
        self.children = [self._title, self._refusal]

    def _show(self, item) -> None:
        self.item = item
        self._shown_at = time.monotonic()
        if self._multi:
            self._toggles.set()  # a new item starts with every label off
        waiting = self._refresh_count(item is not None)
        if item is None:
            left = f" ({waiting} held by other reviewers.)" if waiting else ""
            self._clear()
            self._say(f"Nothing to review: no item is waiting for you.{left} Disagreements "
                      "arrive as labellers finish items; press Check again later.",
                      retry=True, retry_text="Check again")
            self._enable(False)
            return
        self._set_text(item.text)
        self._given.value = _labels_html(item.labels, self.queue.labels,
                                         readable_stored if self._multi else str)
        self._meta.value = _meta_html(item.meta) if self.show_meta else ""
        self._say("")
        self._enable(True)

    def _refresh_count(self, on_screen: bool) -> int | None:
        try:
            waiting = self.queue.awaiting_review()
        except DatabaseUnavailable:
            return None  # the count goes stale; the next click refreshes it
        this = " (the one on screen included)" if on_screen and waiting else ""
        self._count.value = f"<b>{waiting}</b> awaiting review{this}"
        return waiting

    # -- drawing ------------------------------------------------------------------------------

    def _build(self) -> None:
        instructions = self.queue.instructions
        self._title = widgets.HTML(
            "<h3 style='margin: 0.2em 0'>Review disagreements</h3>"
            + (_note(html.escape(instructions)) if instructions else "")
        )
        self._name = widgets.Text(placeholder="Your name", continuous_update=False)
        self._name.add_class("widgetal-name")
        start = widgets.Button(description="Start", button_style="primary")
        start.add_class("widgetal-start")
        start.on_click(lambda _b: self.start(self._name.value))
        self._name_message = widgets.HTML()
        self._name_box = widgets.VBox(
            [widgets.HTML("Who is reviewing? Your name is stored with every decision."),
             widgets.HBox([self._name, start]), self._name_message]
        )
        self._refusal = widgets.HTML()
        self._refusal.add_class("widgetal-refusal")

        self._who = widgets.HTML()
        self._count = widgets.HTML()
        self._count.add_class("widgetal-awaiting")
        self._text = widgets.HTML(layout=widgets.Layout(width="100%"))
        self._text.add_class("widgetal-text")
        self._given = widgets.HTML()
        self._given.add_class("widgetal-given")
        self._meta = widgets.HTML()
        self._label_buttons = [] if self._multi else label_buttons(
            self.queue.labels, "Final label:", self.decide)
        self._toggles = LabelToggles(self.queue.labels, "Decide", self.decide, MAX_KEYED_LABELS)
        self._answer_buttons = self._toggles.buttons if self._multi else self._label_buttons
        self._send_back = widgets.Button(description="Send back (b)", icon="reply",
                                         tooltip="Ask for one more label instead of deciding")
        self._send_back.add_class("widgetal-send-back")
        self._send_back.on_click(lambda _b: self.send_back())
        self._undo = widgets.Button(description="Undo (u / ⌫)", icon="undo")
        self._undo.add_class("widgetal-undo")
        self._undo.on_click(lambda _b: self.undo())
        self._retry = widgets.Button(description="Retry", button_style="warning",
                                     layout=widgets.Layout(display="none"))
        self._retry.add_class("widgetal-retry")
        self._retry.on_click(lambda _b: self.retry())
        self._message = widgets.HTML()
        self._message.add_class("widgetal-message")
        keys, hint = answer_keys(len(self.queue.labels), self._multi, "decide", "decide",
                                 "b", "u", "Backspace")
        self._keys = KeyListener(keys, self.handle_key,
                                 hint=f"{hint} · b send back · u or Backspace undo")
        self._panel = self._assemble(
            [self._who, self._count],
            [self._text, self._given, self._meta],
            [*self._answer_buttons, self._send_back, self._undo, self._retry],
            self._keys,
        )

    def _clear(self) -> None:
        self._set_text("")
        self._given.value = self._meta.value = ""

    def _enable(self, on: bool) -> None:
        for b in (*self._answer_buttons, self._send_back):
            b.disabled = not on

    @property
    def pending(self) -> tuple[str, str | None] | None:
        """``("decide", label)`` or ``("send back", None)`` not yet taken by the database."""
        if self._pending is None:
            return None
        return ("send back", None) if self._pending.label is None else (
            "decide", self._pending.label)


def _labels_html(given: list[tuple[str, str]], label_set: list[str],
                 shown: Callable[[str], str] = str) -> str:
    """Who gave which label, one line per label (label-set order, then as given; a label set
    is one line, read by ``shown``); names and labels escaped."""
    by_label: dict[str, list[str]] = {}
    for labeller, label in given:
        by_label.setdefault(label, []).append(labeller)
    order = [x for x in label_set if x in by_label] + [x for x in by_label if x not in label_set]
    rows = "".join(
        f"<div><b>{html.escape(shown(label))}</b> ({len(by_label[label])}): "
        f"{html.escape(', '.join(by_label[label]))}</div>"
        for label in order
    )
    return (f"<div style='margin: 0.4em 0'>{_note(f'{len(given)} labels given:')}"
            f"{rows}</div>")


__all__ = ["Reviewer"]
