"""The database seam: an engine per URL, transactions, and driver errors made readable.

Everything dialect-specific about *connecting* lives here (SQLite pragmas, BEGIN IMMEDIATE,
psycopg 3), and so does the one write whose mechanics differ by dialect: a reorder of many
items (SQLite: a temporary table, a larger page cache, and for a large one the ranks written
anew; PostgreSQL: a binary COPY into a temporary table, and for a large one a new ranks table
swapped in).
The statements themselves live in ``sql.py``. The pragmas and BEGIN below are connection
settings, not queries, which is why they are written here.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import re
import select
import sqlite3
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import sql
from .errors import DatabaseUnavailable, first_line

if TYPE_CHECKING:
    import numpy as np

_SQLITE_BUSY_TIMEOUT_MS = 60_000  # longer than any reorder: writers wait rather than fail
_CONNECT_TIMEOUT_S = 10
_CHUNK = 10_000  # rows per statement of a bulk insert on PostgreSQL
_ANALYZE_AFTER = 1_000  # rows added in one import that make fresh planner statistics worth it
# A reorder of at least this many items, and this share of all items, writes the ranks anew
# (see sql, "reorder"); a smaller one updates them in place.
_REBUILD_MIN = 20_000
_REBUILD_SHARE = 0.1
# SQLite's page cache for a reorder (KiB; the default is 2 MiB): a large one rewrites more pages
# than that, which would otherwise spill to the WAL mid-transaction and be written twice. The
# connection gets its default back afterwards.
_REORDER_CACHE_KIB = 256 * 1024
# SQLite's sorter may use helper threads for the index builds of a large reorder.
_REORDER_THREADS = 2
# The range of PostgreSQL's integer, the items' key.
_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1


class Database:
    """One SQLite file or PostgreSQL database, and how widgetal transacts with it."""

    def __init__(self, url: str):
        self.url = normalise_url(url)
        self.engine = _make_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._hot: dict[Any, sa.Compiled] = {}  # see hot(): statements compiled once

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
    def write_each(self) -> Iterator[sa.Connection]:
        """Writes each of whose statements is whole, and durable, on its own: PostgreSQL
        commits each as it runs, without the BEGIN and COMMIT round trips (two of a click's
        three); SQLite runs them in one write transaction, as :meth:`write`."""
        if self.dialect != "postgresql":
            with self.write() as conn:
                yield conn
            return
        with self.translate_errors(), self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @contextlib.contextmanager
    def read(self, snapshot: bool = True) -> Iterator[sa.Connection]:
        """A read transaction: one consistent snapshot, no write lock.

        ``snapshot=False`` is for reads whose statements need not agree with each other (a
        read of one statement): on PostgreSQL each runs on its own, without the BEGIN and
        COMMIT round trips.
        """
        with self.translate_errors(), self.engine.connect() as conn:
            if not snapshot and self.dialect == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT")
            with conn.execution_options(widgetal_begin="DEFERRED", widgetal_durable=False).begin():
                yield conn

    def hot(self, conn: sa.Connection, statement: Any, params: dict | None = None) -> list:
        """The rows (attributes by column name) of a statement run on every click.

        PostgreSQL: psycopg runs the statement, compiled once, itself, skipping SQLAlchemy's
        execution path (cache look-up, parameter and result handling): a click's client CPU
        fell by about a third (medians 0.48 -> 0.33 ms), CPU that labellers on the database's
        machine take from the server. Driver errors come out as SQLAlchemy's, as from any other
        statement. An engine someone watches (statement events, SQLAlchemy's log) runs them
        through SQLAlchemy, so they see every one.
        """
        if self.dialect != "postgresql" or _watched(conn):
            return conn.execute(statement, params or {}).all()
        import psycopg
        from psycopg.rows import namedtuple_row

        compiled = self._hot.get(statement)
        if compiled is None:
            compiled = self._hot[statement] = statement.compile(dialect=conn.dialect)
        raw = conn.connection.driver_connection
        try:
            with raw.cursor(row_factory=namedtuple_row) as cursor:
                cursor.execute(compiled.string, compiled.construct_params(params or {}))
                return cursor.fetchall()
        except psycopg.Error as exc:
            lost = raw.broken or raw.closed
            if lost:
                conn.invalidate(exc)  # not back into the pool
            raise sa.exc.DBAPIError.instance(compiled.string, None, exc, psycopg.Error,
                                             connection_invalidated=bool(lost)) from exc

    def record_first_label(self, conn: sa.Connection, row: dict) -> bool:
        """Overlap 1: mark the item done if nobody did first and append the label ``row``
        (item_id, label, labeller, seconds, now), with what the labeller was
        served as its provenance. False, with nothing written, when another label won or the
        item wants more than one (the caller's locked path tells which).
        PostgreSQL: one statement; SQLite: the two it stands for."""
        if self.dialect == "postgresql":
            return conn.execute(sql.record_first_label_postgresql, row).first() is not None
        won = conn.execute(sql.mark_item_done, row).first()
        if won is None:
            return False
        conn.execute(sql.insert_label, {**row, "created_at": row["now"],
                                        "priority": won.served_priority,
                                        "ranked_by": won.served_ranked_by,
                                        "audit": bool(won.audit)})
        return True

    def label_and_lease(self, conn: sa.Connection, row: dict, params: dict,
                        audit: bool) -> tuple[bool, Any | None]:
        """``submit_and_pop``'s usual click (overlap 1): :meth:`record_first_label`, then, only
        if it recorded, :meth:`lease_own_or_next`. Returns whether the label was recorded and
        the item leased (None if neither the labeller's lease nor the skipping hand-out gave
        one). PostgreSQL: one statement."""
        if self.dialect == "postgresql":
            statement = (sql.label_and_lease_audit_postgresql if audit
                         else sql.label_and_lease_postgresql)
            found = self.hot(conn, statement, {**row, **params})
            if not found:
                return False, None
            return True, None if found[0].id is None else found[0]
        if not self.record_first_label(conn, row):
            return False, None
        return True, self.lease_own_or_next(conn, params, audit)

    def lease_own_or_next(self, conn: sa.Connection, params: dict,
                          audit: bool) -> Any | None:
        """The labeller's live lease renewed, else the best free item of one kind (the audit
        reserve, or the rest) leased, skipping locked rows; None if neither. PostgreSQL: one
        statement; SQLite: the ones it stands for."""
        if self.dialect == "postgresql":
            statement = (sql.lease_own_or_next_audit_postgresql if audit
                         else sql.lease_own_or_next_postgresql)
            found = self.hot(conn, statement, params)
            return found[0] if found else None
        own = conn.execute(sql.find_own_lease, params).scalar()
        if own is not None:
            return conn.execute(sql.renew_lease, {**params, "item_id": own}).one()
        statement = sql.lease_next_audit_item if audit else sql.lease_next_item
        return conn.execute(statement, params).first()

    def hand_out(self, conn: sa.Connection, skipping: sa.Executable, waiting: sa.Executable,
                 params: dict) -> sa.Row | None:
        """The first row a hand-out statement gives: ``skipping`` passes rows that other
        transactions hold, and where none was free, ``waiting`` waits for them (see
        :meth:`wait_for_held`)."""
        row = conn.execute(skipping, params).first()
        return row if row is not None else self.wait_for_held(conn, waiting, params)

    def wait_for_held(self, conn: sa.Connection, waiting: sa.Executable,
                      params: dict) -> sa.Row | None:
        """PostgreSQL: ``waiting``'s row, waiting for rows other transactions hold (the skipping
        form found none free, but a held one may come back). SQLite: None without asking, since
        its one writer at a time holds no rows another could wait for."""
        if self.dialect != "postgresql":
            return None
        return conn.execute(waiting, params).first()

    def insert_items(self, conn: sa.Connection, records: list[dict]) -> dict[str, int]:
        """New items (external_id, text, meta, created_at, done_at); returns {external_id:
        item_id}. PostgreSQL: arrays unnested in one statement; SQLite: one executemany."""
        if self.dialect == "postgresql":
            result = conn.execute(sql.insert_items_postgresql, {
                "external_ids": [r["external_id"] for r in records],
                "texts": [r["text"] for r in records],
                "metas": [None if r["meta"] is None else json.dumps(r["meta"]) for r in records],
                "done_ats": [r["done_at"] for r in records],
                "now": records[0]["created_at"] if records else None,
            })
        else:
            result = conn.execute(sql.insert_items, records)
        return {e: i for i, e in result.all()}

    def insert_labels(self, conn: sa.Connection, records: list[dict]) -> None:
        """New labels (item_id, label, labeller, created_at, seconds). PostgreSQL: arrays
        unnested, a chunk per statement; SQLite: one executemany."""
        if self.dialect != "postgresql":
            conn.execute(sql.insert_label, records)
            return
        for start in range(0, len(records), _CHUNK):
            chunk = records[start:start + _CHUNK]
            conn.execute(sql.insert_labels_postgresql, {
                "item_ids": [r["item_id"] for r in chunk],
                "labels": [r["label"] for r in chunk],
                "labellers": [r["labeller"] for r in chunk],
                "created_ats": [r["created_at"] for r in chunk],
                "seconds": [r["seconds"] for r in chunk],
            })

    def refresh_statistics(self, added: int) -> None:
        """After a large import, fresh planner statistics: without them PostgreSQL's first pops
        scan the whole table. (SQLite plans these statements well without.)"""
        if self.dialect == "postgresql" and added >= _ANALYZE_AFTER:
            with self.write() as conn:
                for statement in sql.analyze_items_postgresql:
                    conn.execute(statement)

    def write_priorities(self, ids: np.ndarray, scores: np.ndarray, ranked_by: int | None,
                         guess_labels: list[str] | None, guess_probas: np.ndarray | None) -> int:
        """Set items' priorities and published guesses in one set-based write; returns how
        many items changed (only items not done do). The queue's ``reorder`` checks the input
        (distinct ids, finite scores, one guess per item).
        """
        with self.translate_errors():
            if self.dialect == "sqlite":
                return self._priorities_sqlite(ids, scores, ranked_by, guess_labels,
                                               guess_probas)
            return self._priorities_postgresql(ids, scores, ranked_by, guess_labels,
                                               guess_probas)

    def _rewrite(self, conn: sa.Connection, n: int) -> bool:
        """Whether a reorder of ``n`` items writes the ranks anew rather than in place."""
        return n >= _REBUILD_MIN and n >= _REBUILD_SHARE * (
            conn.execute(sql.read_item_count).scalar() or 0)

    def _priorities_sqlite(self, ids, scores, ranked_by, guess_labels, guess_probas) -> int:
        n = len(ids)
        guess_labels = guess_labels if guess_labels is not None else itertools.repeat(None)
        guess_probas = (guess_probas.tolist() if guess_probas is not None
                        else itertools.repeat(None))
        rows = list(zip(ids.tolist(), scores.tolist(), guess_labels, guess_probas))
        with self.engine.connect() as conn, _sqlite_reorder_pragmas(conn):
            # Fill the temp table in a deferred transaction: labellers keep popping meanwhile.
            with conn.execution_options(widgetal_begin="DEFERRED").begin():
                conn.execute(sql.create_scores_table_sqlite)
                conn.execute(sql.clear_scores_table_sqlite)
                for start in range(0, n, 100_000):
                    conn.exec_driver_sql(sql.insert_scores_sqlite, rows[start:start + 100_000])
                conn.execute(sql.analyze_scores_table_sqlite)
            del rows
            params = {"ranked_by": ranked_by}
            # Not durable: a reorder lost to a power cut is redone by the next cycle, and the
            # next label's commit syncs the log, reorder included.
            with conn.execution_options(widgetal_begin="IMMEDIATE",
                                        widgetal_durable=False).begin():
                if not self._rewrite(conn, n):
                    changed = conn.execute(sql.apply_priorities_sqlite, params).rowcount
                else:
                    kept = conn.execute(sql.keep_reviewed_ranks_sqlite).rowcount
                    kept += conn.execute(sql.keep_unscored_ranks_sqlite).rowcount
                    conn.execute(sql.drop_rank_order)
                    conn.execute(sql.clear_ranks_sqlite)
                    changed = conn.execute(sql.write_ranks_sqlite, params).rowcount - kept
                    conn.execute(sql.create_rank_order)
                conn.execute(sql.clear_scores_table_sqlite)
        return changed

    def _priorities_postgresql(self, ids, scores, ranked_by, guess_labels, guess_probas) -> int:
        import numpy as np

        names, places = None, None
        if guess_labels is not None:
            names = sorted(set(guess_labels))
            place = {name: i for i, name in enumerate(names, start=1)}
            places = np.fromiter((place[label] for label in guess_labels), np.int32, len(ids))
        # Item ids are PostgreSQL integers: an id beyond them names no item (and written as one
        # it would wrap round to another item's), so its score is left out like any unknown id.
        known = (ids >= _INT4_MIN) & (ids <= _INT4_MAX)
        if not known.all():
            ids, scores = ids[known], scores[known]
            if places is not None:
                places, guess_probas = places[known], guess_probas[known]
        params = {"ranked_by": ranked_by, "guess_names": names}
        with self.write() as conn:
            conn.execute(sql.reorder_memory_postgresql)
            conn.execute(sql.create_scores_table_postgresql)
            columns = "" if places is None else sql.copy_guesses_postgresql
            with conn.connection.driver_connection.cursor() as cursor, cursor.copy(
                sql.copy_scores_postgresql.format(columns)
            ) as copy:
                copy.write(binary_copy_rows(ids, scores, places, guess_probas))
            conn.execute(sql.analyze_scores_table_postgresql)
            if not self._rewrite(conn, len(ids)):
                return conn.execute(sql.apply_priorities_postgresql, params).rowcount
            conn.execute(sql.create_next_ranks_postgresql)
            changed = conn.execute(sql.write_next_ranks_postgresql, params).rowcount
            conn.execute(sql.key_next_ranks_postgresql)
            conn.execute(sql.order_next_ranks_postgresql)
            conn.execute(sql.lock_ranks_postgresql)
            changed -= conn.execute(sql.unscore_reviewed_postgresql).rowcount
            conn.execute(sql.keep_unscored_ranks_postgresql)
            changed -= conn.execute(sql.drop_done_ranks_postgresql).rowcount
            for statement in sql.swap_ranks_postgresql:
                conn.execute(statement)
        return changed

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Driver errors about reaching the database become one ``DatabaseUnavailable``."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if _sqlite_busy(exc):
                raise  # SQLite contention past the busy timeout: not an outage
            where = self.engine.url.render_as_string(hide_password=True)
            raise DatabaseUnavailable(
                f"Cannot reach the database at {where}: {first_line(exc)}. Check that the "
                "server is running and the URL is right; nothing was changed."
            ) from exc


def _watched(conn: sa.Connection) -> bool:
    """Whether statement events (at the statement or the cursor) or SQLAlchemy's statement
    log are on for this connection."""
    events = conn.dispatch
    return bool(events.before_execute or events.after_execute
                or events.before_cursor_execute or events.after_cursor_execute
                or conn.engine.logger.isEnabledFor(logging.INFO))


def _use_wal(cursor) -> None:
    """WAL mode (it persists in the file). Several processes opening a new database at once can
    find the switch answered "locked" at once, the busy timeout notwithstanding (seen in CI):
    retry it until that timeout."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _sqlite_busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_busy(exc: Exception) -> bool:
    """Whether SQLite gave up waiting for another connection's lock, told by its error code
    (on the driver's error, or the one SQLAlchemy wraps)."""
    code = getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@contextlib.contextmanager
