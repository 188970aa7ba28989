"""The review app's handlers, driven headlessly by button clicks and synthetic key events,
checked against its state and the database (a real SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from widgetal import Queue
from widgetal.errors import DatabaseUnavailable
from widgetal.reviewing import Reviewer

LABELS = ["negative", "positive"]


def _key(key: str, **extra) -> dict:
    return {"type": "keydown", "key": key, "repeat": False, **extra}


@pytest.fixture
def team(db_url):
    """Overlap 2: ana and bob label, rita reviews."""
    q = Queue(db_url, labels=LABELS, lease_seconds=600)
    q.configure(overlap=2)
    for name in ("ana", "bob"):
        q.add_person(name)
    q.add_person("rita", reviewer=True)
    yield q
    q.engine.dispose()


def _disagree(q, texts, first=("ana", "positive"), second=("bob", "negative")) -> list[int]:
    """Add ``texts``; two labellers give each one a different label."""
    q.add(list(texts))
    ids = []
    for _ in texts:
        for who, label in (first, second):
            item = q.pop(who)
            q.submit(item.item_id, label, who)
        ids.append(item.item_id)
    return ids


def _final(q) -> list[tuple[str, str, str, str]]:
    frame = q.labelled().sort_values("item_id")
    return list(zip(frame["text"], frame["label"], frame["labeller"], frame["source"]))


def _review_leases(q) -> int:
    with q.engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT count(*) FROM widgetal_items WHERE review_leased_by IS NOT NULL"
        )).scalar_one()


class _FlakyQueue:
    """A Queue whose database can be switched off, as when a server goes away mid-session."""

    def __init__(self, queue):
        self._queue = queue
        self.down: set[str] = set()

    def __getattr__(self, name):
        attr = getattr(self._queue, name)
        if callable(attr) and name in {"pop_review", "review", "undo_review", "awaiting_review"}:
            def guarded(*args, **kwargs):
                if name in self.down or "all" in self.down:
                    raise DatabaseUnavailable("Cannot reach the database at test://: gone.")
                return attr(*args, **kwargs)

            return guarded
        return attr


def test_review_module_imports_neither_sqlalchemy_nor_sklearn():
    # As for the labelling widget: a reviewer's kernel needs neither to draw the app.
    code = (
        "import sys, types, pathlib, widgetal.reviewing as _probe\n"
        "folder = str(pathlib.Path(_probe.__file__).parent)\n"
        "for name in [m for m in sys.modules if m.split('.')[0] in "
        "('widgetal', 'sqlalchemy', 'sklearn', 'pandas')]:\n"
        "    del sys.modules[name]\n"
        "pkg = types.ModuleType('widgetal'); pkg.__path__ = [folder]\n"
        "sys.modules['widgetal'] = pkg\n"
        "import widgetal.reviewing\n"
        "w = sys.modules['widgetal.reviewing']; assert hasattr(w, 'Reviewer')\n"
        "print(','.join(m for m in ('sqlalchemy', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""


def test_shows_one_disagreement_with_every_label_and_who_gave_it(team):
    _disagree(team, ["odd film", "strange film"])
    w = Reviewer(team, reviewer="rita")
    assert w.item.text == "odd film"
    assert w.item.labels == [("ana", "positive"), ("bob", "negative")]
    given = w._given.value
    assert "<b>negative</b> (1): bob" in given and "<b>positive</b> (1): ana" in given
    assert given.index("negative") < given.index("positive")  # label-set order
    assert "<b>2</b> awaiting review" in w._count.value
    assert "Reviewing as <b>rita</b>" in w._who.value
    assert [b.description for b in w._label_buttons] == ["negative (1)", "positive (2)"]


def test_clicking_a_label_decides_the_final_label_and_shows_the_next(team):
    _disagree(team, ["odd film", "strange film"])
    w = Reviewer(team, reviewer="rita")
    w._label_buttons[0].click()
    assert w.item.text == "strange film"
    assert "<b>1</b> awaiting review" in w._count.value
    w.handle_key(_key("2"))
    assert _final(team) == [("odd film", "negative", "rita", "review"),
                            ("strange film", "positive", "rita", "review")]
    reviews = team.events().query("event == 'review'")
    assert len(reviews) == 2 and (reviews["seconds"] >= 0).all()
    assert w.item is None and team.awaiting_review() == 0


def test_send_back_asks_for_one_more_label_and_the_item_returns_to_review(team):
    (item_id,) = _disagree(team, ["odd film"])
    w = Reviewer(team, reviewer="rita")
    w._send_back.click()
    assert w.item is None and "Nothing to review" in w.message
    assert team.labelled().empty and team.awaiting_review() == 0
    extra = team.pop("cy")  # one more labeller gets it
    assert extra.item_id == item_id
    team.submit(item_id, "negative", "cy")
    w._retry.click()  # "Check again": 2 negative vs 1 positive still disagree under "review"
    assert w.item.item_id == item_id
    assert "<b>negative</b> (2): bob, cy" in w._given.value
    w.handle_key(_key("1"))
    assert _final(team) == [("odd film", "negative", "rita", "review")]


def test_b_key_sends_back(team):
    (item_id,) = _disagree(team, ["odd film"])
    w = Reviewer(team, reviewer="rita")
    w.handle_key(_key("b"))
    assert w.item is None and team.pop("cy").item_id == item_id


def test_the_page_wide_key_listener_drives_the_reviewer(team):
    (item_id,) = _disagree(team, ["odd film"])
    w = Reviewer(team, reviewer="rita")
    assert w._keys in w._panel.children and "widgetal-app" in w._dom_classes
    assert w._keys.shortcuts == ["1", "2", "b", "B", "u", "U", "Backspace"]
    assert "b send back" in w._keys.hint
    w._keys.press("B")  # as the page sends it
    assert w.item is None and team.pop("cy").item_id == item_id


def test_undo_takes_back_the_last_decision_and_shows_that_item_again(team):
    _disagree(team, ["odd film", "strange film"])
    w = Reviewer(team, reviewer="rita")
    w._label_buttons[1].click()  # odd film -> positive
    assert w.item.text == "strange film"
    w._undo.click()
    assert w.item.text == "odd film" and "Undone" in w.message
    assert team.labelled().empty and team.awaiting_review() == 2
    w.handle_key(_key("1"))  # odd film -> negative now
    assert w.item.text == "strange film"  # still held by rita, not lost
    w.handle_key(_key("Backspace"))
    assert w.item.text == "odd film"
    w.handle_key(_key("u"))  # nothing older to take back
    assert "Nothing to undo" in w.message and w.item.text == "odd film"
    w._label_buttons[0].click()
    w._label_buttons[1].click()
    assert _final(team) == [("odd film", "negative", "rita", "review"),
                            ("strange film", "positive", "rita", "review")]


def test_undo_of_a_send_back_returns_the_item_to_review(team):
    (item_id,) = _disagree(team, ["odd film"])
    w = Reviewer(team, reviewer="rita")
    w._send_back.click()
    w._undo.click()
    assert w.item.item_id == item_id and team.awaiting_review() == 1
    assert team.pop("cy") is None  # no longer open for one more label


def test_a_labeller_who_is_not_a_reviewer_is_refused_and_nothing_is_handed_out(team):
    _disagree(team, ["odd film"])
    for name in ("ana", "zoe"):  # a labeller, and a name nobody registered
        w = Reviewer(team, reviewer=name)
        assert w.reviewer is None and w.item is None
        assert w._panel not in w.children and w._refusal in w.children
        refusal = w._refusal.value
        assert "You cannot review here" in refusal and "not allowed to review" in refusal
        assert f"widgetal labellers add {name} --reviewer" in refusal
        w.handle_key(_key("1"))
        w.undo()
    assert _review_leases(team) == 0
    assert team.labelled().empty and team.awaiting_review() == 1
    assert Reviewer(team, reviewer="rita").item.text == "odd film"


def test_a_reviewer_disabled_mid_session_is_refused_and_nothing_recorded(team):
    _disagree(team, ["odd film"])
    w = Reviewer(team, reviewer="rita")
    team.set_person_active("rita", False)
    w._label_buttons[0].click()
    assert w._refusal in w.children and "not allowed to review" in w._refusal.value
    assert team.labelled().empty and team.awaiting_review() == 1


def test_untrusted_text_and_names_are_shown_escaped_never_as_html(team):
    hostile = "<script>alert('x')</script> & <b>bold</b>"
    _disagree(team, [hostile], first=("<img src=x onerror=alert(1)>", "positive"),
              second=("<i>bob</i>", "negative"))
    team.add_person("<b>rita</b>", reviewer=True)
    w = Reviewer(team, reviewer="<b>rita</b>")
    assert "<script>" not in w._text.value
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in (
        w._text.value
    )
    given = w._given.value
    assert "<img" not in given and "<i>" not in given
    assert "&lt;img src=x onerror=alert(1)&gt;" in given and "&lt;i&gt;bob&lt;/i&gt;" in given
    assert "<b>rita</b>" not in w._who.value and "&lt;b&gt;rita&lt;/b&gt;" in w._who.value


def test_meta_fields_are_optional_and_escaped(team):
    import pandas as pd

    team.add(pd.DataFrame({"text": ["odd film"], "source": ["<i>web</i>"]}))
    for who, label in (("ana", "positive"), ("bob", "negative")):
        team.submit(team.pop(who).item_id, label, who)
    assert Reviewer(team, reviewer="rita")._meta.value == ""
    shown = Reviewer(team, reviewer="rita", show_meta=True)._meta.value
    assert "&lt;i&gt;web&lt;/i&gt;" in shown and "<i>" not in shown


def test_nothing_awaiting_review_says_so_and_check_again_finds_new_ones(team):
    team.add(["agreed film"])
    for who in ("ana", "bob"):
        team.submit(team.pop(who).item_id, "positive", who)
    w = Reviewer(team, reviewer="rita")
    assert w.item is None
    assert "Nothing to review: no item is waiting for you" in w.message
    assert "<b>0</b> awaiting review" in w._count.value
    assert all(b.disabled for b in [*w._label_buttons, w._send_back])
    assert w._retry.layout.display is None and w._retry.description == "Check again"
    w.decide("negative")
    assert "no item on screen" in w.message
    _disagree(team, ["odd film"])
    w._retry.click()
    assert w.item.text == "odd film"
    assert not any(b.disabled for b in w._label_buttons)


def test_held_keys_modifiers_and_unmapped_keys_do_nothing(team):
    _disagree(team, ["odd film"])
    w = Reviewer(team, reviewer="rita")
    w.handle_key(_key("1", repeat=True))
    w.handle_key(_key("2", ctrlKey=True))
    w.handle_key(_key("3"))  # only two labels
    w.handle_key(_key("x"))
    w.handle_key({"type": "keyup", "key": "1"})
    assert team.awaiting_review() == 1 and w.item.text == "odd film"


def test_another_reviewer_deciding_first_is_reported_and_the_next_shown(team):
    first, _second = _disagree(team, ["odd film", "strange film"])
    team.add_person("rob", reviewer=True)
    w = Reviewer(team, reviewer="rita")
    team.review(first, "positive", "rob")  # e.g. after rita's lease ran out
    w._label_buttons[0].click()
    assert "no longer awaits review" in w.message
    assert _final(team) == [("odd film", "positive", "rob", "review")]
    assert w.item.text == "strange film"


def test_database_outage_keeps_the_decision_until_retry_saves_it(team):
    _disagree(team, ["odd film", "strange film"])
    flaky = _FlakyQueue(team)
    w = Reviewer(flaky, reviewer="rita")
    flaky.down = {"all"}
    w._label_buttons[0].click()
    assert w.pending == ("decide", "negative")
    assert "Not saved yet" in w.message and "negative" in w.message
    assert w._retry.layout.display is None
    w._send_back.click()  # still down: the latest choice is what is kept
    assert w.pending == ("send back", None) and "send-back" in w.message
    w._label_buttons[1].click()
    assert w.pending == ("decide", "positive") and w.item.text == "odd film"
    flaky.down = set()
    assert team.labelled().empty
    w._retry.click()
    assert w.pending is None and w.message == ""
    assert _final(team) == [("odd film", "positive", "rita", "review")]
    assert w.item.text == "strange film"


def test_database_outage_on_undo_keeps_an_unsaved_decision_first(team):
    _disagree(team, ["odd film", "strange film"])
    flaky = _FlakyQueue(team)
    w = Reviewer(flaky, reviewer="rita")
    flaky.down = {"review"}
    w._label_buttons[0].click()
    w._undo.click()  # the unsaved decision is tried first and stays
    assert w.pending == ("decide", "negative") and "Not saved yet" in w.message
    flaky.down = {"undo_review"}
    w._undo.click()  # the decision is saved; then the undo itself fails
    assert w.pending is None and "Could not undo" in w.message
    assert _final(team) == [("odd film", "negative", "rita", "review")]
    flaky.down = set()
    w._undo.click()
    assert w.item.text == "odd film" and team.labelled().empty


def test_database_outage_on_fetching_the_next_item_offers_retry(team):
    _disagree(team, ["odd film", "strange film"])
    flaky = _FlakyQueue(team)
    w = Reviewer(flaky, reviewer="rita")
    flaky.down = {"pop_review"}
    w._label_buttons[0].click()  # saved, but the next item cannot be fetched
    assert w.item is None and "Cannot fetch the next item" in w.message
    assert all(b.disabled for b in w._label_buttons)
    assert _final(team) == [("odd film", "negative", "rita", "review")]
    flaky.down = set()
    w.retry()
    assert w.item.text == "strange film" and w.message == ""
    assert not any(b.disabled for b in w._label_buttons)


def test_reviewer_comes_from_the_voila_url_else_a_name_prompt(team, monkeypatch):
    _disagree(team, ["odd film"])
    monkeypatch.setenv("QUERY_STRING", "reviewer=rita&x=1")
    assert Reviewer(team).reviewer == "rita"
    monkeypatch.setenv("QUERY_STRING", "labeller=rita")  # a labeller's link is not a reviewer's
    w = Reviewer(team)
    assert w.reviewer is None and w._name_box in w.children
    w.start("  ")
    assert "Type your name" in w._name_message.value
    w._name.value = "rita"
    w._name_box.children[1].children[1].click()  # Start
    assert w.reviewer == "rita" and w.item.text == "odd film"


# -- the served notebook opens the reviewer for ?reviewer=NAME ----------------------------------


def _notebook_state(tmp_path, monkeypatch, url: str, query: str) -> str:
    pytest.importorskip("nbclient")
    from test_notebooks import _errors, _outputs, _run

    from widgetal.serve import LABEL_NOTEBOOK

    nb = _run(LABEL_NOTEBOOK, monkeypatch, WIDGETAL_DB_URL=url, QUERY_STRING=query,
              WIDGETAL_MODELS_DIR=str(tmp_path / "models"))
    assert not _errors(nb)
    assert _outputs(nb, "application/vnd.jupyter.widget-view+json")
    return json.dumps(nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_label_notebook_opens_the_reviewer_for_a_reviewer_url(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    q = Queue(url, labels=LABELS)
    q.configure(overlap=2)
    q.add_person("rita", reviewer=True)
    _disagree(q, ["odd <film>"])
    state = _notebook_state(tmp_path, monkeypatch, url, "reviewer=rita")
    assert "Review disagreements" in state and "Reviewing as <b>rita</b>" in state
    assert "odd &lt;film&gt;" in state and "<b>positive</b> (1): ana" in state
    state = _notebook_state(tmp_path, monkeypatch, url, "reviewer=ana")
    assert "You cannot review here" in state and "odd &lt;film&gt;" not in state
    state = _notebook_state(tmp_path, monkeypatch, url, "labeller=cy")
    assert "Label the text" in state and "Labelling as <b>cy</b>" in state
    q.engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_label_notebook_explains_an_unreachable_database_in_review_mode(tmp_path, monkeypatch):
    state = _notebook_state(
        tmp_path, monkeypatch, "postgresql://nobody:x@127.0.0.1:9/none?connect_timeout=2",
        "reviewer=rita",
    )
    assert "Cannot start reviewing" in state and "Cannot reach the database" in state


# -- multi-label projects: the labels given and the decision are sets ---------------------------

MULTI = ["billing", "urgent", "refund"]


@pytest.fixture
def multi_team(db_url):
    """A multi-label project with overlap 2: ana and bob label, rita reviews."""
    q = Queue(db_url, labels=MULTI, multi_label=True, lease_seconds=600)
    q.configure(overlap=2)
    q.add_person("rita", reviewer=True)
    yield q
    q.engine.dispose()


def _disagree_sets(q, texts, first=("ana", ["billing", "urgent"]), second=("bob", [])):
    return _disagree(q, texts, first, second)


def test_given_sets_are_shown_per_set_with_who_gave_them(multi_team):
    _disagree_sets(multi_team, ["odd mail"])
    w = Reviewer(multi_team, reviewer="rita")
    given = w._given.value
    assert "<b>billing + urgent</b> (1): ana" in given
    assert "<b>none of these</b> (1): bob" in given
    assert '["billing","urgent"]' not in given
    assert w._label_buttons == []
    assert [t.description for t in w._toggles.toggles] == ["billing (1)", "urgent (2)",
                                                          "refund (3)"]
    assert w._toggles.send.description == "Decide: none of these (Enter)"
    assert "widgetal-decide" in w._toggles.send._dom_classes
    assert w._keys.shortcuts == ["1", "2", "3", "Enter", "b", "B", "u", "U", "Backspace"]
    assert w._keys.hint.startswith("1–3 toggle · Enter decide · b send back")


def test_the_reviewer_decides_a_set_by_keys_and_the_empty_set_by_a_click(multi_team):
    _disagree_sets(multi_team, ["odd mail", "strange mail"])
    w = Reviewer(multi_team, reviewer="rita")
    w.handle_key(_key("3"))
    w.handle_key(_key("2"))
    assert w._toggles.send.description == "Decide: urgent + refund (Enter)"
    w.handle_key(_key("Enter"))
    assert w.item.text == "strange mail" and w.chosen == []  # the next item starts clear
    w._toggles.send.click()  # nothing on: none of these
    assert _final(multi_team) == [("odd mail", '["urgent","refund"]', "rita", "review"),
                                  ("strange mail", "[]", "rita", "review")]
    assert w.item is None and multi_team.awaiting_review() == 0


def test_undoing_a_decided_set_switches_it_on_again(multi_team):
    _disagree_sets(multi_team, ["odd mail", "strange mail"])
    w = Reviewer(multi_team, reviewer="rita")
    w.decide(["refund", "billing"])
    w.handle_key(_key("u"))
    assert w.item.text == "odd mail" and w.chosen == ["billing", "refund"]
    assert "billing + refund" in w.message
    w.handle_key(_key("1"))  # billing off: refund alone
    w.handle_key(_key("Enter"))
    assert _final(multi_team) == [("odd mail", '["refund"]', "rita", "review")]
    assert w.item.text == "strange mail"


def test_sending_back_a_set_item_and_refusing_a_bad_decision(multi_team):
    (item_id,) = _disagree_sets(multi_team, ["odd mail"])
    w = Reviewer(multi_team, reviewer="rita")
    w.decide(["nope"])
    assert "not in this project's label set" in w.message and "nothing was saved" in w.message
    w.decide("billing")
    assert "a list of labels" in w.message
    assert w.item.item_id == item_id and multi_team.awaiting_review() == 1
    w.handle_key(_key("1"))
    w.handle_key(_key("b"))  # send back, not decide
    assert w.item is None and multi_team.labelled().empty
    assert multi_team.pop("cy").item_id == item_id
    w.undo()  # the extra label has not arrived: the send-back is taken back
    assert w.item.item_id == item_id and w.chosen == []  # nothing was decided to switch on
    assert w.message == "Undone: your decision was taken back. Decide this item again."


def test_a_multi_label_reviewers_decision_survives_an_outage(multi_team):
    _disagree_sets(multi_team, ["odd mail"])
    flaky = _FlakyQueue(multi_team)
    w = Reviewer(flaky, reviewer="rita")
    flaky.down = {"review"}
    w.handle_key(_key("2"))
    w.handle_key(_key("Enter"))
    assert w.pending == ("decide", "urgent") and w.chosen == ["urgent"]
    flaky.down = set()
    w._retry.click()
    assert _final(multi_team) == [("odd mail", '["urgent"]', "rita", "review")]
