"""Multi-label projects on a real SQLite file and on PostgreSQL: answers are sets of labels.

Submit, undo, overlap and review with sets; progress per label; the setting fixed once labels
exist; ``widgetal init --multi-label`` and ``status``. Imports and exports of sets are in
test_multilabel_io.py.
"""

from __future__ import annotations

import pytest
from test_cli import run

from widgetal import Queue
from widgetal.errors import InvalidInput, LabelNotInLabelSet, NotAwaitingReview

LABELS = ["billing", "urgent", "refund"]


@pytest.fixture
def ml(db_url):
    q = Queue(db_url, labels=LABELS, multi_label=True)
    yield q
    q.engine.dispose()


@pytest.fixture
def team(ml):
    ml.configure(overlap=2)
    ml.add_person("rita", reviewer=True)
    return ml


def _state(q: Queue) -> tuple:
    """Everything a refused call must leave as it was."""
    p = q.progress()
    return (q.count_label_events(), p.done, p.per_label, q.awaiting_review(),
            q.labelled()[["item_id", "label"]].values.tolist(), len(q.events()))


def _label(q: Queue, who: str, answer) -> int:
    item = q.pop(who)
    assert item is not None, f"{who} got nothing"
    q.submit(item.item_id, answer, who)
    return item.item_id


def test_the_multi_label_setting_is_stored_in_the_project(ml, db_url):
    assert ml.multi_label
    assert Queue(db_url).multi_label  # whoever opens the database next agrees


def test_a_set_is_stored_in_project_order_from_a_list_a_set_or_nothing(ml):
    ml.add(["t1", "t2", "t3", "t4"])
    ids = [_label(ml, "ana", answer) for answer in
           (["urgent", "billing"], {"refund"}, [], ("urgent", "urgent"))]
    final = dict(zip(ml.labelled().item_id, ml.labelled().label))
    assert [final[i] for i in ids] == ['["billing","urgent"]', '["refund"]', "[]", '["urgent"]']
    assert ml.progress().done == 4


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (["billing", "spam"], LabelNotInLabelSet, r"\['spam'\] is not in this project's label"),
        ("billing", InvalidInput, "list of labels, e.g. \\['billing'\\], not the string"),
        ("[]", InvalidInput, "not the string '\\[\\]'"),
    ],
)
def test_a_bad_answer_is_refused_and_changes_nothing(ml, answer, error, message):
    ml.add(["t1", "t2"])
    item = ml.pop("ana")
    before = _state(ml)
    with pytest.raises(error, match=message):
        ml.submit(item.item_id, answer, "ana")
    with pytest.raises(error, match=message):
        ml.submit_and_pop(item.item_id, answer, "ana")
    assert _state(ml) == before
    assert ml.pop("ana").item_id == item.item_id  # still the labeller's, nothing else leased


def test_a_single_label_project_refuses_a_list(queue):
    queue.add(["t1"])
    item = queue.pop("ana")
    with pytest.raises(LabelNotInLabelSet, match="one label per text.*--multi-label"):
        queue.submit(item.item_id, ["positive"], "ana")
    assert queue.count_label_events() == 0 and queue.progress().done == 0
    assert not queue.multi_label


def test_undo_takes_the_set_back_and_a_new_set_can_be_given(ml):
    ml.add(["t1"])
    item_id = _label(ml, "ana", ["billing", "urgent"])
    assert ml.progress().per_label["billing"] == 1
    back = ml.undo("ana")
    assert back.item_id == item_id
    p = ml.progress()
    assert (p.done, p.per_label) == (0, {"billing": 0, "urgent": 0, "refund": 0, "[]": 0})
    assert ml.labelled().empty
    ml.submit(item_id, ["refund"], "ana")
    assert ml.labelled().label.tolist() == ['["refund"]']
    events = ml.events()
    assert events[["event", "label"]].values.tolist() == [
        ["label", '["billing","urgent"]'], ["undo", '["billing","urgent"]'],
        ["label", '["refund"]'],
    ]


def test_progress_counts_per_label_the_answers_holding_it_and_none_of_these_apart(ml):
    ml.add([f"t{i}" for i in range(5)])
    for answer in (["billing", "urgent"], ["billing"], [], []):
        _label(ml, "ana", answer)
    p = ml.progress("ana")
    assert p.per_label == {"billing": 2, "urgent": 1, "refund": 0, "[]": 2}
    assert list(p.per_label) == [*LABELS, "[]"]
    assert (p.done, p.left, p.mine, p.per_labeller) == (4, 1, 4, {"ana": 4})


