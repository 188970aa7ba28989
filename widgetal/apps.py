"""What the labelling and the review app share: the panel and its lines, the answer buttons
(one per label, or toggles in a multi-label project), what a key press means, and who is on the
page.

Light on purpose, like the apps: ipywidgets and the standard library only.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import ipywidgets as widgets

from .keys import app_keys
from .toggles import LabelToggles

MAX_KEYED_LABELS = 9  # keys 1-9; further labels get a button without a shortcut
_TEXT_STYLE = (
    "box-sizing: border-box; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 50vh; "
    "overflow-y: auto; "
    "font-size: 1.2em; line-height: 1.5; padding: 0.8em; border: 1px solid #ccc; "
    "border-radius: 4px; background: #fafafa; min-height: 3em"
)


class _AppLines:
    """What the labelling and the review app show alike: the escaped text, the message line
    with its Retry button, the panel around them, and the answer keys (a label per digit, or
    in a multi-label project a toggle per digit and Enter to send). The subclass sets
    ``queue``, ``item`` and ``_multi`` and builds ``_text``, ``_message``, ``_retry`` and
    ``_toggles``."""

    queue: Any
    item: Any
    _multi: bool
    _toggles: LabelToggles
    _text: widgets.HTML
    _message: widgets.HTML
    _retry: widgets.Button

    def _set_text(self, text: str) -> None:
        # Texts are untrusted: escaped, never rendered as HTML.
        self._text.value = f"<div style='{_TEXT_STYLE}'>{html.escape(text)}</div>"

    def _say(self, text: str, error: bool = False, retry: bool = False,
             retry_text: str = "Retry") -> None:
        self._message.value = _message(text, error) if text else ""
        self._retry.description = retry_text
        self._retry.layout.display = None if retry else "none"

    @property
    def message(self) -> str:
        """The message line's plain text (what the person is being told)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self._message.value))

    def toggle(self, label: str) -> None:
        """Switch ``label`` on or off for the text on screen (multi-label projects)."""
        if not self._multi:
            self._say("This project takes one label per text: press a label instead.",
                      error=True)
        elif self.item is not None:
            self._toggles.toggle(label)

    @property
    def chosen(self) -> list[str]:
        """The labels switched on (multi-label projects; empty otherwise)."""
        return self._toggles.chosen if self._multi else []

    def _dispatch(self, event: dict, answer: Callable, actions: dict[str, Callable[[], None]]
                  ) -> None:
        """Run a key press: a digit gives its label with ``answer``, or in a multi-label project
        toggles it while Enter sends the set with ``answer()``; ``actions`` map the rest."""
        if self._multi:
            dispatch_key(event, self.queue.labels, self.toggle, {"Enter": answer, **actions})
        else:
            dispatch_key(event, self.queue.labels, answer, actions)

    def _assemble(self, header: list, body: list, buttons: list, keys) -> widgets.VBox:
        """The panel: header lines, the text and what goes with it, buttons, message, key cue."""
        panel = widgets.VBox([
            widgets.VBox(header), *body,
            widgets.HBox(buttons, layout=widgets.Layout(flex_flow="row wrap")),
            self._message,
            keys,  # the cue: keys live wherever the pointer is
        ])
        panel.add_class("widgetal-panel")
        panel.layout.padding = "4px 8px"
        return panel


def dispatch_key(event: dict, labels: list[str], on_label: Callable[[str], None],
                 actions: dict[str, Callable[[], None]]) -> None:
    """Run what a keydown means in an app: a digit picks (or toggles) a label, a letter (either
    case), Backspace or Enter an action. Held keys and Ctrl/Alt/Meta combinations do nothing,
    so a held key cannot label a run of texts and the browser's own shortcuts stay the
    browser's; Shift+Enter (run a cell in Jupyter) is not Enter."""
    if event.get("type", "keydown") != "keydown" or event.get("repeat"):
        return
    if any(event.get(m) for m in ("ctrlKey", "altKey", "metaKey")):
        return
    key = event.get("key", "")
    if key == "Enter" and event.get("shiftKey"):
        return
    if key.isdigit() and 1 <= int(key) <= min(len(labels), MAX_KEYED_LABELS):
        on_label(labels[int(key) - 1])
    elif key in actions or key.lower() in actions:
        actions.get(key, actions.get(key.lower()))()


def label_buttons(labels: list[str], tooltip: str,
                  on_label: Callable[[str], None]) -> list[widgets.Button]:
    """One button per label (single-label projects), the first nine with their digit key."""
    buttons = []
    for i, label in enumerate(labels):
        key = f" ({i + 1})" if i < MAX_KEYED_LABELS else ""
        b = widgets.Button(description=f"{label}{key}", tooltip=f"{tooltip} {label}{key}",
                           button_style="primary",
                           layout=widgets.Layout(width="auto", min_width="8em"))
        b.add_class(f"widgetal-label-{i + 1}")
        b.on_click(lambda _b, label=label: on_label(label))
        buttons.append(b)
    return buttons


def answer_keys(n_labels: int, multi: bool, verb: str, send_verb: str,
                *extra: str) -> tuple[list[str], str]:
    """The keys an app claims (``extra`` after its answer keys) and the start of its cue: the
    digits give a label (``verb``), or in a multi-label project toggle one while Enter sends
    the set (``send_verb``)."""
    n = min(n_labels, MAX_KEYED_LABELS)
    if multi:
        keys = app_keys(n_labels, MAX_KEYED_LABELS, "Enter", *extra)
        return keys, f"1–{n} toggle · Enter {send_verb}"
    return app_keys(n_labels, MAX_KEYED_LABELS, *extra), f"1–{n} {verb}"


def labeller_from_url(query_string: str | None = None, param: str = "labeller") -> str | None:
    """The ``labeller`` parameter (or ``param``, e.g. ``reviewer``) of the page's URL: Voila
    passes it to the kernel as ``QUERY_STRING``. None when absent (e.g. in Jupyter)."""
    qs = os.environ.get("QUERY_STRING", "") if query_string is None else query_string
    values = parse_qs(qs.lstrip("?")).get(param)
    name = values[0].strip() if values else ""
    return name or None


def _meta_html(meta: dict | None) -> str:
    if not meta:
        return ""
    rows = "".join(
        f"<div><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</div>" for k, v in meta.items()
    )
    return f"<div style='font-size: 0.9em; color: #555'>{rows}</div>"


def _note(text_html: str) -> str:
    return f"<span style='color: #666; font-size: 0.9em'>{text_html}</span>"


def _message(text: str, error: bool = False) -> str:
    colour = "#b00020" if error else "#1b5e20"
    return f"<div style='color: {colour}; white-space: pre-wrap'>{html.escape(text)}</div>"
