"""Team labelling on a real SQLite file and on PostgreSQL: overlap, final labels, review."""

from __future__ import annotations

import multiprocessing as mp
import threading

import pytest
import sqlalchemy as sa

from widgetal import Queue
from widgetal.errors import (
    InvalidInput,
    ItemAlreadyLabelled,
    NotAReviewer,
    NotAwaitingReview,
    NothingToUndo,
)

LABELS = ["negative", "positive"]


@pytest.fixture
def team(db_url):
    q = Queue(db_url, labels=LABELS)
    q.configure(overlap=2)
    q.add_person("rita", reviewer=True)
    yield q
    q.engine.dispose()


def _label(q, who, label):
    item = q.pop(who)
    assert item is not None, f"{who} got nothing"
    q.submit(item.item_id, label, who)
    return item.item_id


def test_overlap_one_is_the_default_and_unchanged(queue):
    assert queue.overlap == 1
    queue.add(["a"])
    item = queue.pop("ana")
    assert queue.pop("bob") is None  # one lease per item, as before
    queue.submit(item.item_id, "positive", "ana")
    assert queue.progress().done == 1


def test_a_click_with_overlap_is_one_transaction(team):
    # submit_and_pop tries the one-statement click only while K is 1; with overlap it goes
    # straight to the locked path, which reads K afresh (a change back to 1 is seen there).
    team.add(["one", "two", "three"])
    item = team.pop("ana")
    begins = []

    def count(conn):
        begins.append(conn)

    sa.event.listen(team.engine, "begin", count)
    try:
        for _ in range(2):
            item = team.submit_and_pop(item.item_id, "positive", "ana")
    finally:
        sa.event.remove(team.engine, "begin", count)
    assert len(begins) == 2  # one transaction per click
    assert team.progress().per_labeller == {"ana": 2}


def test_each_item_goes_to_k_distinct_labellers_and_is_done_at_k(team):
    team.add(["only text"])
    a, b = team.pop("ana"), team.pop("bob")
    assert a.item_id == b.item_id  # two leases live on one item at once
    assert team.pop("cy") is None  # K slots taken
    assert team.pop("ana").item_id == a.item_id  # a reload gets the same item back
    team.submit(a.item_id, "positive", "ana")
    assert team.pop("ana") is None  # never the same item twice
    assert team.progress().done == 0
    team.submit(b.item_id, "positive", "bob")
    assert team.progress().done == 1 and team.pop("cy") is None
    with pytest.raises(ItemAlreadyLabelled, match="already has all the labels"):
        team.submit(a.item_id, "negative", "cy")


def test_a_labeller_cannot_label_one_item_twice(team):
    team.add(["x"])
    item = team.pop("ana")
    team.submit(item.item_id, "positive", "ana")
    with pytest.raises(ItemAlreadyLabelled, match="You already labelled"):
        team.submit(item.item_id, "negative", "ana")


def test_the_database_enforces_one_active_label_per_item_and_labeller(team):
    team.add(["x"])
    item_id = _label(team, "ana", "positive")
    with pytest.raises(sa.exc.IntegrityError), team.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO widgetal_labels (item_id, label, labeller, created_at) "
            f"VALUES ({item_id}, 'negative', 'ana', CURRENT_TIMESTAMP)"
        )


def test_skipped_items_are_not_served_to_that_labeller_again(team):
    team.add(["x", "y"])
    first = team.pop("ana")
    team.skip(first.item_id, "ana")
    assert team.pop("ana").item_id != first.item_id
    assert team.pop("bob").item_id == first.item_id  # others still get it


def test_agreeing_labels_are_final_and_disagreeing_ones_await_review(team):
    team.add(["agreed", "disputed"])
    for who, labels in (("ana", ["positive", "positive"]), ("bob", ["positive", "negative"])):
        for label in labels:
            _label(team, who, label)
    final = team.labelled()
    assert list(zip(final.text, final.label, final.source)) == [("agreed", "positive", "labels")]
    assert final.labeller.tolist() == ["ana,bob"]
    assert team.awaiting_review() == 1 and team.progress().awaiting_review == 1


def test_majority_setting_settles_a_disagreement_when_there_is_one(db_url):
    q = Queue(db_url, labels=LABELS)
    q.configure(overlap=3, on_disagreement="majority")
    q.add(["t"])
    for who, label in (("ana", "positive"), ("bob", "negative"), ("cy", "positive")):
        _label(q, who, label)
    final = q.labelled()
    assert (final.label.tolist(), final.source.tolist()) == (["positive"], ["majority"])
    assert q.awaiting_review() == 0


