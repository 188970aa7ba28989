"""The database seam: URLs, durability per transaction, readable errors."""

from __future__ import annotations

import pytest

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


def test_a_url_that_is_not_a_url_is_named():
    with pytest.raises(DatabaseUnavailable, match="is not a database URL"):
        Database("not a url at all")