def _sqlite_reorder_pragmas(conn: sa.Connection) -> Iterator[None]:
    """This SQLite connection's settings for a reorder while inside: large page caches (main and
    temp) and sorter threads for the index builds; the previous values come back afterwards.

    Set on the driver's connection: through SQLAlchemy the pragma would begin a transaction.
    Both caches get the main cache's size back (the temp database may not exist yet, reading 0).
    """
    raw = conn.connection.driver_connection
    cache = int(raw.execute("PRAGMA cache_size").fetchone()[0])
    threads = int(raw.execute("PRAGMA threads").fetchone()[0])
    caches = ("cache_size", "temp.cache_size")
    for pragma in caches:
        raw.execute(f"PRAGMA {pragma} = {-_REORDER_CACHE_KIB}")
    raw.execute(f"PRAGMA threads = {_REORDER_THREADS}")
    try:
        yield
    finally:
        for pragma in caches:
            raw.execute(f"PRAGMA {pragma} = {cache}")
        raw.execute(f"PRAGMA threads = {threads}")


# PostgreSQL's binary COPY framing: signature, flags, header extension length; and the trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"


def binary_copy_rows(ids, scores, guesses=None, probas=None) -> bytes:
    """Rows of (integer id, double score[, integer guess, double probability]) in PostgreSQL's
    binary COPY format, built as one numpy record array: every row has the same fields of fixed
    width, so no value passes through Python on its own."""
    import numpy as np

    columns = [("id", ">i4", ids), ("score", ">f8", scores)]
    if guesses is not None:
        columns += [("guess", ">i4", guesses), ("proba", ">f8", probas)]
    layout = [("fields", ">i2")]
    for name, kind, _ in columns:
        layout += [(f"{name}_size", ">i4"), (name, kind)]
    rows = np.empty(len(ids), dtype=layout)
    rows["fields"] = len(columns)
    for name, kind, values in columns:
        rows[f"{name}_size"] = np.dtype(kind).itemsize
        rows[name] = values
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


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
            # connect_timeout: a server behind a firewall that drops packets would otherwise
            # hang a connect (and `orchestrate --once`) forever instead of failing.
            engine = sa.create_engine(
                parsed, connect_args={"connect_timeout": _CONNECT_TIMEOUT_S}
            )
        except ModuleNotFoundError as exc:
            raise DatabaseUnavailable(
                f"No driver for {parsed.get_backend_name()}: pip install 'widgetal[postgres]'."
            ) from exc
        sa.event.listen(engine, "checkout", _ping_if_stirred(engine.dialect))
        sa.event.listen(engine, "connect", _plan_once)
        return engine
    engine = sa.create_engine(parsed)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transactions into our own hands so that writers can BEGIN IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        if parsed.database not in (None, "", ":memory:"):
            _use_wal(cursor)
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