def test_a_reviewer_decides_and_can_undo(team):
    team.add(["disputed"])
    item_id = _label(team, "ana", "positive")
    _label(team, "bob", "negative")
    shown = team.pop_review("rita")
    assert shown.item_id == item_id
    assert sorted(shown.labels) == [("ana", "positive"), ("bob", "negative")]
    team.review(item_id, "negative", "rita")
    assert team.labelled()[["label", "source", "labeller"]].values.tolist() == [
        ["negative", "review", "rita"]]
    assert team.pop_review("rita") is None
    with pytest.raises(NothingToUndo, match="decided by reviewer rita"):
        team.undo("ana")  # a label under a decision stays
    back = team.undo_review("rita")
    assert back.item_id == item_id and team.labelled().empty
    assert team.pop_review("rita").item_id == item_id  # back in review, held by rita


def test_review_is_exactly_once(team):
    team.add_person("rob", reviewer=True)
    team.add(["one", "two"])
    for who, label in (("ana", "positive"), ("bob", "negative")):
        _label(team, who, label)
        _label(team, who, label)
    first, second = team.pop_review("rita"), team.pop_review("rob")
    assert {first.item_id, second.item_id} == {1, 2}
    assert team.pop_review("rita").item_id == first.item_id  # held, not a new one
    team.review(first.item_id, "positive", "rita")
    with pytest.raises(NotAwaitingReview):
        team.review(first.item_id, "negative", "rob")  # decided already: refused, nothing kept
    assert team.labelled().set_index("item_id").label[first.item_id] == "positive"


def test_send_back_asks_for_one_more_label(team):
    team.add(["disputed"])
    item_id = _label(team, "ana", "positive")
    _label(team, "bob", "negative")
    team.pop_review("rita")
    team.review(item_id, None, "rita")  # send back
    assert team.pop("ana") is None and team.pop("bob") is None
    _label(team, "cy", "positive")
    assert team.awaiting_review() == 1  # 2 vs 1 is still a disagreement under "review"
    team.configure(on_disagreement="majority")
    assert team.labelled().label.tolist() == ["positive"]


def test_only_registered_reviewers_review_and_only_disagreements(team):
    team.add(["agreed", "disputed"])
    _label(team, "ana", "positive")
    _label(team, "bob", "positive")
    with pytest.raises(NotAReviewer, match="widgetal labellers add ana --reviewer"):
        team.pop_review("ana")
    with pytest.raises(NotAwaitingReview):
        team.review(1, "negative", "rita")
    with pytest.raises(NotAReviewer):
        team.review(1, "negative", "ana")
    assert team.labelled().label.tolist() == ["positive"]


def test_a_labeller_undoing_during_review_wins_over_a_late_decision(team):
    team.add(["disputed"])
    item_id = _label(team, "ana", "positive")
    _label(team, "bob", "negative")
    team.pop_review("rita")
    team.undo("bob")  # bob changes his mind: the item is incomplete again
    with pytest.raises(NotAwaitingReview):
        team.review(item_id, "negative", "rita")
    team.submit(item_id, "positive", "bob")
    assert team.labelled().label.tolist() == ["positive"]


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_overlap_must_be_a_whole_number_of_at_least_one(team, k):
    with pytest.raises(InvalidInput, match="at least 1"):
        team.configure(overlap=k)
    assert team.overlap == 2


def test_labels_record_the_run_and_priority_they_were_served_with(team):
    team.add(["a", "b"])
    team.reorder([1, 2], [0.9, 0.1], ranked_by=7)
    _label(team, "ana", "positive")
    team.reorder([1, 2], [0.1, 0.2], ranked_by=8)
    events = team.events()
    first = events[events.event == "label"].iloc[0]
    assert (first.ranked_by, first.priority) == (7, 0.9)


def test_events_hold_labels_undos_skips_and_reviews(team):
    team.add(["a", "b"])
    first = team.pop("ana")
    team.skip(first.item_id, "ana")
    _label(team, "ana", "positive")
    team.undo("ana")
    assert team.events().event.tolist() == ["skip", "label", "undo"]


# -- concurrency ------------------------------------------------------------------------------


def _label_all(url: str, labeller: str, out) -> None:
    q = Queue(url)
    got = []
    while (item := q.pop(labeller)) is not None:
        try:
            q.submit(item.item_id, "positive" if item.item_id % 2 else "negative", labeller)
            got.append(item.item_id)
        except ItemAlreadyLabelled:
            pass  # a slot filled by someone else meanwhile: take the next text
    out.put((labeller, got))