def test_progress_of_a_single_label_project_has_no_none_of_these_entry(queue):
    queue.add(["t1"])
    _label(queue, "ana", "positive")
    assert queue.progress().per_label == {"negative": 0, "positive": 1}


# -- overlap and review ------------------------------------------------------------------------


def test_two_identical_sets_make_the_final_answer(team):
    team.add(["t1", "t2"])
    first = _label(team, "ana", ["urgent", "billing"])
    assert _label(team, "bob", {"billing", "urgent"}) == first
    empty = _label(team, "ana", [])
    assert _label(team, "bob", []) == empty
    final = dict(zip(team.labelled().item_id, team.labelled().label))
    assert final == {first: '["billing","urgent"]', empty: "[]"}
    assert team.awaiting_review() == 0 and team.progress().done == 2


def test_two_different_sets_wait_for_a_reviewer_who_decides_with_a_set(team):
    team.add(["t1"])
    item_id = _label(team, "ana", ["billing"])
    _label(team, "bob", ["billing", "urgent"])
    assert team.awaiting_review() == 1 and team.labelled().empty
    served = team.pop_review("rita")
    assert served.item_id == item_id
    assert sorted(served.labels) == [("ana", '["billing"]'), ("bob", '["billing","urgent"]')]
    before = _state(team)
    with pytest.raises(LabelNotInLabelSet, match="spam"):
        team.review(item_id, ["spam"], "rita")
    with pytest.raises(InvalidInput, match="list of labels"):
        team.review(item_id, "billing", "rita")
    assert _state(team) == before
    team.review(item_id, {"urgent", "refund"}, "rita")
    final = team.labelled()
    assert final[["item_id", "label", "labeller", "source"]].values.tolist() == [
        [item_id, '["urgent","refund"]', "rita", "review"]]
    with pytest.raises(NotAwaitingReview):
        team.review(item_id, ["billing"], "rita")


# -- the setting is fixed once labels exist ----------------------------------------------------


@pytest.mark.parametrize("start", [False, True])
def test_the_kind_of_project_cannot_change_once_labels_exist(db_url, start):
    q = Queue(db_url, labels=LABELS, multi_label=start, instructions="old")
    q.add(["t1"])
    _label(q, "ana", ["billing"] if start else "billing")
    other = "single-label" if start else "multi-label"
    with pytest.raises(InvalidInput, match=f"already holds 1 label, so it cannot become {other}"):
        Queue(db_url, labels=LABELS, multi_label=not start, instructions="new")
    again = Queue(db_url)
    assert again.multi_label is start and again.instructions == "old"
    assert again.count_label_events() == 1


def test_the_kind_of_project_may_change_before_any_label(db_url):
    Queue(db_url, labels=LABELS, multi_label=True).add(["t1"])
    assert not Queue(db_url, multi_label=False).multi_label
    assert Queue(db_url, multi_label=True).multi_label


# -- the command line --------------------------------------------------------------------------


def test_init_multi_label_is_stored_shown_by_status_and_kept_by_a_later_init(db_url):
    out = run("init", "--labels", "billing,urgent,refund", "--multi-label", db=db_url).stdout
    assert "multi-label" in out
    run("init", "--labels", "billing,urgent,refund", "--overlap", "2", db=db_url)
    assert Queue(db_url).multi_label  # init without the flag leaves it as it is
    status = run("status", db=db_url).stdout
    assert "(multi-label: each answer is a set of these)" in status
    assert "[] (none of these)" in status


def test_init_multi_label_on_a_project_with_single_labels_is_refused_and_changes_nothing(
    db_url,
):
    run("init", "--labels", "billing,urgent", "--instructions", "old", db=db_url)
    q = Queue(db_url)
    q.add(["t1"])
    _label(q, "ana", "urgent")
    proc = run("init", "--labels", "billing,urgent", "--multi-label", "--instructions", "new",
               "--overlap", "2", db=db_url, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "single-label and already holds 1 label, so it cannot become multi-label" in (
        proc.stderr)
    after = Queue(db_url)
    assert (after.multi_label, after.instructions, after.overlap) == (False, "old", 1)
    assert "multi-label" not in run("status", db=db_url).stdout
