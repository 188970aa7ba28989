"""Queue semantics on a real SQLite file and on PostgreSQL."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from widgetal import Queue, schema
from widgetal.errors import (
    DatabaseUnavailable,
    ItemAlreadyLabelled,
    LabelNotInLabelSet,
    LabelSetMismatch,
    NothingToUndo,
    NotInitialised,
    SchemaVersionMismatch,
    UnknownItem,
)
from widgetal.schema import settings

LABELS = ["negative", "positive"]


def _texts(n: int) -> list[str]:
    return [f"text number {i}" for i in range(n)]


def test_pop_serves_highest_priority_first(queue):
    queue.add(_texts(5))
    ids = [i.item_id for i in queue.items(range(1, 6))]
    queue.reorder(ids, [0.1, 0.9, 0.5, 0.7, 0.3])
    order = []
    for _ in ids:
        item = queue.pop("ana")
        order.append(item.item_id)
        queue.submit(item.item_id, "positive", "ana")
    assert order == [ids[1], ids[3], ids[2], ids[4], ids[0]]
    assert queue.pop("ana") is None


def test_pop_never_hands_out_a_leased_item(queue):
    queue.add(_texts(3))
    seen = {queue.pop(name).item_id for name in ("ana", "bob", "cy")}
    assert len(seen) == 3
    assert queue.pop("dee") is None  # all three leased, none free


def test_labeller_holding_a_lease_gets_the_same_item_back(queue):
    queue.add(_texts(3))
    first = queue.pop("ana")
    assert queue.pop("ana").item_id == first.item_id
    assert queue.pop("bob").item_id != first.item_id


def test_expired_lease_returns_item_to_the_queue(db_url):
    q = Queue(db_url, labels=LABELS, lease_seconds=0.3)
    q.add(["only one"])
    held = q.pop("ana")
    assert q.pop("bob") is None
    time.sleep(0.5)
    again = q.pop("bob")
    assert again is not None and again.item_id == held.item_id


def test_item_abandoned_by_a_killed_process_returns_after_lease(db_url):
    q = Queue(db_url, labels=LABELS, lease_seconds=1.0)
    q.add(["abandoned text", "other text"])
    code = (
        "import os, signal, sys\n"
        "from widgetal import Queue\n"
        f"q = Queue({db_url!r}, lease_seconds=1.0)\n"
        "item = q.pop('crashing')\n"
        "print(item.item_id, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9
    abandoned = int(proc.stdout.split()[0])
    other = q.pop("bob")
    assert other.item_id != abandoned  # still leased to the dead process
    q.submit(other.item_id, "negative", "bob")
    time.sleep(1.2)
    assert q.pop("bob").item_id == abandoned


def test_submit_refuses_a_label_outside_the_label_set(queue):
    queue.add(_texts(1))
    item = queue.pop("ana")
    with pytest.raises(LabelNotInLabelSet, match="'neutral' is not in"):
        queue.submit(item.item_id, "neutral", "ana")
    assert queue.progress().done == 0
    assert queue.labelled().empty


def test_second_label_for_a_done_item_is_refused_and_first_kept(queue):
    queue.add(_texts(1))
    item = queue.pop("ana")
    queue.submit(item.item_id, "positive", "ana")
    with pytest.raises(ItemAlreadyLabelled, match="already labelled"):
        queue.submit(item.item_id, "negative", "bob")
    labelled = queue.labelled()
    assert labelled[["item_id", "label", "labeller"]].values.tolist() == [
        [item.item_id, "positive", "ana"]
    ]


def test_submit_and_pop_records_the_label_and_leases_the_next_item_at_once(queue):
    queue.add(_texts(3))
    first = queue.pop("ana")
    second = queue.submit_and_pop(first.item_id, "positive", "ana", seconds=1.5)
    assert second is not None and second.item_id != first.item_id
    assert queue.labelled()[["item_id", "label", "seconds"]].values.tolist() == [
        [first.item_id, "positive", 1.5]
    ]
    assert queue.pop("ana").item_id == second.item_id  # leased to ana
    assert queue.pop("bob").item_id not in (first.item_id, second.item_id)



def test_the_item_a_click_hands_out_reads_as_the_queue_reads_it(queue):
    # On PostgreSQL the click's rows come from psycopg itself (Database.hot), past
    # SQLAlchemy's result handling: every field must still read as items() reads it.
    queue.add(pd.DataFrame({"text": ["one", "two", "three"], "source": ["a", "b", "c"]}))
    queue.reorder([1, 2, 3], [0.9, 0.5, 0.1], ranked_by=4,
                  guesses=(["positive", "negative", "positive"], [0.8, 0.6, 0.7]))
    first = queue.pop("ana")
    second = queue.submit_and_pop(first.item_id, "positive", "ana")
    assert second == queue.items([second.item_id])[0]
    assert (second.item_id, second.meta, second.ranked_by, second.guess_label) == (
        2, {"source": "b"}, 4, "negative")
    assert type(second.priority) is float and second.priority == 0.5
    assert second.guess_proba == pytest.approx(0.6) and second.audit is False


def test_a_label_records_what_its_labeller_was_served(queue):
    # Provenance comes from the item row the first label closes (one statement on PostgreSQL,
    # two on SQLite): the priority and ranking run it was served with, not the later ones.
    queue.add(_texts(3))
    queue.reorder([1, 2, 3], [0.9, 0.5, 0.1], ranked_by=7)
    served = queue.pop("ana")
    queue.reorder([1, 2, 3], [0.2, 0.3, 0.4], ranked_by=8)  # re-ranked while ana reads
    following = queue.submit_and_pop(served.item_id, "positive", "ana", seconds=2.5)
    queue.submit(following.item_id, "negative", "ana", seconds=4.0)
    events = queue.events()
    assert events[["item_id", "label", "labeller", "seconds", "ranked_by", "priority"]
                  ].values.tolist() == [[1, "positive", "ana", 2.5, 7, 0.9],
                                        [3, "negative", "ana", 4.0, 8, 0.4]]
    assert queue.labelled(audit_column=True).audit.tolist() == [False, False]


def test_submit_and_pop_hands_back_a_lease_the_labeller_holds_on_another_item(queue):
    queue.add(_texts(3))
    held = queue.pop("ana")
    other = next(i for i in queue.items([1, 2, 3]) if i.item_id != held.item_id)
    assert queue.submit_and_pop(other.item_id, "positive", "ana").item_id == held.item_id


def test_submit_and_pop_after_the_lease_ran_out_never_hands_back_the_labelled_item(db_url):
    # The labelled item is the best free one again once its lease ran out: the next text
    # must be another (PostgreSQL labels and leases in one statement, on one snapshot).
    q = Queue(db_url, labels=LABELS, lease_seconds=0.2)
    q.add(_texts(2))
    q.reorder([1, 2], [0.9, 0.1])
    first = q.pop("ana")
    time.sleep(0.4)
    following = q.submit_and_pop(first.item_id, "positive", "ana")
    assert (first.item_id, following.item_id) == (1, 2)
    assert q.labelled().item_id.tolist() == [1]
    assert q.submit_and_pop(following.item_id, "negative", "ana") is None
    assert q.progress().done == 2

def test_submit_and_pop_is_all_or_nothing(queue):
    queue.add(_texts(2))
    first = queue.pop("ana")
    queue.submit(first.item_id, "positive", "ana")
    with pytest.raises(ItemAlreadyLabelled):
        queue.submit_and_pop(first.item_id, "negative", "bob")
    assert queue.pop("cy") is not None  # bob was not leased the other item
    assert queue.labelled().label.tolist() == ["positive"]


def test_submit_to_unknown_item_says_so(queue):
    with pytest.raises(UnknownItem):
        queue.submit(12345, "positive", "ana")


def test_undo_keeps_history_and_hands_item_back_to_that_labeller(queue):
    queue.add(_texts(3))
    first = queue.pop("ana")
    queue.submit(first.item_id, "positive", "ana", seconds=2.5)
    on_screen = queue.pop("ana")
    back = queue.undo("ana")
    assert back.item_id == first.item_id
    assert queue.progress().done == 0
    assert queue.pop("ana").item_id == first.item_id  # leased to ana again
    assert queue.pop("bob").item_id == on_screen.item_id  # ana's other item was released
    with queue.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT label, labeller, undone_at IS NOT NULL FROM widgetal_labels"
        ).all()
    assert [tuple(r) for r in rows] == [("positive", "ana", True)]
    queue.submit(first.item_id, "negative", "ana")
    assert queue.labelled().label.tolist() == ["negative"]


def test_undo_without_labels_says_nothing_to_undo(queue):
    with pytest.raises(NothingToUndo):
        queue.undo("ana")


def test_skip_hides_item_from_that_labeller_only(queue):
    queue.add(_texts(2))
    first = queue.pop("ana")
    queue.skip(first.item_id, "ana")
    second = queue.pop("ana")
    assert second.item_id != first.item_id
    queue.submit(second.item_id, "negative", "ana")
    assert queue.pop("ana") is None
    assert queue.pop("bob").item_id == first.item_id


def test_reorder_touches_only_items_not_done_and_keeps_leases(queue):
    queue.add(_texts(4))
    done = queue.pop("ana")
    queue.submit(done.item_id, "positive", "ana")
    leased = queue.pop("bob")
    ids = [done.item_id, leased.item_id] + [
        i for i in range(1, 5) if i not in (done.item_id, leased.item_id)
    ]
    changed = queue.reorder(ids, [5.0, 4.0, 3.0, 2.0], ranked_by=None)
    assert changed == 3
    items = {i.item_id: i for i in queue.items(ids)}
    assert items[done.item_id].priority == 0.0
    assert items[leased.item_id].priority == 4.0
    assert queue.pop("bob").item_id == leased.item_id  # lease survived
    assert queue.pop("cy").item_id == ids[2]


def test_reorder_rejects_mismatched_or_nan_scores(queue):
    queue.add(_texts(2))
    with pytest.raises(ValueError, match="same length"):
        queue.reorder([1, 2], [0.5])
    with pytest.raises(ValueError, match="finite"):
        queue.reorder([1, 2], [0.5, float("nan")])


def test_progress_counts_per_label_and_labeller(queue):
    queue.add(_texts(5))
    for name, label in [("ana", "positive"), ("ana", "negative"), ("bob", "positive")]:
        item = queue.pop(name)
        queue.submit(item.item_id, label, name)
    p = queue.progress("ana")
    assert (p.total, p.done, p.left, p.mine) == (5, 3, 2, 2)
    assert p.per_label == {"negative": 1, "positive": 2}
    assert p.per_labeller == {"ana": 2, "bob": 1}


def test_progress_agrees_with_counting_the_rows_after_imports_undo_and_a_failed_import(
    queue, db_url
):
    from widgetal.errors import InvalidInput

    queue.add(_texts(30))
    queue.add(_texts(40))  # 30 already there
    Queue(db_url).add(["from another process"])
    with pytest.raises(InvalidInput):
        queue.add(pd.DataFrame({"id": ["x", "x"], "text": ["a", "b"]}), id="id")
    for name in ("ana", "bob", "ana"):
        queue.submit(queue.pop(name).item_id, "positive", name)
    queue.undo("ana")
    with queue.engine.connect() as conn:
        rows, done = conn.exec_driver_sql(
            "SELECT count(*), count(done_at) FROM widgetal_items"
        ).one()
    p = queue.progress("ana")
    assert (p.total, p.done) == (rows, done) == (41, 2)


def test_progress_does_not_count_the_items_table(queue):
    """Read on every click: at a million items a count over them costs ~100 ms."""
    queue.add(_texts(10))
    statements = []
    sa.event.listen(
        queue.engine, "before_cursor_execute", lambda c, cur, st, *a: statements.append(st)
    )
    queue.progress("ana")
    counting_items = [s for s in statements if "count(" in s.lower() and "widgetal_items" in s]
    assert not counting_items, counting_items


def test_reopening_with_another_label_set_is_refused(db_url):
    Queue(db_url, labels=LABELS)
    with pytest.raises(LabelSetMismatch, match="label set is"):
        Queue(db_url, labels=["spam", "ham"])
    assert Queue(db_url).labels == LABELS


def test_submit_before_init_says_to_run_init(db_url):
    q = Queue(db_url)
    q.add(["a text"])
    with pytest.raises(NotInitialised, match="widgetal init"):
        q.submit(q.pop("ana").item_id, "positive", "ana")


def test_database_of_another_schema_version_is_refused(db_url):
    q = Queue(db_url, labels=LABELS)
    with q.engine.begin() as conn:
        conn.execute(settings.update().where(settings.c.key == "schema_version").values(value=99))
    with pytest.raises(SchemaVersionMismatch, match="schema version 99"):
        Queue(db_url)


def test_unreachable_database_gives_a_clear_error(tmp_path):
    with pytest.raises(DatabaseUnavailable, match="Cannot reach the database"):
        Queue("postgresql://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable, match="Cannot reach"):
        Queue(f"sqlite:///{tmp_path}/no/such/dir/x.db")


def test_password_is_not_shown_in_errors():
    with pytest.raises(DatabaseUnavailable) as info:
        Queue("postgresql://nobody:hunter2@127.0.0.1:1/none")
    assert "hunter2" not in str(info.value)


def test_a_bulk_import_refreshes_postgresql_planner_statistics(postgres_url):
    q = Queue(postgres_url, labels=LABELS)
    q.add(_texts(2_000))
    with q.engine.connect() as conn:
        estimates = [
            conn.exec_driver_sql(
                f"SELECT reltuples FROM pg_class WHERE oid = '{table}'::regclass"
            ).scalar()
            for table in ("widgetal_items", "widgetal_ranks")
        ]
        plan = "\n".join(
            r[0]
            for r in conn.exec_driver_sql(
                "EXPLAIN SELECT i.id FROM widgetal_ranks AS r "
                "JOIN widgetal_items AS i ON i.id = r.item_id WHERE i.done_at IS NULL "
                "ORDER BY r.priority DESC, r.item_id LIMIT 1"
            )
        )
    assert estimates == [2_000, 2_000]  # without ANALYZE the planner would think them empty
    assert "widgetal_ranks_order" in plan  # pops walk the index, not the table


# -- concurrency ------------------------------------------------------------------------------


def _label_until_empty(url: str, labeller: str, out) -> None:
    q = Queue(url)
    got = []
    while (item := q.pop(labeller)) is not None:
        q.submit(item.item_id, "positive", labeller)
        got.append(item.item_id)
    out.put((labeller, got))


def test_sixteen_processes_label_every_item_exactly_once(db_url):
    q = Queue(db_url, labels=LABELS)
    q.add(_texts(480))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_label_until_empty, args=(db_url, f"worker{i}", out)) for i in range(16)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    handed_out = [i for _, got in results for i in got]
    assert sorted(handed_out) == list(range(1, 481))
    labels = q.labelled()
    assert len(labels) == 480 and labels.item_id.is_unique
    assert labels.labeller.nunique() > 1  # the work really was shared


def test_pops_during_a_reorder_neither_fail_nor_duplicate(db_url):
    q = Queue(db_url, labels=LABELS)
    n = 30_000
    q.add(_texts(n))
    ids = np.arange(1, n + 1)
    rng = np.random.default_rng(0)
    errors: list[BaseException] = []
    seen: list[int] = []
    stop = threading.Event()

    def labeller(name: str) -> None:
        local = Queue(db_url)
        try:
            while not stop.is_set():
                item = local.pop(name)
                assert item is not None, "pop found nothing while items were left"
                seen.append(item.item_id)
                local.submit(item.item_id, "negative", name)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=labeller, args=(f"l{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for _ in range(3):
        q.reorder(ids, rng.random(n))
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(seen) == len(set(seen)) > 0
    assert q.progress().done == len(seen)


def test_items_added_labelled_or_reopened_during_reorders_keep_their_place_in_the_queue(db_url):
    """Whatever happens while the ranks are written anew (on PostgreSQL, in a new table while
    labellers use the old one), afterwards exactly the items not done are in the queue: new
    texts and reopened ones are handed out, labelled ones are not."""
    q = Queue(db_url, labels=LABELS)
    n = 25_000  # large enough to take the rewrite path
    q.add(_texts(n))
    rng = np.random.default_rng(1)
    errors: list[BaseException] = []
    stop = threading.Event()

    def others() -> None:
        local = Queue(db_url)
        k = 0
        try:
            while not stop.is_set():
                k += 1
                local.add([f"added during a reorder {k}"])
                item = local.pop("ana")
                local.submit(item.item_id, "negative", "ana")
                if k % 2:  # every other label taken back: its item is reopened (and held)
                    local.undo("ana")
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=others)
    worker.start()
    for _ in range(3):
        ids = np.arange(1, n + 1)
        q.reorder(ids, rng.random(n))
    stop.set()
    worker.join(timeout=120)
    assert not errors, errors
    with q.db.read() as conn:
        undone = {r.id for r in conn.execute(
            sa.select(schema.items.c.id).where(schema.items.c.done_at.is_(None)))}
        ranked = {r.item_id for r in conn.execute(sa.select(schema.ranks.c.item_id))}
    assert ranked == undone
    added = sorted(i for i in undone if i > n)
    assert added  # texts added during the reorders were queued, and come out of it
    q.reorder(added, [1e6 + k for k in range(len(added))])
    assert q.pop("bo").item_id == added[-1]


def test_an_id_beyond_any_item_changes_no_other_item(queue):
    # PostgreSQL's item key is a 32-bit integer: 2**32 + 2 must not land on item 2.
    queue.add(_texts(3))
    assert queue.reorder([1, 2**32 + 2], [0.5, 0.9], ranked_by=1,
                         guesses=(["positive", "negative"], [0.6, 0.7])) == 1
    got = {i.item_id: (i.priority, i.guess_label) for i in queue.items([1, 2, 3])}
    assert got == {1: (0.5, "positive"), 2: (0.0, None), 3: (0.0, None)}


def test_reorder_is_one_statement_per_chunk_not_per_row(queue):
    queue.add(_texts(2_000))
    statements = []

    def count(conn, cursor, statement, *args):
        if "UPDATE" in statement.upper():
            statements.append(statement)

    sa.event.listen(queue.engine, "before_cursor_execute", count)
    try:
        queue.reorder(list(range(1, 2_001)), list(np.linspace(0, 1, 2_000)))
    finally:
        sa.event.remove(queue.engine, "before_cursor_execute", count)
    assert len(statements) == 1


def test_a_reorder_of_most_of_the_queue_leaves_its_indexes_as_they_were(queue):
    # Large enough that the ranks are written anew (SQLite: the order index dropped and built
    # again; PostgreSQL: a new table, its key and index renamed as they were, swapped in).
    n = 25_000
    queue.add(_texts(n))
    indexes = _indexes(queue)
    scores = np.random.default_rng(1).random(n)
    dropped = []

    def spy(conn, cursor, statement, *args):
        if statement.strip().upper().startswith("DROP INDEX"):
            dropped.append(statement)

    sa.event.listen(queue.engine, "before_cursor_execute", spy)
    try:
        assert queue.reorder(np.arange(1, n + 1), scores) == n
    finally:
        sa.event.remove(queue.engine, "before_cursor_execute", spy)
    assert bool(dropped) == (queue.dialect == "sqlite")  # the rebuild path ran (SQLite only)
    assert _indexes(queue) == indexes
    best = (np.argsort(-scores, kind="stable")[:5] + 1).tolist()
    assert [queue.pop(f"l{i}").item_id for i in range(5)] == best


def _indexes(queue) -> list[tuple]:
    """The items' and ranks' indexes (name, columns, order, uniqueness and WHERE clause) and
    the ranks' key and columns."""
    inspector = sa.inspect(queue.engine)
    ranks = inspector.get_pk_constraint("widgetal_ranks")
    columns = [(c["name"], str(c["type"]), c["nullable"], c["default"])
               for c in inspector.get_columns("widgetal_ranks")]
    return [ranks["name"], ranks["constrained_columns"], columns] + sorted(
        (ix["name"], tuple(ix["column_names"]), str(ix.get("column_sorting")), ix["unique"],
         sorted((k, str(v)) for k, v in ix.get("dialect_options", {}).items()))
        for table in ("widgetal_items", "widgetal_ranks")
        for ix in inspector.get_indexes(table)
    )


