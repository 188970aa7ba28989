"""The database seam: URLs, durability per transaction, readable errors."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import sqlalchemy as sa

from widgetal import Queue, schema, sql
from widgetal.db import Database, normalise_url
from widgetal.errors import DatabaseUnavailable


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_postgresql_urls_use_psycopg_3(url, expected):
    assert normalise_url(url) == expected


def test_sqlite_label_writes_wait_for_the_disk_and_leases_do_not(sqlite_url):
    db = Database(sqlite_url)
    with db.write() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    with db.write(durable=False) as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_postgresql_leases_skip_the_synchronous_commit(postgres_url):
    db = Database(postgres_url)
    with db.write() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
    with db.write(durable=False) as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
    with db.write() as conn:  # SET LOCAL ended with its transaction
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"


def test_postgresql_plans_a_click_once_not_on_every_click(postgres_url):
    # Planning the one-statement click for each call's parameters took more server time than
    # running it; a generic plan serves every labeller, and serves them in queue order.
    queue = Queue(postgres_url, labels=["a", "b"])
    queue.add([f"text {i}" for i in range(30)])
    queue.reorder(list(range(1, 31)), [float(i) for i in range(1, 31)])
    item, served = queue.pop("ana"), []
    for _ in range(12):
        served.append(item.item_id)
        item = queue.submit_and_pop(item.item_id, "a", "ana")
    assert served == list(range(30, 18, -1))
    with queue.db.read() as conn:
        plans = conn.exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE starts_with(statement, 'WITH won AS')"
        ).one()
    assert plans.custom_plans == 0 and plans.generic_plans >= 5  # prepared after five calls



def _end_sessions(postgres_url: str, pids: set[int]) -> None:
    """End these server sessions as a restart would, and wait until they are gone."""
    admin = sa.create_engine(normalise_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for pid in pids:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        for _ in range(500):
            alive = conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity "
                                         "WHERE pid = ANY(:pids)"), {"pids": list(pids)}).scalar()
            if not alive:
                break
            time.sleep(0.01)
    admin.dispose()


def test_a_click_after_the_server_ended_its_pooled_connection_is_recorded(postgres_url):
    # A restart ends every session; the pooled connection it killed must not fail the next click.
    queue = Queue(postgres_url, labels=["a", "b"])
    queue.add(["one", "two", "three"])
    item = queue.pop("ana")
    with queue.db.read() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    _end_sessions(postgres_url, {pid})
    following = queue.submit_and_pop(item.item_id, "a", "ana")
    assert following is not None and following.item_id != item.item_id
    assert queue.labelled()[["item_id", "label"]].values.tolist() == [[item.item_id, "a"]]
    with queue.db.read() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid


def test_a_click_whose_session_ends_mid_statement_records_nothing_and_the_next_one_works(
        postgres_url):
    # The click's statement runs on psycopg directly (Database.hot): a session ended while it
    # runs must still read as the database being unreachable, leave no label, and leave no
    # dead connection in the pool for the next click.
    import threading

    queue = Queue(postgres_url, labels=["a", "b"])
    queue.add(["one", "two", "three"])
    item = queue.pop("ana")
    admin = sa.create_engine(normalise_url(postgres_url), isolation_level="AUTOCOMMIT")
    outcome = []

    def click():
        try:
            outcome.append(queue.submit_and_pop(item.item_id, "a", "ana"))
        except Exception as exc:  # noqa: BLE001 - the test asserts which
            outcome.append(exc)

    with admin.connect() as holder, admin.connect() as watcher:
        holder.exec_driver_sql("BEGIN")
        holder.execute(sa.text("SELECT id FROM widgetal_items WHERE id = :id FOR UPDATE"),
                       {"id": item.item_id})  # the click's statement waits for this lock
        clicking = threading.Thread(target=click)
        clicking.start()
        waiting = set()
        for _ in range(500):
            waiting = set(watcher.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'WITH won AS%%'").scalars())
            if waiting:
                break
            time.sleep(0.01)
        assert len(waiting) == 1
        _end_sessions(postgres_url, waiting)
        clicking.join(10)
        holder.exec_driver_sql("ROLLBACK")
    admin.dispose()
    assert isinstance(outcome[0], DatabaseUnavailable), outcome
    assert "Cannot reach the database" in str(outcome[0])
    assert queue.labelled().empty  # the statement died with its session: nothing recorded
    following = queue.submit_and_pop(item.item_id, "a", "ana")  # a fresh connection
    assert following is not None and following.item_id != item.item_id
    assert queue.labelled()[["item_id", "label"]].values.tolist() == [[item.item_id, "a"]]


@pytest.mark.parametrize("event", ["before_cursor_execute", "before_execute"])
def test_an_engine_someone_watches_sees_every_statement_of_a_click(postgres_url, event):
    # The click's statements skip SQLAlchemy's execution path for speed, but not past
    # statement listeners (tests, tracing), at the cursor or the statement, or its log.
    queue = Queue(postgres_url, labels=["a", "b"])
    queue.add(["one", "two", "three"])
    item = queue.pop("ana")
    seen = []
    where = 2 if event == "before_cursor_execute" else 1  # (conn, cursor, statement, ...)
    sa.event.listen(queue.engine, event, lambda *args: seen.append(args[where]))
    following = queue.submit_and_pop(item.item_id, "a", "ana")
    queue.progress("ana")
    assert following is not None
    if event == "before_execute":  # given the statement objects sql.py names
        assert sql.label_and_lease_postgresql in seen and sql.read_progress in seen, seen
    else:  # given the SQL text sent to the driver
        assert any(s.startswith("WITH won AS") for s in seen), seen  # the click
        assert any("widgetal_label_counts" in s for s in seen), seen  # its progress


def test_a_live_pooled_connection_costs_no_ping_and_an_ended_one_is_replaced(postgres_url,
                                                                             monkeypatch):
    # The pre-ping's replacement: no round trip per click while the session lives.
    db = Database(postgres_url)
    pings = []
    ping = db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda c: pings.append(1) or ping(c))
    with db.read() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    for _ in range(3):
        with db.write() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pid
    assert pings == []
    _end_sessions(postgres_url, {pid})
    with db.write() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
    assert pings == [1]


def test_a_read_without_a_snapshot_runs_each_statement_on_its_own(db_url):
    # progress() reads one statement per click: on PostgreSQL it skips BEGIN and COMMIT.
    db = Database(db_url)
    stamp = ("SELECT transaction_timestamp()" if db.dialect == "postgresql"
             else "SELECT count(*) FROM sqlite_master")
    with db.read() as conn:
        first = conn.exec_driver_sql(stamp).scalar()
        time.sleep(0.01)
        assert conn.exec_driver_sql(stamp).scalar() == first
        assert conn.in_transaction()
    with db.read(snapshot=False) as conn:
        first = conn.exec_driver_sql(stamp).scalar()
        time.sleep(0.01)
        again = conn.exec_driver_sql(stamp).scalar()
        assert again != first if db.dialect == "postgresql" else again == first
    with db.write() as conn:  # the pooled connection is back in a transaction for writes
        first = conn.exec_driver_sql(stamp).scalar()
        assert conn.exec_driver_sql(stamp).scalar() == first


def test_a_sqlite_reorder_gives_its_connection_the_default_page_cache_back(sqlite_url):
    queue = Queue(sqlite_url, labels=["a", "b"])
    queue.add(pd.DataFrame({"text": [f"t{i}" for i in range(30)]}))
    with queue.db.read() as conn:
        default = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    assert queue.reorder(list(range(1, 31)), [float(i) for i in range(30)]) == 30
    with queue.db.read() as conn:  # the same pooled connection the reorder used
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == default
        assert conn.exec_driver_sql("PRAGMA temp.cache_size").scalar() == default
        assert conn.exec_driver_sql("PRAGMA threads").scalar() == 0
    assert queue.pop("ana").item_id == 30


def test_a_sqlite_reorder_skips_the_wait_for_the_disk_and_the_next_label_does_not(sqlite_url):
    """A reorder lost to a power cut is redone by the next cycle; a label never is."""
    queue = Queue(sqlite_url, labels=["a", "b"])
    queue.add(pd.DataFrame({"text": [f"t{i}" for i in range(30)]}))
    seen = {}

    @sa.event.listens_for(queue.engine, "before_cursor_execute")
    def _settings(_conn, cursor, statement, *_):
        kind = ("reorder" if statement.startswith("UPDATE widgetal_ranks NOT INDEXED")
                else "label" if statement.startswith("INSERT INTO widgetal_labels") else None)
        if kind:
            raw = cursor.connection
            seen[kind] = (raw.execute("PRAGMA synchronous").fetchone()[0],
                          raw.execute("PRAGMA threads").fetchone()[0])

    assert queue.reorder(list(range(1, 31)), [float(i) for i in range(30)]) == 30
    item = queue.pop("ana")
    queue.submit(item.item_id, "a", "ana")
    assert seen == {"reorder": (1, 2), "label": (2, 0)}  # NORMAL with sorter threads; FULL


def test_a_small_sqlite_reorder_finds_ranks_by_key_not_through_the_order_index(sqlite_url):
    # Walking the order index would move each rank in priority order, scattered over the file.
    queue = Queue(sqlite_url, labels=["a", "b"])
    queue.add(pd.DataFrame({"text": [f"t{i}" for i in range(30)]}))
    with queue.db.write() as conn:
        conn.execute(sql.create_scores_table_sqlite)
        conn.exec_driver_sql(sql.insert_scores_sqlite, [(i, 0.5, None, None) for i in range(5)])
        conn.execute(sql.analyze_scores_table_sqlite)
        plan = conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql.apply_priorities_sqlite.text}"),
                            {"ranked_by": 1}).all()
    steps = " / ".join(row[-1] for row in plan)
    assert "USING INDEX" not in steps, steps
    # a small reorder reads its few scores and looks each rank up; it does not scan them all
    assert "SEARCH widgetal_ranks USING INTEGER PRIMARY KEY" in steps, steps


@pytest.mark.parametrize(("name", "index"), [
    ("count_awaiting_review", "widgetal_items_awaiting_review"),
    ("lease_next_review", "widgetal_items_awaiting_review"),
    ("lease_next_review_waiting", "widgetal_items_awaiting_review"),
    ("keep_reviewed_ranks_sqlite", "widgetal_items_awaiting_review"),
    ("count_done_items", "widgetal_items_done"),  # progress on every click, with overlap
])
def test_sqlite_counts_and_hands_out_few_items_through_their_partial_index(sqlite_url, name,
                                                                           index):
    # SQLite uses a partial index only for a query that repeats its condition: with the index
    # written `WHERE needs_review` and the queries `needs_review = 1`, every review pop and
    # count scanned the whole item table; the items done had no index at all.
    queue = Queue(sqlite_url, labels=["a", "b"])
    queue.add(pd.DataFrame({"text": [f"t{i}" for i in range(30)]}))
    statement = getattr(sql, name)
    with queue.db.write() as conn:
        conn.execute(sql.create_scores_table_sqlite)
        compiled = statement.compile(dialect=conn.dialect)
        values = compiled.construct_params({key: None for key in compiled.binds})
        args = tuple(values[key] for key in compiled.positiontup or ())
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", args).all()
    steps = [row[-1].strip() for row in plan]
    assert any(f"USING INDEX {index}" in step or f"USING COVERING INDEX {index}" in step
               for step in steps), steps
    assert not {"SCAN i", "SCAN widgetal_items"} & set(steps), steps  # no pass over every item


def test_a_large_reorder_writes_the_ranks_anew_and_keeps_every_other_rank(db_url):
    """Past the threshold the ranks are written anew (SQLite: emptied and refilled; PostgreSQL:
    a new table swapped in): items not scored keep their rank, done items get none, an item
    awaiting a reviewer keeps its own, and the queue serves the new order."""
    from widgetal import db as db_module

    queue = Queue(db_url, labels=["a", "b"])
    queue.configure(overlap=2)
    queue.add_person("rita", reviewer=True)
    queue.add(pd.DataFrame({"text": [f"t{i}" for i in range(40)]}))
    queue.reorder([40], [5.0], ranked_by=None)  # the rank an unscored item keeps
    for who in ("ana", "bo"):  # item 40 done by two; they disagree: it awaits a reviewer
        item = queue.pop(who)
        assert item.item_id == 40
        queue.submit(40, "a" if who == "ana" else "b", who)
    for who in ("ana", "bo"):  # item 1 done, agreed
        item = queue.pop(who)
        queue.submit(item.item_id, "a", who)
    done = item.item_id
    ids = [i for i in range(1, 41) if i != 39]  # 39 not scored; 40 and `done` are done
    old = db_module._REBUILD_MIN
    db_module._REBUILD_MIN = 10
    try:
        changed = queue.reorder(ids, [float(i) for i in ids], ranked_by=None,
                                guesses=(["b"] * len(ids), [0.75] * len(ids)))
    finally:
        db_module._REBUILD_MIN = old
    assert changed == 38 - 1  # 40 items, 39 not scored, 40 and `done` done
    with queue.db.read() as conn:
        ranks = {r.item_id: (r.priority, r.guess_label)
                 for r in conn.execute(sa.select(schema.ranks))}
    assert done not in ranks
    assert ranks[40] == (5.0, None)  # awaiting review: its rank as it was
    assert ranks[39] == (0.0, None)  # not scored: as it was
    assert ranks[38] == (38.0, "b")
    assert len(ranks) == 39
    order = [queue.pop(f"p{k}").item_id for k in range(3)]
    assert order == [38, 38, 37]  # overlap 2: two labellers get each item
    assert queue.pop_review("rita").item_id == 40


def test_a_url_that_is_not_a_url_is_named():
    with pytest.raises(DatabaseUnavailable, match="is not a database URL"):
        Database("not a url at all")


def test_sqlite_contention_past_the_busy_timeout_is_not_reported_as_an_outage(tmp_path):
    """A writer that gave up waiting for another's lock gets SQLite's own error ("locked"),
    told apart by its error code; a file that cannot be opened is an unreachable database."""
    import sqlite3

    path = tmp_path / "busy.db"
    db = Database(f"sqlite:///{path}")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        with pytest.raises(sa.exc.OperationalError, match="locked") as raised:
            with db.translate_errors(), db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA busy_timeout = 0")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        assert not isinstance(raised.value, DatabaseUnavailable)
    finally:
        holder.rollback()
        holder.close()
    folder = tmp_path / "a folder"
    folder.mkdir()
    unreachable = Database(f"sqlite:///{folder}")
    with pytest.raises(DatabaseUnavailable, match="unable to open database file"):
        with unreachable.translate_errors():
            unreachable.engine.connect()
