"""The labelling widget: shows one text at a time and records labels through a ``Queue``.

It talks to the queue object only (pop, submit, skip, undo, progress, runs, labels,
instructions) and never trains: models come from the orchestrator. Buttons and key presses
call the same handlers, so the handlers can be tested without a browser.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from .apps import (  # noqa: F401 - dispatch_key and labeller_from_url: importable from here too
    MAX_KEYED_LABELS,
    _AppLines,
    _message,
    _meta_html,
    _note,
    answer_keys,
    dispatch_key,
    label_buttons,
    labeller_from_url,
)
from .audit import audit_score
from .errors import DatabaseUnavailable, ItemAlreadyLabelled, NothingToUndo, WidgetalError
from .keys import APP_CLASS, KeyListener
from .stopping import stop_signal
from .toggles import NONE_OF_THESE, LabelToggles, readable, readable_stored


@dataclass
class _Pending:
    """An action the labeller asked for that the database has not confirmed yet."""

    kind: str  # "label" or "skip"
    label: str | None  # the answer as shown (a label, or a set as "billing + urgent")
    run: Callable[[], Any]  # a label returns the next item, leased with it


class Labeller(_AppLines, widgets.VBox):
    """A labelling app for one labeller: text, one button per label, Skip and Undo.

    In a multi-label project (``widgetal init --multi-label``) an answer is a set: one toggle
    per label and a Submit button that sends the labels switched on; with none on it reads
    "Submit: none of these" and sends the empty set.

    Parameters
    ----------
    queue : widgetal.Queue
        Where texts come from and labels go.
    labeller : str, optional
        Who is labelling. If not given, the ``labeller`` parameter of the page's URL is used
        (Voila passes it as ``QUERY_STRING``), else the widget asks for a name first.
    show_meta : bool
        Show the item's other columns (meta fields) under the text.
    show_guess : bool
        Show the guess the orchestrator published with the item (the label its latest model
        finds likeliest). Off by default: a visible guess anchors labellers. No model file is
        ever opened here, so a labeller's kernel needs neither scikit-learn nor pandas.
    models_dir : str, optional
        Ignored (guesses come from the queue); kept so that older callers still work.

    Notes
    -----
    Keys: 1-9 label, ``s`` skip, ``u`` or Backspace undo, wherever the pointer is (see
    ``widgetal.keys``: never while typing in an editor, and with several apps on a page only the
    one used last acts). In a multi-label project 1-9 switch labels on and off and Enter
    submits. After Undo the text comes back with the labels this page gave it switched on
    again (a page reloaded since shows them all off).

    Examples
    --------
    >>> from widgetal import Queue
    >>> q = Queue("sqlite://", labels=["negative", "positive"])
    >>> _ = q.add(["great film", "dull film"])
    >>> w = Labeller(q, labeller="ana")
    >>> w.submit("positive")
    >>> q.progress("ana").mine
    1
    """

    def __init__(
        self,
        queue: Any,
        labeller: str | None = None,
        show_meta: bool = False,
        show_guess: bool = False,
        models_dir: str | None = None,
    ):
        super().__init__(layout=widgets.Layout(max_width="60em", width="100%"))
        self.add_class("widgetal-labeller")
        self.add_class(APP_CLASS)  # a click inside makes this app's keys live
        self.queue = queue
        self.show_meta = show_meta
        self.show_guess = show_guess
        self.labeller: str | None = None
        self.item = None
        self._multi = bool(getattr(queue, "multi_label", False))
        self._pending: _Pending | None = None
        self._shown_at = time.monotonic()
        self._runs: dict[int, dict] = {}

        self._build()
        labeller = labeller or labeller_from_url()
        if labeller:
            self.start(labeller)
        else:
            self.children = [self._title, self._name_box]

    # -- the labeller's actions -----------------------------------------------------------

    def start(self, labeller: str) -> None:
        """Begin labelling as ``labeller``: every label given carries this name."""
        labeller = (labeller or "").strip()
        if not labeller:
            self._name_message.value = _message("Type your name first: every label carries it.")
            return
        self.labeller = labeller
        self._who.value = _note(f"Labelling as <b>{html.escape(labeller)}</b>")
        self.children = [self._title, self._panel]
        self._next()

    def submit(self, label: str | Iterable[str] | None = None) -> None:
        """Record ``label`` for the text on screen, then show the next text.

        In a multi-label project the answer is a set: ``label`` is a list of labels (``[]``:
        none of these); without it, the labels switched on are sent.
        """
        if self.item is None:
            self._say("There is no text on screen to label.", error=True)
            return
        answer = self._answer(label)
        if answer is None:
            return
        item_id, labeller = self.item.item_id, self.labeller
        seconds = round(time.monotonic() - self._shown_at, 3)
        if self._multi:
            self._toggles.remember(item_id, answer)  # switched on again if Undo brings it back
        # A new choice for the same text replaces one the database has not confirmed yet.
        # One transaction saves the label and leases the next text: one commit per click.
        self._pending = _Pending(
            "label",
            readable(answer) if self._multi else answer,
            lambda: self.queue.submit_and_pop(item_id, answer, labeller, seconds=seconds),
        )
        self._flush()

    def skip(self) -> None:
        """Give the text back to the queue; this labeller will not see it again."""
        if self.item is None:
            self._say("There is no text on screen to skip.", error=True)
            return
        item_id, labeller = self.item.item_id, self.labeller
        self._toggles.forget(item_id)
        self._pending = _Pending("skip", None, lambda: self.queue.skip(item_id, labeller))
        self._flush()

    def undo(self) -> None:
        """Take back this labeller's latest label or skip and show its text again."""
        if self.labeller is None:
            return
        if self._pending is not None and not self._flush():
            return  # the unsaved action stays on screen with its message
        try:
            item = self.queue.undo(self.labeller)
        except NothingToUndo as exc:  # the queue says why (nothing left, a reviewer's decision)
            self._say(str(exc))
            return
        except DatabaseUnavailable as exc:
            self._say(f"Could not undo: {exc} Try again.", error=True, retry=False)
            return
        self._show(item)
        if self._multi and self._toggles.restore(item.item_id):
            self._say(f"Undone: this text is back with your answer, {readable(self.chosen)}: "
                      "change it and submit.")
        else:
            self._say("Undone: this text is back for you to label.")

    def retry(self) -> None:
        """Try again whatever the database refused: an unsaved label or skip, or the next text."""
        if self._pending is not None:
            self._flush()
        elif self.labeller is not None:
            self._next()

    def handle_key(self, event: dict) -> None:
        """Map a keydown event (as ``KeyListener`` sends it) to an action: 1-9, s, u, Backspace;
        in a multi-label project 1-9 toggle and Enter submits."""
        if self.labeller is not None:
            self._dispatch(event, self.submit,
                           {"s": self.skip, "u": self.undo, "Backspace": self.undo})

    # -- what happens between actions -------------------------------------------------------

    def _flush(self) -> bool:
        """Send the pending action; True when the database took it (or it became moot)."""
        pending = self._pending
        try:
            next_item = pending.run()
        except ItemAlreadyLabelled:
            self._pending = None
            self._next(
                notice="Someone else labelled that text first, so your label was not recorded. "
                "Here is the next one."
            )
            return True
        except DatabaseUnavailable as exc:
            what = (f"your {'answer' if self._multi else 'label'} '{pending.label}'"
                    if pending.kind == "label" else "your skip")
            again = "Submit" if self._multi else "a label"
            self._say(
                f"Not saved yet: {exc} {what.capitalize()} for this text is kept: press Retry, "
                f"or press {again} again, once the database is back.",
                error=True,
                retry=True,
            )
            return False
        except WidgetalError as exc:
            self._pending = None
            self._say(str(exc), error=True)
            return False
        self._pending = None
        if pending.kind == "label":
            self._show(next_item)  # leased in the same transaction as the label
        else:
            self._next()
        return True

    def _next(self, notice: str | None = None) -> None:
        try:
            item = self.queue.pop(self.labeller)
        except DatabaseUnavailable as exc:
            self.item = None
            self._set_text("")
            self._say(f"Cannot fetch the next text: {exc} Press Retry.", error=True, retry=True)
            self._enable(False)
            return
        self._show(item)
        if notice:
            self._say(notice, error=True)

    def _show(self, item) -> None:
        self.item = item
        self._shown_at = time.monotonic()
        if self._multi:
            self._toggles.set()  # a new text starts with every label off
        progress = self._refresh_progress()
        if item is None:
            counts = (
                f" {progress.done} of {progress.total} texts are labelled; "
                f"{progress.mine} by you." if progress else ""
            )
            self._set_text("")
            self._meta.value = self._guess.value = ""
            self._say(f"All done: no text is left for you.{counts} Press Check again later for "
                      "texts others skip or give back.", retry=True, retry_text="Check again")
            self._enable(False)
            return
        self._set_text(item.text)
        self._meta.value = _meta_html(item.meta) if self.show_meta else ""
        self._guess.value = _guess_html(item, self._multi) if self.show_guess else ""
        self._model_line.value = self._model_html(item.ranked_by)
        self._say("")
        self._enable(True)

    def _refresh_progress(self):
        try:
            p = self.queue.progress(self.labeller)
        except DatabaseUnavailable:
            return None  # the counts go stale; the next click refreshes them
        self._bar.max = max(p.total, 1)
        self._bar.value = p.done
        per_label = " · ".join(
            f"{html.escape(NONE_OF_THESE if self._multi and k == '[]' else k)} {v}"
            for k, v in p.per_label.items()
        )
        self._counts.value = (
            f"<b>{p.done}</b> labelled · <b>{p.left}</b> left · {per_label} · "
            f"you: <b>{p.mine}</b>"
        )
        return p

    def _model_html(self, run_id: int | None) -> str:
        if run_id is None:
            return _note("Queue order: import order (no model has ranked it yet).")
        if run_id not in self._runs:
            try:
                self._runs = {r["id"]: r for r in self.queue.runs(limit=50)}
            except DatabaseUnavailable:
                return ""
        run = self._runs.get(run_id)
        if run and run.get("status") == "cold-start":  # no model yet: ordered for diversity
            return _note(f"Queue ordered for diversity by run #{run_id} (no model yet): "
                         "one text per cluster of similar texts, rare clusters first.")
        score = _score_text(run.get("metrics") if run else None)
        n = f", {run['n_labels']} labels" if run and run.get("n_labels") is not None else ""
        return _note(f"Queue ranked by model run #{run_id}{n}{score}.") + _stop_note(self._runs)

    # -- drawing ------------------------------------------------------------------------------

    def _build(self) -> None:
        instructions = self.queue.instructions
        self._title = widgets.HTML(
            "<h3 style='margin: 0.2em 0'>Label the text</h3>"
            + (_note(html.escape(instructions)) if instructions else "")
        )
        self._name = widgets.Text(placeholder="Your name", continuous_update=False)
        self._name.add_class("widgetal-name")
        start = widgets.Button(description="Start", button_style="primary")
        start.add_class("widgetal-start")
        start.on_click(lambda _b: self.start(self._name.value))
        self._name_message = widgets.HTML()
        self._name_box = widgets.VBox(
            [widgets.HTML("Who is labelling? Your name is stored with every label."),
             widgets.HBox([self._name, start]), self._name_message]
        )

        self._bar = widgets.IntProgress(min=0, max=1, value=0, layout=widgets.Layout(width="100%"))
        self._counts = widgets.HTML()
        self._model_line = widgets.HTML()
        self._who = widgets.HTML()
        self._text = widgets.HTML(layout=widgets.Layout(width="100%"))
        self._text.add_class("widgetal-text")
        self._meta = widgets.HTML()
        self._guess = widgets.HTML()
        self._label_buttons = [] if self._multi else label_buttons(
            self.queue.labels, "Label as", self.submit)
        self._toggles = LabelToggles(self.queue.labels, "Submit", self.submit, MAX_KEYED_LABELS)
        self._answer_buttons = self._toggles.buttons if self._multi else self._label_buttons
        self._skip = widgets.Button(description="Skip (s)", icon="forward")
        self._skip.add_class("widgetal-skip")
        self._skip.on_click(lambda _b: self.skip())
        self._undo = widgets.Button(description="Undo (u / ⌫)", icon="undo")
        self._undo.add_class("widgetal-undo")
        self._undo.on_click(lambda _b: self.undo())
        self._retry = widgets.Button(description="Retry", button_style="warning",
                                     layout=widgets.Layout(display="none"))
        self._retry.add_class("widgetal-retry")
        self._retry.on_click(lambda _b: self.retry())
        self._message = widgets.HTML()
        self._message.add_class("widgetal-message")
        keys, hint = answer_keys(len(self.queue.labels), self._multi, "label", "submit",
                                 "s", "u", "Backspace")
        self._keys = KeyListener(
            keys,
            self.handle_key,
            hint=f"{hint} · s skip · u or Backspace undo",
        )
        if not self.queue.labels:
            self._message.value = _message(
                "This project has no label set yet: run `widgetal init --labels a,b`.", True
            )
        self._panel = self._assemble(
            [self._who, self._bar, self._counts, self._model_line],
            [self._text, self._meta, self._guess],
            [*self._answer_buttons, self._skip, self._undo, self._retry],
            self._keys,
        )

    def _answer(self, label: str | Iterable[str] | None) -> str | list[str] | None:
        """The answer to send for ``label`` (the toggled set when None, in a multi-label
        project), or None after saying why there is none."""
        labels = self.queue.labels
        if not self._multi:
            if label not in labels:
                self._say(f"'{label}' is not one of the labels {labels}.", error=True)
                return None
            return label
        try:
            return self._toggles.answer(label)
        except WidgetalError as exc:  # an unknown label, or a string for a list
            self._say(str(exc), error=True)
            return None

    def _enable(self, on: bool) -> None:
        for b in (*self._answer_buttons, self._skip):
            b.disabled = not on

    @property
    def pending(self) -> tuple[str, str | None] | None:
        """``(kind, label)`` of an action the database has not taken yet, else None."""
        return (self._pending.kind, self._pending.label) if self._pending else None


