"""The database seam: URLs, durability per transaction, readable errors."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from widgetal import Queue, sql
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


def test_a_sqlite_reorder_gives_its_connection_the_default_page_cache_back(sqlite_url):
    queue = Queue(sqlite_url, labels=["a", "b"])
    queue.add(pd.DataFrame({"text": [f"t{i}" for i in range(30)]}))
    with queue.db.read() as conn:
        default = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    assert queue.reorder(list(range(1, 31)), [float(i) for i in range(30)]) == 30
    with queue.db.read() as conn:  # the same pooled connection the reorder used
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == default
        assert conn.exec_driver_sql("PRAGMA temp.cache_size").scalar() == default
    assert queue.pop("ana").item_id == 30


def test_a_sqlite_reorder_finds_items_by_rowid_not_through_a_partial_index(sqlite_url):
    # Walking a partial index would rewrite rows in priority order, scattered over the file.
    queue = Queue(sqlite_url, labels=["a", "b"])
    queue.add(pd.DataFrame({"text": [f"t{i}" for i in range(30)]}))
    with queue.db.write() as conn:
        conn.execute(sql.create_scores_table_sqlite)
        conn.exec_driver_sql(sql.insert_scores_sqlite, [(i, 0.5, None, None) for i in range(5)])
        conn.execute(sql.analyze_scores_table_sqlite)
        plan = conn.execute(
            sa.text(f"EXPLAIN QUERY PLAN {sql.apply_priorities_sqlite.text}"), {"ranked_by": 1}
        ).all()
    steps = " / ".join(row[-1] for row in plan)
    assert "USING INDEX" not in steps, steps
    # a small reorder reads its few scores and looks each item up; it does not scan them all
    assert "SEARCH widgetal_items USING INTEGER PRIMARY KEY" in steps, steps


def test_a_url_that_is_not_a_url_is_named():
    with pytest.raises(DatabaseUnavailable, match="is not a database URL"):
        Database("not a url at all")