def _plan_once(dbapi_conn, _record) -> None:
    """A connect hook: the session plans each statement once, whatever its parameters.

    psycopg prepares a statement its connection has run five times, but PostgreSQL's default
    then still plans it again for every call's parameters: for the one-statement click that
    planning took 0.6 ms of the server's 1.1 ms. widgetal's statements walk the same index
    whoever asks (the hand-out the queue order, a window the audit key, a batch the id), so one
    generic plan serves every call; their generic plans were checked with EXPLAIN at 1,000,000
    items, and a reorder at that size took as long either way.
    """
    with dbapi_conn.cursor() as cursor:
        cursor.execute(sql.plan_once_postgresql)
    dbapi_conn.commit()


def _ping_if_stirred(dialect: sa.Dialect):
    """A pool checkout hook: a connection that died with a server restart is replaced, not
    handed to a labeller's click, without a round trip per checkout (SQLAlchemy's pre-ping
    costs one on every click).

    A server that ends a session (restart, ``pg_terminate_backend``, idle timeout) sends a
    last message and closes the socket, so an idle pooled connection whose socket has
    anything to read is suspect: only then is it pinged, and replaced if the ping fails.
    """

    def checkout(dbapi_conn, _record, _proxy) -> None:
        try:
            quiet = not select.select([dbapi_conn.fileno()], [], [], 0)[0]
        except (AttributeError, OSError, ValueError):  # no descriptor to watch: ping
            quiet = False
        if quiet:
            return
        try:
            dialect.do_ping(dbapi_conn)
            dbapi_conn.rollback()
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"pooled connection is gone: {exc}") from exc

    return checkout
