"""What the labelling and the review app share: what a key press means and which keys an app
claims (the apps themselves are tested in tests/test_widget.py and tests/test_reviewing.py)."""

from __future__ import annotations

from widgetal.apps import answer_keys, dispatch_key, labeller_from_url

LABELS = ["billing", "urgent", "refund"]


def _run(key: str, **event) -> list:
    done = []
    dispatch_key({"type": "keydown", "key": key, **event}, LABELS, done.append,
                 {"Enter": lambda: done.append("sent"), "s": lambda: done.append("skip")})
    return done


def test_a_digit_gives_its_label_and_named_keys_or_letters_act():
    assert _run("2") == ["urgent"]
    assert _run("Enter") == ["sent"]
    assert _run("S") == ["skip"]  # either case of a letter


def test_shift_enter_held_keys_modifiers_and_unmapped_keys_do_nothing():
    assert _run("Enter", shiftKey=True) == []  # Jupyter's run-cell
    assert _run("1", repeat=True) == []
    assert _run("1", ctrlKey=True) == [] and _run("Enter", metaKey=True) == []
    assert _run("4") == [] and _run("0") == [] and _run("x") == []
    assert _run("1", type="keyup") == []


def test_a_multi_label_app_claims_enter_and_names_toggling_in_its_cue():
    assert answer_keys(3, True, "label", "submit", "s") == (
        ["1", "2", "3", "Enter", "s", "S"], "1–3 toggle · Enter submit")
    assert answer_keys(2, False, "label", "submit", "s") == (["1", "2", "s", "S"], "1–2 label")
    assert answer_keys(12, True, "decide", "decide")[0][-1] == "Enter"


def test_the_labeller_comes_from_the_page_url():
    assert labeller_from_url("?labeller=ana&x=1") == "ana"
    assert labeller_from_url("reviewer=rita", param="reviewer") == "rita"
    assert labeller_from_url("") is None
