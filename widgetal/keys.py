"""Keyboard shortcuts that work wherever the pointer is: a small anywidget with one key listener
for the whole page.

The browser side listens on ``window`` (capture phase, so it runs before JupyterLab's own
command-mode shortcuts) and forwards only the keys its app uses, as plain event dicts, to a
Python handler (``Labeller.handle_key``, ``Reviewer.handle_key``), which stays testable without a
browser. It never takes a key typed into an editor: inputs, textareas, selects, anything
contenteditable, CodeMirror (a notebook cell being edited). Keys with Ctrl, Alt or Meta and held
keys (auto-repeat) are left alone too.

Enter (the send key of multi-label apps) is taken only when it means nothing else: never with
Shift (Jupyter's run-cell), never in a dialog or menu (where it accepts), and never while a
button, link or tab outside the apps has focus (Enter activates it). Inside an app it is taken
even from a focused button: a label toggle just clicked must not flip back when Enter sends.

One page, one owner: when several apps are on a page (two cells in JupyterLab), only the one
used most recently acts on a key press: the newest one shown owns the keys until the labeller
clicks into another app, which then takes them. An app that is hidden (another JupyterLab tab)
never acts. Each app shows a cue: green "keys live" on the owner, grey "click to use keys" on the
others.

Light on purpose: the labeller's kernel imports this, and it imports ipywidgets and anywidget
only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import anywidget
import traitlets

APP_CLASS = "widgetal-app"  # the root of an app; a click inside it makes its keys live

_ESM = r"""
const APP = "widgetal-app";
const EDITORS = "input, textarea, select, [contenteditable=''], [contenteditable='true'], " +
  ".cm-editor, .CodeMirror, .jp-InputArea-editor";
// Where Enter accepts or activates something of the page's own.
const DIALOGS = "dialog, [role='dialog'], [role='alertdialog'], [role='menu'], " +
  "[role='listbox'], .jp-Dialog, .lm-Menu";
const CONTROLS = "button, a[href], summary, [role='button'], [role='link'], [role='tab'], " +
  "[role='menuitem'], [role='option'], [role='treeitem']";

// Whether an Enter press belongs to the page rather than to an app.
function pagesEnter(e, path) {
  if (e.shiftKey) return true;
  for (const n of path) {
    if (n instanceof Element && n.matches(DIALOGS)) return true;
  }
  const t = e.target instanceof Element ? e.target : null;
  return !!(t && t.closest(CONTROLS) && !t.closest("." + APP));
}

// One listener and one owner per page, shared by every app on it.
function registry() {
  if (!window.__widgetalKeys) {
    const reg = { views: [], owner: null };
    reg.visible = (v) => v.el.isConnected && v.el.getClientRects().length > 0;
    reg.current = () => {
      if (reg.owner && reg.visible(reg.owner)) return reg.owner;
      for (let i = reg.views.length - 1; i >= 0; i--) {  // the newest visible one
        if (reg.visible(reg.views[i])) return reg.views[i];
      }
      return null;
    };
    reg.refresh = () => { const cur = reg.current(); reg.views.forEach((v) => v.show(v === cur)); };
    reg.take = (v) => { reg.owner = v; reg.refresh(); };
    reg.onKey = (e) => {
      if (e.ctrlKey || e.altKey || e.metaKey || e.isComposing) return;
      const path = e.composedPath ? e.composedPath() : [e.target];
      for (const n of path) {
        if (n instanceof Element && (n.isContentEditable || n.matches(EDITORS))) return;
      }
      if (e.key === "Enter" && pagesEnter(e, path)) return;
      const v = reg.current();
      if (!v || !v.model.get("shortcuts").includes(e.key)) return;
      e.preventDefault();
      e.stopImmediatePropagation();  // JupyterLab's command mode must not act on it too
      if (e.repeat) return;  // a held key must not label a run of texts
      v.model.send({ type: "keydown", key: e.key, shiftKey: e.shiftKey, repeat: false });
      v.flash();
    };
    reg.onPointer = (e) => {
      const app = e.target instanceof Element ? e.target.closest("." + APP) : null;
      const v = app && reg.views.find((w) => w.el.closest("." + APP) === app);
      if (v && v !== reg.current()) reg.take(v);
    };
    window.addEventListener("keydown", reg.onKey, { capture: true });
    window.addEventListener("pointerdown", reg.onPointer, { capture: true });
    window.__widgetalKeys = reg;
  }
  return window.__widgetalKeys;
}

