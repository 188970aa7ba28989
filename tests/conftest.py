"""Shared fixtures: every queue test runs on a real SQLite file and, when a server is given, on
PostgreSQL (``WIDGETAL_TEST_POSTGRES_URL``), each test in its own schema."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from widgetal import Queue

PG_ENV = "WIDGETAL_TEST_POSTGRES_URL"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TWEETS = SHARED / "data" / "training_8000_shuffled.csv"
LABELS = ["negative", "positive"]


def _pg_base() -> str | None:
    return os.environ.get(PG_ENV)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'widgetal.db'}"


@pytest.fixture
def postgres_url():
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    base = _pg_base()
    if not base:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (set by .ci/run after it starts the server)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Each test using this runs twice: on a SQLite file and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(name)


@pytest.fixture
def queue(db_url: str) -> Queue:
    q = Queue(db_url, labels=LABELS, lease_seconds=600)
    yield q
    q.engine.dispose()


@pytest.fixture
def tweets_path() -> Path:
    if not TWEETS.exists():
        pytest.skip(f"shared data not found at {TWEETS}")
    return TWEETS


@pytest.fixture
def embedded(monkeypatch) -> list[str]:
    """Every text the transformer featurizer embeds from now on, in order: what the feature
    cache is supposed to spare."""
    from widgetal.features import TransformerEmbedder

    seen: list[str] = []
    original = TransformerEmbedder.transform

    def counting(self, X):
        seen.extend(X)
        return original(self, X)

    monkeypatch.setattr(TransformerEmbedder, "transform", counting)
    return seen
