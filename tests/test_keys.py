"""The page-wide key listener: which keys an app claims and how presses reach Python.

What happens in the page (editors keep their keys, one owner per page, the cue) is checked in a
real browser by tests/test_browser.py.
"""

from __future__ import annotations

from widgetal.keys import KeyListener, app_keys


def test_an_app_claims_a_key_per_keyed_label_and_both_cases_of_its_letters():
    assert app_keys(2, 9, "s", "u", "Backspace") == ["1", "2", "s", "S", "u", "U", "Backspace"]
    assert app_keys(12, 9, "b")[:9] == [str(i) for i in range(1, 10)]
    assert "10" not in app_keys(12, 9)


def test_key_presses_from_the_page_reach_the_handler_and_other_messages_do_not():
    pressed = []
    k = KeyListener(["1", "s"], pressed.append, hint="1 label · s skip")
    k._handle_custom_msg({"type": "keydown", "key": "1", "shiftKey": False, "repeat": False}, [])
    k._handle_custom_msg({"type": "something else", "key": "s"}, [])
    k._handle_custom_msg("not a dict", [])
    assert pressed == [{"type": "keydown", "key": "1", "shiftKey": False, "repeat": False}]
    assert k.shortcuts == ["1", "s"] and k.hint == "1 label · s skip"


def test_the_browser_side_leaves_editors_and_modified_keys_alone():
    esm = KeyListener._esm
    for guard in ("input, textarea, select", "contenteditable", ".cm-editor", ".CodeMirror",
                  "isContentEditable", "e.ctrlKey || e.altKey || e.metaKey"):
        assert guard in esm
    assert 'addEventListener("keydown", reg.onKey, { capture: true })' in esm


def test_enter_is_left_to_the_page_with_shift_in_dialogs_and_on_its_own_controls():
    esm = KeyListener._esm
    assert 'if (e.key === "Enter" && pagesEnter(e, path)) return;' in esm
    for guard in ("if (e.shiftKey) return true;", "[role='dialog']", ".jp-Dialog", ".lm-Menu",
                  "t.closest(CONTROLS) && !t.closest(\".\" + APP)"):
        assert guard in esm
    # Checked before the key is claimed: what the page keeps is never prevented.
    assert esm.index("pagesEnter(e, path)) return") < esm.index("e.preventDefault()")


def test_enter_is_claimed_only_by_apps_that_send_with_it():
    assert "Enter" not in app_keys(2, 9, "s", "u", "Backspace")
    assert app_keys(2, 9, "Enter", "s") == ["1", "2", "Enter", "s", "S"]
