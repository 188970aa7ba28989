"""Every named statement compiles for both databases, with the clauses its semantics need."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg

from widgetal import sql

STATEMENTS = {
    name: value
    for name, value in vars(sql).items()
    if not name.startswith("_") and isinstance(value, sa.sql.Executable)
}
DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}


def _compile(name: str, dialect: str) -> str:
    return str(STATEMENTS[name].compile(dialect=DIALECTS[dialect]))


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "name", sorted(n for n in STATEMENTS if not n.endswith(("_sqlite", "_postgresql")))
)
def test_every_shared_statement_compiles_for_both_databases(name, dialect):
    assert _compile(name, dialect).strip()


def test_hand_out_skips_locked_rows_on_postgresql_only():
    pg = _compile("lease_next_item", "postgresql")
    assert "FOR UPDATE OF i SKIP LOCKED" in pg  # the item's row, not its rank
    assert "JOIN widgetal_items AS i" in pg
    assert re.search(r"UPDATE widgetal_items AS i SET .* WHERE i.id = \(SELECT", pg, re.S)
    assert "RETURNING" in pg
    lite = _compile("lease_next_item", "sqlite")
    assert "FOR UPDATE" not in lite and "RETURNING" in lite


def test_hand_out_orders_by_priority_then_id_and_ignores_done_and_leased_items():
    pg = _compile("lease_next_item", "postgresql")
    assert "FROM widgetal_ranks AS r" in pg and "ORDER BY r.priority DESC, r.item_id" in pg
    assert "done_at IS NULL" in pg and "lease_expires_at >" in pg
    assert "widgetal_skips" in pg and "LIMIT" in pg


def test_the_waiting_fallback_locks_without_skipping():
    pg = _compile("lease_next_item_waiting", "postgresql")
    assert "FOR UPDATE OF i" in pg and "SKIP LOCKED" not in pg


@pytest.mark.parametrize("name", sorted(n for n in STATEMENTS if not n.endswith("_sqlite")))
def test_postgresql_statements_stay_short_enough_for_psycopg_to_cache_their_parsing(name):
    # psycopg parses a statement's text afresh on every call once it is longer than this (or
    # has more parameters): the click's statement crossing it cost a third more client CPU per
    # click. The aliases in widgetal.sql keep it under.
    limits = pytest.importorskip("psycopg._queries")
    text = str(STATEMENTS[name].compile(dialect=psycopg.dialect()))
    assert len(text) <= limits.MAX_CACHED_STATEMENT_LENGTH, (name, len(text))
    assert len(set(re.findall(r"%\((\w+)\)s", text))) <= limits.MAX_CACHED_STATEMENT_PARAMS


def test_first_label_wins_because_done_is_checked_in_the_update():
    pg = _compile("mark_item_done", "postgresql")
    assert "done_at IS NULL" in pg and "RETURNING" in pg


def test_reorder_statements_join_a_set_and_spare_done_items():
    for name in ("apply_priorities_sqlite", "write_ranks_sqlite",
                 "apply_priorities_postgresql"):
        text = re.sub(r"\s+", " ", str(STATEMENTS[name]))
        done = r"done_at( FROM widgetal_items WHERE id = s.item_id\))? IS NULL"
        assert "FROM" in text and re.search(done, text), name
        assert "lease" not in text  # leases stay as they are
    assert "FORMAT BINARY" in sql.copy_scores_postgresql  # scores arrive in bulk
    # a rewrite keeps every rank it was not given, and drops the scores of items without one
    assert "ON CONFLICT (item_id) DO NOTHING" in str(sql.keep_unscored_ranks_sqlite)
    assert "NOT EXISTS" in str(sql.keep_unscored_ranks_postgresql)
    assert "NOT EXISTS" in str(sql.drop_done_ranks_postgresql)


def test_only_bind_parameters_carry_values():
    for name, statement in STATEMENTS.items():
        if isinstance(statement, sa.TextClause):
            assert "'" not in str(statement), name


@pytest.mark.parametrize("name", sorted(n for n in STATEMENTS if not n.endswith("_sqlite")))
def test_no_postgresql_statement_binds_its_row_limit(name):
    # PostgreSQL plans each statement once for any parameters; a bound LIMIT reads to the
    # planner as a tenth of the table, and the one-row hand-out was then JIT-compiled on every
    # click (0.6 s a click at 1,000,000 items). Limits are written in, or rendered per call.
    compiled = STATEMENTS[name].compile(dialect=postgresql.psycopg.dialect())
    assert not re.search(r"LIMIT %\(\w+\)s", str(compiled))
