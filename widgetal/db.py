"""The database seam: an engine per URL, transactions, and driver errors made readable.

Everything dialect-specific about *connecting* lives here (SQLite pragmas, BEGIN IMMEDIATE,
psycopg 3); the statements themselves live in ``sql.py``. The pragmas and BEGIN below are
connection settings, not queries, which is why they are written here.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import sqlalchemy as sa

from . import sql
from .errors import DatabaseUnavailable

_SQLITE_BUSY_TIMEOUT_MS = 60_000  # longer than any reorder: writers wait rather than fail
_CONNECT_TIMEOUT_S = 10


class Database:
    """One SQLite file or PostgreSQL database, and how widgetal transacts with it."""

    def __init__(self, url: str):
        self.url = normalise_url(url)
        self.engine = _make_engine(self.url)
        self.dialect = self.engine.dialect.name

    @contextlib.contextmanager
    def write(self, durable: bool = True) -> Iterator[sa.Connection]:
        """A write transaction (SQLite: BEGIN IMMEDIATE, so writers queue instead of failing).

        Labels are durable: their commit reaches the disk before this returns. A lease need not
        be (lost in a crash, the item is simply free again), which saves an fsync per pop.
        """
        with self.translate_errors(), self.engine.connect() as conn:
            with conn.execution_options(widgetal_durable=durable).begin():
                if not durable and self.dialect == "postgresql":
                    conn.execute(sql.relax_durability_postgresql)
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction: one consistent snapshot, no write lock."""
        with self.translate_errors(), self.engine.connect() as conn:
            with conn.execution_options(widgetal_begin="DEFERRED", widgetal_durable=False).begin():
                yield conn

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Driver errors about reaching the database become one ``DatabaseUnavailable``."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if "database is locked" in str(exc):
                raise  # SQLite contention past the busy timeout: not an outage
            where = self.engine.url.render_as_string(hide_password=True)
            raise DatabaseUnavailable(
                f"Cannot reach the database at {where}: {_first_line(exc)}. Check that the "
                "server is running and the URL is right; nothing was changed."
            ) from exc


def normalise_url(url: str) -> str:
    """``postgresql://`` → ``postgresql+psycopg://``: psycopg 3 is the driver we depend on,
    and plain ``postgresql://`` means psycopg2 on SQLAlchemy 2.0."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", str(url))


def _make_engine(url: str) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise DatabaseUnavailable(f"'{url}' is not a database URL: {exc}") from exc
    if parsed.get_backend_name() != "sqlite":
        try:
            # pre_ping: a connection that died with a server restart is replaced, not
            # handed to a labeller's click.
            # connect_timeout: a server behind a firewall that drops packets would otherwise
            # hang a connect (and `orchestrate --once`) forever instead of failing.
            return sa.create_engine(
                parsed, pool_pre_ping=True, connect_args={"connect_timeout": _CONNECT_TIMEOUT_S}
            )
        except ModuleNotFoundError as exc:
            raise DatabaseUnavailable(
                f"No driver for {parsed.get_backend_name()}: pip install 'widgetal[postgres]'."
            ) from exc
    engine = sa.create_engine(parsed)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transactions into our own hands so that writers can BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        if parsed.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        options = conn.get_execution_options()
        # FULL: the commit reaches the disk before submit returns; NORMAL (safe in WAL
        # against application crashes) for leases and reads.
        durable = options.get("widgetal_durable", True)
        conn.exec_driver_sql(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        immediate = options.get("widgetal_begin", "IMMEDIATE") == "IMMEDIATE"
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