def test_reorder_with_guesses_is_one_statement_per_chunk_too(queue):
    queue.add(_texts(2_000))
    statements = []

    def count(conn, cursor, statement, *args):
        if "UPDATE" in statement.upper():
            statements.append(statement)

    guesses = (["positive", "negative"] * 1_000, list(np.linspace(0.5, 1, 2_000)))
    sa.event.listen(queue.engine, "before_cursor_execute", count)
    try:
        queue.reorder(list(range(1, 2_001)), list(np.linspace(0, 1, 2_000)), ranked_by=3,
                      guesses=guesses)
    finally:
        sa.event.remove(queue.engine, "before_cursor_execute", count)
    assert len(statements) == 1
    item = queue.pop("ana")  # the best: the last item, with its guess
    assert (item.item_id, item.ranked_by, item.guess_label) == (2_000, 3, "negative")
    assert item.guess_proba == pytest.approx(1.0)


def test_guesses_go_to_undone_items_only_and_a_reorder_without_them_clears_them(queue):
    queue.add(_texts(3))
    done = queue.pop("ana")
    queue.submit(done.item_id, "positive", "ana")
    queue.reorder([1, 2, 3], [0.1, 0.2, 0.3], ranked_by=1,
                  guesses=(["negative"] * 3, [0.6, 0.7, 0.8]))
    by_id = {i.item_id: i for i in queue.items([1, 2, 3])}
    assert (by_id[done.item_id].guess_label, by_id[done.item_id].guess_proba) == (None, None)
    assert {(i.guess_label, i.ranked_by) for k, i in by_id.items() if k != done.item_id} == {
        ("negative", 1)
    }
    queue.reorder([2, 3], [0.5, 0.4], ranked_by=2)  # a run without a model's guesses
    assert [(i.guess_label, i.guess_proba, i.ranked_by) for i in queue.items([2, 3])] == [
        (None, None, 2), (None, None, 2)
    ]