def test_sixteen_processes_with_k3_give_every_item_three_distinct_labels(db_url):
    q = Queue(db_url, labels=LABELS)
    q.configure(overlap=3)
    q.add([f"text {i}" for i in range(120)])
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_label_all, args=(db_url, f"w{i}", out)) for i in range(16)]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    table = q.label_table()
    per_item = table.groupby("item_id").labeller.agg(["size", "nunique"])
    assert len(per_item) == 120
    assert (per_item["size"] == 3).all() and (per_item["nunique"] == 3).all()
    assert sum(len(got) for _, got in results) == 360  # every accepted label is there
    assert q.progress().done == 120 and len(q.labelled()) == 120


def test_a_reviewer_and_a_labeller_at_once_never_both_finalise(db_url):
    q = Queue(db_url, labels=LABELS)
    q.configure(overlap=2)
    q.add_person("rita", reviewer=True)
    q.add([f"t{i}" for i in range(30)])
    for who, label in (("ana", "positive"), ("bob", "negative")):
        while (item := q.pop(who)) is not None:
            q.submit(item.item_id, label, who)
    errors = []

    def reviewer():
        while (item := q.pop_review("rita")) is not None:
            try:
                q.review(item.item_id, "positive", "rita")
            except NotAwaitingReview:
                continue  # bob reopened it first: the next one
            except Exception as exc:  # noqa: BLE001 - the test reports any other failure
                errors.append(exc)
                return

    def labeller():
        for _ in range(30):
            try:
                q.undo("bob")
            except NothingToUndo:
                continue
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
                return

    threads = [threading.Thread(target=reviewer), threading.Thread(target=labeller)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    final = q.labelled().set_index("item_id")
    per_item = q.label_table().groupby("item_id").size()
    # a decision stands only on a complete item; an item bob reopened has no final label
    assert (final.source == "review").all()
    assert (per_item.reindex(final.index) == 2).all()
    # every item is exactly one of: decided, awaiting review, or reopened by bob (one label)
    reopened = int((per_item == 1).sum())
    assert len(final) + q.awaiting_review() + reopened == 30


# -- imports under overlap (issue 14: an imported label is one of the K) ----------------------


def test_imported_labels_are_one_of_k_and_reimporting_the_export_adds_nothing(db_url, tmp_path):
    q = Queue(db_url, labels=LABELS)
    q.configure(overlap=2)
    q.add_person("rita", reviewer=True)
    path = tmp_path / "seed.csv"
    path.write_text("id,text,label,labeller\n1,a,positive,ana\n2,b,negative,ana\n")
    first = q.add(path, id="id", label="label")
    assert first.labels_added == 2 and q.progress().done == 0  # each is one of two
    assert q.pop("ana") is None  # ana gave her label to both already
    second = tmp_path / "more.csv"
    second.write_text("id,text,label,labeller\n1,a,positive,bob\n2,b,positive,bob\n")
    result = q.add(second, id="id", label="label")
    assert result.labels_added_existing == 2 and q.progress().done == 2
    assert q.awaiting_review() == 1  # item 2: ana negative, bob positive
    item = q.pop_review("rita")
    q.review(item.item_id, "negative", "rita")
    out = tmp_path / "export.csv"
    q.labelled().to_csv(out, index=False)
    again = q.add(out)
    assert (again.added, again.labels_already_present, len(again.label_conflicts)) == (0, 2, 0)
    changed = tmp_path / "changed.csv"
    changed.write_text("id,text,label,labeller\n1,a,negative,ana\n")
    with pytest.raises(InvalidInput, match="'positive' → 'negative'"):
        q.add(changed, id="id", label="label")
    replaced = q.add(changed, id="id", label="label", on_conflict="replace")
    assert replaced.conflicts_replaced and q.awaiting_review() == 1  # now ana and bob disagree


def test_a_stale_idea_of_k_in_another_process_cannot_complete_an_item_early(db_url):
    app = Queue(db_url, labels=LABELS)  # a labeller's app, which read K = 1
    app.add(["a", "b"])
    held = app.pop("ana")
    admin = Queue(db_url)
    admin.configure(overlap=2)  # the team lead raises K while ana's page is open
    app.submit(held.item_id, "positive", "ana")
    assert admin.progress().done == 0 and admin.labelled().empty  # one label of two
    assert admin.pop("bob").item_id == held.item_id