function render({ model, el }) {
  const reg = registry();
  el.classList.add("widgetal-keys");
  const cue = document.createElement("span");
  cue.className = "widgetal-keys-cue";
  el.appendChild(cue);
  const view = {
    model, el,
    show(live) {
      el.classList.toggle("widgetal-keys-live", live);
      cue.textContent = live ? "⌨ keys live: " + model.get("hint")
        : "⌨ keys belong to another panel: click here to use them";
    },
    flash() {
      el.classList.remove("widgetal-keys-pressed");
      void el.offsetWidth;  // restart the animation
      el.classList.add("widgetal-keys-pressed");
    },
  };
  reg.views.push(view);
  reg.take(view);  // the newest app owns the keys
  // It may be laid out only later (a notebook output, a JupyterLab tab): redraw the cues then.
  const seen = new IntersectionObserver(() => reg.refresh());
  seen.observe(el);
  model.on("change:hint", () => reg.refresh());
  return () => {
    seen.disconnect();
    reg.views = reg.views.filter((v) => v !== view);
    if (reg.owner === view) reg.owner = null;
    reg.refresh();
  };
}

export default { render };
"""

_CSS = """
.widgetal-keys { display: inline-block; font-size: 0.85em; padding: 1px 8px; margin: 2px 0;
  border-radius: 10px; color: #555; background: #eee; border: 1px solid #ccc; }
.widgetal-keys.widgetal-keys-live { color: #1b5e20; background: #e8f5e9; border-color: #81c784; }
.widgetal-keys.widgetal-keys-pressed { animation: widgetal-keys-flash 0.3s; }
@keyframes widgetal-keys-flash { from { background: #a5d6a7; } }
"""


class KeyListener(anywidget.AnyWidget):
    """A page-wide key listener for one app, with a cue that shows whether its keys are live.

    Parameters
    ----------
    keys : iterable of str
        The ``KeyboardEvent.key`` values the app uses (e.g. ``"1"``, ``"s"``, ``"Backspace"``).
        Other keys are never taken from the page.
    handler : callable
        Called with each key press as a dict (``type``, ``key``, ``shiftKey``, ``repeat``), on
        the kernel side.
    hint : str
        What the keys do, shown in the cue (e.g. ``"1–2 label · s skip · u undo"``).

    Examples
    --------
    >>> pressed = []
    >>> k = KeyListener(["1", "s"], pressed.append, hint="1 label · s skip")
    >>> k.press("1")
    >>> pressed
    [{'type': 'keydown', 'key': '1', 'shiftKey': False, 'repeat': False}]
    """

    _esm = _ESM
    _css = _CSS
    shortcuts = traitlets.List(traitlets.Unicode()).tag(sync=True)
    hint = traitlets.Unicode("").tag(sync=True)

    def __init__(self, keys: Iterable[str], handler: Callable[[dict], None], hint: str = ""):
        super().__init__(shortcuts=list(keys), hint=hint)
        self._handler = handler
        self.on_msg(self._on_msg)

    def press(self, key: str, **event) -> None:
        """Act as if ``key`` was pressed in the page (what the browser side would send)."""
        self._on_msg(self, {"type": "keydown", "key": key, "shiftKey": False, "repeat": False,
                            **event}, [])

    def _on_msg(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "keydown":
            self._handler(content)


def app_keys(n_labels: int, max_keyed: int, *extra: str) -> list[str]:
    """The keys an app uses: ``1``… for its keyed labels, then ``extra`` (both cases of a
    letter)."""
    keys = [str(i) for i in range(1, min(n_labels, max_keyed) + 1)]
    for key in extra:
        keys += [key] if len(key) > 1 else [key.lower(), key.upper()]
    return keys


__all__ = ["KeyListener", "app_keys", "APP_CLASS"]