def test_guesses_and_scores_come_back_exactly_whatever_the_labels_spell(db_url):
    # PostgreSQL gets the numbers in binary (COPY) and each guess as its label's place in the
    # label list: labels with the characters array syntax uses must come back as they were.
    labels = ['a, "b"', "{c}", "back\\slash", "NULL", "é ü"]
    queue = Queue(db_url, labels=labels)
    queue.add(_texts(5))
    scores = [1e-300, 0.1 + 0.2, 1 / 3, 12345.678901234567, 2.0 ** 60]
    probas = [0.0, 1 / 7, 0.5, 0.9999999999999999, 1.0]
    queue.reorder([1, 2, 3, 4, 5], scores, ranked_by=4, guesses=(labels, probas))
    by_id = {i.item_id: i for i in queue.items([1, 2, 3, 4, 5])}
    assert [by_id[i].guess_label for i in range(1, 6)] == labels
    assert [by_id[i].guess_proba for i in range(1, 6)] == probas
    assert [by_id[i].priority for i in range(1, 6)] == scores
    queue.engine.dispose()


def test_a_reloaded_page_gets_its_text_back_at_the_priority_it_was_served(queue):
    # A reorder between the pop and the reload does not change what the labeller was served,
    # which is what their label records.
    queue.add(_texts(3))
    queue.reorder([1, 2, 3], [0.9, 0.5, 0.1], ranked_by=1)
    held = queue.pop("ana")
    queue.reorder([1, 2, 3], [0.2, 0.5, 0.8], ranked_by=2)
    again = queue.pop("ana")  # the page reloaded
    assert (again.item_id, again.priority, again.ranked_by) == (held.item_id, 0.9, 1)
    queue.submit(again.item_id, "positive", "ana")
    assert queue.events()[["item_id", "priority", "ranked_by"]].values.tolist() == [
        [held.item_id, 0.9, 1]
    ]