def _guess_html(item: Any, multi: bool = False) -> str:
    """The guess the orchestrator published with the item (escaped: labels are user data); in
    a multi-label project a set, read as "billing + urgent", with its joint probability."""
    label, proba = getattr(item, "guess_label", None), getattr(item, "guess_proba", None)
    if label is None:
        return _note("Model's guess: none yet (no model has ranked this text).")
    shown = readable_stored(label) if multi else str(label)
    share = f" ({proba:.0%})" if proba is not None else ""
    return _note(f"Model's guess: <b>{html.escape(shown)}</b>{share}")


def _stop_note(runs: dict[int, dict]) -> str:
    """The stop signal from the run records (widgetal.stopping, no model loaded), once its
    kappa part holds: whether more labels are unlikely to help, and the figures behind it."""
    signal = stop_signal(list(runs.values()))  # newest first, as Queue.runs gives them
    return "<br>" + _note(html.escape(signal.line())) if signal.kappa_stable else ""


def _score_text(metrics: Any) -> str:
    if not isinstance(metrics, dict):
        return ""
    parts = []
    for key, name in (("f1_macro", "CV macro-F1"), ("accuracy", "CV accuracy"),
                      ("roc_auc", "CV ROC AUC")):
        value = metrics.get(key)
        if isinstance(value, dict):
            value = value.get("mean")
        if isinstance(value, (int, float)):
            parts.append(f"{name} {value:.3f}")
    found = audit_score(metrics)  # the unbiased one: on texts drawn at random (audit.py)
    if found is not None:
        metric, score, low, high, n = found
        parts = parts[:2] + [f"audit {'macro' if metric == 'f1_macro' else 'micro'}-F1 "
                             f"{score:.3f} [{low:.3f}–{high:.3f}] on {n} random texts"]
    return ", " + ", ".join(parts[:3]) if parts else ""


__all__ = ["Labeller", "labeller_from_url"]
