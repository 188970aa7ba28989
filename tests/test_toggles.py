"""The toggles that take a multi-label answer: what they show, what they send, what Undo gets
back, and how a set reads."""

from __future__ import annotations

import pytest

from widgetal.errors import InvalidInput, LabelNotInLabelSet
from widgetal.toggles import LabelToggles, readable, readable_stored

LABELS = ["billing", "urgent", "refund"]


def _toggles(sent: list | None = None, max_keyed: int = 9) -> LabelToggles:
    return LabelToggles(LABELS, "Submit", lambda: sent.append("sent"), max_keyed)


def test_a_set_reads_in_the_order_given_and_the_empty_set_as_none_of_these():
    assert readable(["billing", "refund"]) == "billing + refund"
    assert readable([]) == "none of these"
    assert readable_stored('["urgent","refund"]') == "urgent + refund"
    assert readable_stored("[]") == "none of these"
    assert readable_stored("positive") == "positive"  # not a stored set: shown as it is
    assert readable_stored("[not json") == "[not json"


def test_switched_on_labels_come_in_project_order_and_the_send_button_names_them():
    t = _toggles()
    assert t.send.description == "Submit: none of these (Enter)"
    t.toggle("refund")
    t.toggle("urgent")
    t.toggle("billing")
    t.toggle("billing")
    assert t.chosen == ["urgent", "refund"]
    assert t.send.description == "Submit: urgent + refund (Enter)"
    assert [b.description for b in t.toggles] == ["billing (1)", "✓ urgent (2)", "✓ refund (3)"]
    assert [b.button_style for b in t.toggles] == ["", "success", "success"]
    t.set()
    assert t.chosen == [] and t.send.description == "Submit: none of these (Enter)"
    assert [b.description for b in t.toggles] == ["billing (1)", "urgent (2)", "refund (3)"]


def test_a_click_in_the_page_redraws_like_a_key_and_the_send_button_calls_back():
    sent = []
    t = _toggles(sent)
    t.toggles[0].value = True  # what the page syncs when a toggle is clicked
    assert t.send.description == "Submit: billing (Enter)"
    t.send.click()
    assert sent == ["sent"]


def test_only_keyed_labels_show_a_digit():
    t = _toggles(max_keyed=2)
    assert [b.description for b in t.toggles] == ["billing (1)", "urgent (2)", "refund"]


def test_an_answer_is_checked_and_put_in_project_order():
    t = _toggles()
    t.toggle("urgent")
    assert t.answer() == ["urgent"]  # None: the labels switched on
    assert t.answer({"refund", "billing"}) == ["billing", "refund"]
    assert t.answer([]) == []
    with pytest.raises(LabelNotInLabelSet):
        t.answer(["nope"])
    with pytest.raises(InvalidInput):
        t.answer("billing")


def test_undo_gets_back_the_set_last_sent_for_an_item_and_a_skip_forgets_it():
    t = _toggles()
    t.remember(7, ["urgent"])
    t.remember(7, ["billing", "refund"])  # sent again after an undo: the latest counts
    t.remember(8, [])
    assert t.restore(7) and t.chosen == ["billing", "refund"]
    assert t.restore(8) and t.chosen == []
    t.forget(8)
    t.toggle("urgent")
    assert not t.restore(8) and t.chosen == ["urgent"]  # unchanged
    assert not t.restore(99)


def test_only_the_latest_sets_are_kept():
    t = _toggles()
    for item_id in range(60):
        t.remember(item_id, ["urgent"])
    assert not t.restore(0)
    assert t.restore(59) and t.chosen == ["urgent"]