@pytest.mark.parametrize("n", [50, 20_000])  # in place, and the rewrite of the whole order
def test_scores_and_guesses_given_in_any_order_land_on_their_own_items(db_url, n):
    # An orchestrator's scores come in pool order; reorder writes them in key order.
    queue = Queue(db_url, labels=["negative", "positive"])
    queue.add(_texts(n))
    rng = np.random.default_rng(3)
    ids = rng.permutation(np.arange(1, n + 1))
    scores = rng.random(n)
    labels = np.where(scores > 0.5, "positive", "negative")
    probas = np.round(rng.uniform(0.5, 1, n), 6)
    queue.reorder(ids, scores, ranked_by=7, guesses=(labels, list(probas)))
    given = {int(i): (s, str(g), p) for i, s, g, p in zip(ids, scores, labels, probas)}
    some = sorted(rng.choice(ids, 40, replace=False).tolist())
    assert {i.item_id: (i.priority, i.guess_label, i.guess_proba) for i in queue.items(some)} == {
        i: given[i] for i in some
    }
    assert queue.pop("ana").item_id == int(ids[np.argmax(scores)])
    queue.engine.dispose()


@pytest.mark.parametrize(
    ("guesses", "error"),
    [
        ((["negative"], [0.5, 0.5]), "one label and one probability per item"),
        ((["negative", "positive"], [0.5, 1.5]), "between 0 and 1"),
        ((["negative", "positive"], [0.5, float("nan")]), "between 0 and 1"),
        ((["negative", "maybe"], [0.5, 0.5]), "outside the label set"),
    ],
)
def test_bad_guesses_are_refused_and_nothing_changes(queue, guesses, error):
    queue.add(_texts(2))
    with pytest.raises((ValueError, LabelNotInLabelSet), match=error):
        queue.reorder([1, 2], [0.9, 0.1], ranked_by=1, guesses=guesses)
    assert [(i.priority, i.ranked_by, i.guess_label) for i in queue.items([1, 2])] == [
        (0.0, None, None), (0.0, None, None)
    ]


def test_undo_takes_back_a_skip_and_the_text_comes_back_to_that_labeller(queue):
    queue.add(_texts(3))
    first = queue.pop("ana")
    queue.submit(first.item_id, "positive", "ana")
    skipped = queue.pop("ana")
    queue.skip(skipped.item_id, "ana")
    on_screen = queue.pop("ana")
    assert on_screen.item_id != skipped.item_id

    back = queue.undo("ana")  # the skip is the latest action, not the label
    assert back.item_id == skipped.item_id
    assert queue.pop("ana").item_id == skipped.item_id  # leased to ana
    assert queue.pop("bob").item_id == on_screen.item_id  # ana's other item was released
    assert queue.progress().done == 1  # the label stands

    queue.skip(skipped.item_id, "ana")  # skipping it again works, and hides it again
    assert queue.pop("ana") is None  # bob holds the third text
    assert queue.undo("ana").item_id == skipped.item_id
    assert queue.undo("ana").item_id == first.item_id  # then the label before it
    assert queue.progress().done == 0

    events = queue.events()
    assert events.event.tolist() == [
        "label", "skip", "undo-skip", "skip", "undo-skip", "undo"
    ]
    assert set(events[events.event.str.contains("skip")].item_id) == {skipped.item_id}


def test_undoing_a_skip_of_a_text_others_finished_says_so_and_moves_on(queue):
    queue.add(_texts(2))
    first = queue.pop("ana")
    queue.submit(first.item_id, "positive", "ana")
    skipped = queue.pop("ana")
    queue.skip(skipped.item_id, "ana")
    taken = queue.pop("bob")
    assert taken.item_id == skipped.item_id
    queue.submit(taken.item_id, "negative", "bob")

    with pytest.raises(NothingToUndo, match="gone to others"):
        queue.undo("ana")
    assert queue.undo("ana").item_id == first.item_id  # the skip is gone: the label is next
    assert queue.events().event.tolist()[-2:] == ["undo-skip", "undo"]


def test_undoing_a_skip_never_takes_the_text_from_another_labellers_screen(queue):
    queue.add(_texts(2))
    skipped = queue.pop("ana")
    queue.skip(skipped.item_id, "ana")
    assert queue.pop("bob").item_id == skipped.item_id  # on bob's screen now
    with pytest.raises(NothingToUndo, match="gone to others"):
        queue.undo("ana")
    assert queue.pop("bob").item_id == skipped.item_id  # still bob's
    queue.submit(skipped.item_id, "positive", "bob")


def test_undo_of_a_skip_under_overlap_hands_back_a_slot(queue):
    queue.configure(overlap=2)
    queue.add(_texts(2))
    item = queue.pop("ana")
    queue.skip(item.item_id, "ana")
    other = queue.pop("ana")
    assert other.item_id != item.item_id
    assert queue.undo("ana").item_id == item.item_id
    assert queue.pop("ana").item_id == item.item_id  # ana's lease, not the other text
    queue.submit(item.item_id, "positive", "ana")
    queue.submit(queue.pop("bob").item_id, "positive", "bob")
    assert queue.progress().done == 1


def test_a_run_is_open_until_it_finishes_with_a_known_outcome(queue):
    run_id = queue.start_run(featurizer="tfidf-char", strategy="entropy")
    assert queue.runs(1)[0]["status"] == "running"
    with pytest.raises(ValueError, match="not 'done'"):
        queue.finish_run(run_id, status="done")
    assert queue.runs(1)[0]["status"] == "running" and queue.runs(1)[0]["finished_at"] is None
    queue.finish_run(run_id, status="skipped", reason="no labels yet")
    row = queue.runs(1)[0]
    assert (row["status"], row["reason"]) == ("skipped", "no labels yet") and row["finished_at"]
