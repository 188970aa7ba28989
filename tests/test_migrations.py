"""Schema migrations: a version-1 database is upgraded in place, nothing lost, and ends up equal
to a freshly created one; a version-3 database's runs get their status; a version-5 database's
queue moves to widgetal_ranks in the same order; on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import importlib.util
import subprocess
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from widgetal import Queue, audit, schema, stopping
from widgetal.db import Database
from widgetal.errors import SchemaVersionMismatch

LABELS = ["negative", "positive"]
REPO = Path(__file__).resolve().parents[1]
#: The last commit whose schema.py was version 1 (before migrations existed).
V1_COMMIT = "65652da"
V1_TABLES = [
    "widgetal_settings",
    "widgetal_items",
    "widgetal_labels",
    "widgetal_skips",
    "widgetal_runs",
    "widgetal_counters",
    "widgetal_features",
]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
#: (schema version, migration) of a database this widgetal has opened.
HEAD = (schema.SCHEMA_VERSION, schema._REVISIONS[schema.SCHEMA_VERSION])


# -- building databases -------------------------------------------------------------------------


def _build_v1(url: str) -> None:
    """A version-1 database as widgetal 0.1 left it: migration 0001, no Alembic record."""
    with Database(url).write() as conn:
        command.upgrade(schema.alembic_config(conn), "0001")
        schema.alembic_version.drop(conn)


def _v1_tables(conn: sa.Connection) -> dict[str, sa.Table]:
    meta = sa.MetaData()
    return {name: sa.Table(name, meta, autoload_with=conn) for name in V1_TABLES}


def _fill_v1(url: str) -> None:
    """Items 1-6 (queued, leased, done, reopened), labels 1-3 (one undone), a skip, a run, features,
    the label set and instructions: what a project in use holds."""
    with Database(url).write() as conn:
        t = _v1_tables(conn)
        conn.execute(
            t["widgetal_settings"].insert(),
            [{"key": "labels", "value": LABELS}, {"key": "instructions", "value": "Be kind."}],
        )
        conn.execute(
            t["widgetal_items"].insert(),
            [
                {
                    "external_id": f"tweet-{i}",
                    "text": f"text number {i} ✓",
                    "meta": {"source": "test", "n": i} if i % 2 else None,
                    "created_at": T0 + timedelta(minutes=i),
                    "priority": 0.5 * i,
                    "ranked_by": 1 if i > 2 else None,
                    "leased_by": "bo" if i == 5 else None,
                    "lease_expires_at": T0 + timedelta(hours=1) if i == 5 else None,
                    "done_at": T0 + timedelta(minutes=10 + i) if i in (1, 2) else None,
                }
                for i in range(1, 7)
            ],
        )
        conn.execute(
            t["widgetal_labels"].insert(),  # ids 1-3
            [
                _label(1, "positive", "ana", seconds=2.5),
                _label(2, "negative", "bo", seconds=None),
                # item 3 was labelled, then the label undone: back in the queue
                _label(3, "positive", "ana", seconds=1.0, undone=True),
            ],
        )
        conn.execute(
            t["widgetal_skips"].insert(), [{"item_id": 4, "labeller": "ana", "created_at": T0}]
        )
        conn.execute(
            t["widgetal_runs"].insert(),
            [
                {
                    "started_at": T0,
                    "finished_at": T0 + timedelta(seconds=30),
                    "n_labels": 2,
                    "metrics": {"accuracy": 0.75},
                    "model_file": "models/run-1.joblib",
                    "featurizer": "tfidf",
                    "strategy": "margin",
                    "timings": {"fit": 1.5},
                    "n_reranked": 4,
                    "error": None,
                }
            ],
        )
        conn.execute(
            t["widgetal_features"].insert(),
            [{"featurizer": "tfidf", "item_id": i, "vector": bytes([i, 0, 255])} for i in (1, 2)],
        )
        conn.execute(
            t["widgetal_counters"].update().where(t["widgetal_counters"].c.name == "items"),
            {"value": 6},
        )


def _label(item_id, label, labeller, seconds, undone=False, minutes=None) -> dict:
    created = T0 + timedelta(minutes=minutes if minutes is not None else 10 + item_id)
    return {
        "item_id": item_id,
        "label": label,
        "labeller": labeller,
        "created_at": created,
        "seconds": seconds,
        "undone_at": created + timedelta(minutes=1) if undone else None,
    }


def _all_tables(conn: sa.Connection) -> dict[str, sa.Table]:
    meta = sa.MetaData()
    meta.reflect(conn)
    return dict(meta.tables)


def _without(table: sa.Table, *names: str) -> sa.Table:
    """``table`` without the columns ``names`` (those a later version moved elsewhere)."""
    return sa.Table(
        table.name,
        sa.MetaData(),
        *(sa.Column(c.name, c.type, primary_key=c.primary_key)
          for c in table.columns if c.name not in names),
    )


def _rows(url: str, tables: dict[str, sa.Table] | None = None) -> dict[str, list[dict]]:
    """Every row of the version-1 tables, by their version-1 columns, in key order."""
    with Database(url).read() as conn:
        tables = tables or _v1_tables(conn)
        return {
            name: [
                dict(r._mapping)
                for r in conn.execute(sa.select(t).order_by(*t.primary_key.columns))
            ]
            for name, t in tables.items()
        }


def _ranks(url: str) -> list[tuple]:
    """(item, priority, run, guess label, guess probability) per row of widgetal_ranks."""
    with Database(url).read() as conn:
        r = schema.ranks.c
        rows = conn.execute(
            sa.select(r.item_id, r.priority, r.ranked_by, r.guess_label, r.guess_proba)
            .order_by(r.item_id)
        )
        return [tuple(row) for row in rows]


def _done_items_unranked(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Rows as a downgrade from version 6 leaves them: version 6 keeps no place in the queue for
    a done item (not awaiting review), so its priority comes back as 0, with no run or guess."""
    for row in rows["widgetal_items"]:
        if row["done_at"] is not None and not row.get("needs_review"):
            row["priority"], row["ranked_by"] = 0.0, None
            if "guess_label" in row:
                row["guess_label"] = row["guess_proba"] = None
    return rows


def _runs_as_version_1(rows: list[dict]) -> list[dict]:
    """Upgraded run rows in version 1's columns: ``reason`` was ``error`` (status dropped)."""
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k != "status"}
        row["error"] = row.pop("reason")
        out.append(row)
    return out


def _state(url: str) -> tuple[object, str | None]:
    """(schema_version in the settings, migration in Alembic's table)."""
    with Database(url).read() as conn:
        version = conn.execute(schema._read_schema_version).scalar()
        revision = None
        if sa.inspect(conn).has_table(schema.alembic_version.name):
            revision = conn.execute(schema._read_revision).scalar()
        return version, revision


# -- comparing schemas --------------------------------------------------------------------------


def _dump(conn: sa.Connection) -> dict:
    """The schema as the database itself reports it: tables, columns in order with types,
    nullability and defaults, keys, every index's full definition (partial WHERE included),
    and every trigger's (with PostgreSQL's functions)."""
    insp = sa.inspect(conn)
    out: dict = {}
    for name in sorted(insp.get_table_names()):
        out[name] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in insp.get_columns(name)
            ],
            "pk": insp.get_pk_constraint(name)["constrained_columns"],
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in insp.get_foreign_keys(name)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
        }
    if conn.dialect.name == "postgresql":
        where = conn.exec_driver_sql("SELECT current_schema()").scalar()
        rows = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        )
        out["indexes"] = sorted((n, d.replace(f" {where}.", " ")) for n, d in rows)
        rows = conn.exec_driver_sql(
            "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND NOT t.tgisinternal"
        )
        out["triggers"] = sorted((n, d.replace(f" {where}.", " ")) for n, d in rows)
        rows = conn.exec_driver_sql(
            "SELECT p.proname, p.prosrc FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema()"
        )
        out["functions"] = sorted(rows)
    else:
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        out["indexes"] = sorted((n, d or "") for n, d in rows)
        rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        out["triggers"] = sorted(rows)
    return out


def _dump_url(url: str) -> dict:
    with Database(url).read() as conn:
        return _dump(conn)


def _fresh_dump(url: str, tmp_path: Path) -> dict:
    """The schema of a database created by this widgetal from nothing."""
    if url.startswith("sqlite"):
        fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
        Queue(fresh).engine.dispose()
        return _dump_url(fresh)
    # PostgreSQL: build it in a scratch schema inside a transaction that is rolled back.
    with Database(url).engine.connect() as conn, conn.begin() as tx:
        conn.exec_driver_sql("CREATE SCHEMA widgetal_fresh")
        conn.exec_driver_sql("SET LOCAL search_path = widgetal_fresh")
        schema.create_or_check(conn)
        dump = _dump(conn)
        tx.rollback()
        return dump


def _differences(url: str) -> list:
    """What Alembic's autogenerate finds between the database and ``schema.metadata``."""
    with Database(url).read() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": schema.alembic_version.name,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return compare_metadata(context, schema.metadata)


# -- the upgrade --------------------------------------------------------------------------------


def test_a_version_1_database_with_labels_is_upgraded_in_place_and_loses_nothing(db_url, tmp_path):
    _build_v1(db_url)
    _fill_v1(db_url)
    assert _state(db_url) == (1, None)
    with Database(db_url).read() as conn:
        v1_tables = _v1_tables(conn)
    before = _rows(db_url, v1_tables)

    q = Queue(db_url)
    q.engine.dispose()

    assert _state(db_url) == HEAD
    # Version 6 keeps an item's place in the queue (priority, run) in widgetal_ranks, and only
    # while the item is queued: the queued items' places are compared there, the rest of every
    # item row here. The runs table's "error" is "reason" from version 4 on (tests below).
    queued = []
    for row in before["widgetal_items"]:
        place = (row["id"], row.pop("priority"), row.pop("ranked_by"), None, None)
        if row["done_at"] is None:
            queued.append(place)
    assert [place[0] for place in queued] == [3, 4, 5, 6]
    assert _ranks(db_url) == queued  # and no guess yet
    items = _without(v1_tables["widgetal_items"], "priority", "ranked_by")
    after = _rows(db_url, {**v1_tables, "widgetal_items": items, "widgetal_runs": schema.runs})
    assert [r["status"] for r in after["widgetal_runs"]] == ["trained"]
    after["widgetal_runs"] = _runs_as_version_1(after["widgetal_runs"])
    for rows in (before, after):  # the one row that must change
        for row in rows["widgetal_settings"]:
            if row["key"] == "schema_version":
                row["value"] = "version"
    assert after == before
    assert q.labels == LABELS and q.instructions == "Be kind."
    # the new columns start empty, with their defaults
    with Database(db_url).read() as conn:
        items = conn.execute(
            sa.select(
                schema.items.c.served_priority,
                schema.items.c.served_ranked_by,
                schema.items.c.extra_labels,
                schema.items.c.needs_review,
                schema.items.c.review_leased_by,
                schema.items.c.review_lease_expires_at,
            )
        ).all()
        provenance = conn.execute(sa.select(schema.labels.c.ranked_by, schema.labels.c.priority))
        assert set(items) == {(None, None, 0, False, None, None)}
        skips = conn.execute(sa.select(schema.skips.c.id, schema.skips.c.undone_at)).all()
        assert [tuple(r) for r in skips] == [(1, None)]  # the version-1 skip still stands
        assert set(provenance) == {(None, None)}
        for table in (schema.leases, schema.reviews, schema.labellers):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0

    # the upgraded schema is the one this widgetal creates from nothing
    assert _differences(db_url) == []
    assert _dump_url(db_url) == _fresh_dump(db_url, tmp_path)


def test_the_upgraded_queue_works(db_url):
    _build_v1(db_url)
    _fill_v1(db_url)
    q = Queue(db_url, lease_seconds=600)
    assert q.progress().done == 2
    item = q.pop("cy")
    q.submit(item.item_id, "negative", "cy")
    assert q.progress().done == 3
    q.engine.dispose()


# -- version 4 to 5: label counts kept by the database -------------------------------------------


def _counts(q: Queue) -> tuple[dict, dict]:
    """Labels per labeller as progress shows them, and as a count of the labels themselves."""
    shown = q.progress().per_labeller
    with q.db.read() as conn:
        rows = conn.execute(
            sa.select(schema.labels.c.labeller, sa.func.count())
            .where(schema.labels.c.undone_at.is_(None))
            .group_by(schema.labels.c.labeller)
        ).all()
    return shown, {labeller: n for labeller, n in rows}


def test_version_5_counts_the_labels_already_there_and_keeps_counting(db_url, tmp_path):
    _build_v1(db_url)
    _fill_v1(db_url)  # two labels that count, one undone
    with Database(db_url).write() as conn:
        command.stamp(schema.alembic_config(conn), "0001")
        command.upgrade(schema.alembic_config(conn), "0004")
    q = Queue(db_url, lease_seconds=600)
    assert _state(db_url) == HEAD
    shown, actual = _counts(q)
    assert shown == actual and sum(actual.values()) == 2
    for labeller in ("cy", "cy", "dee"):
        item = q.pop(labeller)
        q.submit(item.item_id, "negative", labeller)
    q.undo("cy")
    shown, actual = _counts(q)
    assert shown == actual and sum(actual.values()) == 4
    q.engine.dispose()
    assert _differences(db_url) == []
    assert _dump_url(db_url) == _fresh_dump(db_url, tmp_path)


def test_the_downgrade_to_version_4_drops_the_counts_and_their_triggers(db_url):
    _build_v1(db_url)
    _fill_v1(db_url)
    with Database(db_url).write() as conn:
        command.stamp(schema.alembic_config(conn), "0001")
        command.upgrade(schema.alembic_config(conn), "0004")
    v4_schema, v4_rows = _dump_url(db_url), _rows(db_url)
    Queue(db_url).engine.dispose()
    with Database(db_url).write() as conn:
        command.downgrade(schema.alembic_config(conn), "0004")
    assert _dump_url(db_url) == v4_schema  # triggers (and PostgreSQL's function) included
    assert _state(db_url) == (4, "0004")
    assert _rows(db_url) == _done_items_unranked(v4_rows)


# -- version 5 to 6: the queue's order in widgetal_ranks ------------------------------------------

#: Items of a version-5 project in use: (state, priority, run, guess label, guess probability).
V5_ITEMS = {
    1: ("queued", 0.9, 2, "positive", 0.8),
    2: ("queued", 0.3, 2, "negative", 0.6),
    3: ("queued", 0.6, 1, None, None),  # ranked by a cold-start run: no guess
    4: ("leased", 0.95, 2, "positive", 0.55),  # on bo's screen
    5: ("done", 0.7, 2, "negative", 0.9),
    6: ("review", 0.4, 2, "positive", 0.51),  # ana and bo disagree
    7: ("queued", 0.0, None, None, None),  # imported after the last run
    8: ("done", 0.2, 1, None, None),
}


def _build_v5(url: str) -> None:
    """A version-5 database (migration 0005) holding items in every state, with the priorities,
    runs and guesses the runs gave them, and the labels of the done and disputed ones."""
    with Database(url).write() as conn:
        command.upgrade(schema.alembic_config(conn), "0005")
    lease_until = datetime.now(timezone.utc) + timedelta(hours=1)
    with Database(url).write() as conn:
        t = _all_tables(conn)
        conn.execute(
            t["widgetal_settings"].insert(),
            # no audit pops: the queue serves by priority alone
            [{"key": "labels", "value": LABELS}, {"key": "audit_share", "value": 0.0}],
        )
        conn.execute(
            t["widgetal_runs"].insert(),
            [{"started_at": T0 + timedelta(minutes=i), "finished_at": T0 + timedelta(minutes=i),
              "status": "trained" if i == 2 else "cold-start"} for i in (1, 2)],
        )
        rows = []
        for i, (state, priority, run, guess, proba) in V5_ITEMS.items():
            done = state in ("done", "review")
            rows.append({
                "external_id": f"tweet-{i}", "text": f"text number {i}", "meta": None,
                "created_at": T0, "priority": priority, "ranked_by": run,
                "leased_by": "bo" if state == "leased" else None,
                "lease_expires_at": lease_until if state == "leased" else None,
                "served_priority": priority if state == "leased" else None,
                "served_ranked_by": run if state == "leased" else None,
                "done_at": T0 + timedelta(minutes=10 + i) if done else None,
                "needs_review": state == "review",
                "guess_label": guess, "guess_proba": proba, "audit_key": i / 10,
            })
        conn.execute(t["widgetal_items"].insert(), rows)
        labels = [(5, "negative", "ana"), (6, "positive", "ana"), (6, "negative", "bo"),
                  (8, "positive", "bo")]
        conn.execute(
            t["widgetal_labels"].insert(),
            [{**_label(i, label, who, seconds=2.0), "priority": V5_ITEMS[i][1],
              "ranked_by": V5_ITEMS[i][2]} for i, label, who in labels],
        )
        conn.execute(
            t["widgetal_counters"].update().where(t["widgetal_counters"].c.name == "items"),
            {"value": len(V5_ITEMS)},
        )


def test_a_version_5_queue_moves_to_the_ranks_in_the_same_order(db_url, tmp_path):
    _build_v5(db_url)
    assert _state(db_url) == (5, "0005")

    q = Queue(db_url, lease_seconds=600)

    assert _state(db_url) == HEAD
    # every item still in the hand-out or awaiting a reviewer keeps its priority, run and
    # guess; the done items have no place in the queue
    assert _ranks(db_url) == [
        (i, *place) for i, (state, *place) in V5_ITEMS.items() if state != "done"
    ]
    # the queue serves by the same priorities as before (item 4 is on bo's screen)
    popped = [q.pop(f"labeller-{n}") for n in range(5)]
    assert popped[-1] is None
    assert [(p.item_id, p.priority, p.ranked_by) for p in popped[:-1]] == [
        (1, 0.9, 2), (3, 0.6, 1), (2, 0.3, 2), (7, 0.0, None)
    ]
    assert (popped[0].guess_label, popped[0].guess_proba) == ("positive", 0.8)
    assert q.pop("bo").item_id == 4  # bo's lease survived the upgrade
    # labelling an item takes it out of the queue; undoing the label brings it back at the
    # priority and run it was served at (its guess comes with the next run)
    q.submit(1, "positive", "labeller-0")
    assert 1 not in [row[0] for row in _ranks(db_url)]
    back = q.undo("labeller-0")
    assert (back.item_id, back.priority, back.ranked_by) == (1, 0.9, 2)
    assert _ranks(db_url)[0] == (1, 0.9, 2, None, None)
    # the disputed item still reaches a reviewer
    q.add_person("rita", reviewer=True)
    assert q.pop_review("rita").item_id == 6
    q.engine.dispose()

    assert _differences(db_url) == []
    assert _dump_url(db_url) == _fresh_dump(db_url, tmp_path)


def test_the_downgrade_to_version_5_puts_the_ranks_back_on_the_items(db_url):
    _build_v5(db_url)
    with Database(db_url).read() as conn:
        tables = _all_tables(conn)
    v5_schema, v5_rows = _dump_url(db_url), _rows(db_url, tables)
    Queue(db_url).engine.dispose()
    assert _state(db_url) == HEAD
    with Database(db_url).write() as conn:
        command.downgrade(schema.alembic_config(conn), "0005")
    # the item table as version 5 made it, its columns in version 5's order, with its indexes
    assert _dump_url(db_url) == v5_schema
    assert _state(db_url) == (5, "0005")
    # the queued, leased and disputed items get their priority, run and guess back
    items = tables["widgetal_items"].c
    with Database(db_url).read() as conn:
        rows = conn.execute(
            sa.select(items.id, items.priority, items.ranked_by, items.guess_label,
                      items.guess_proba).order_by(items.id)
        )
        assert [tuple(row) for row in rows] == [
            (i, *place) if state != "done" else (i, 0.0, None, None, None)
            for i, (state, *place) in V5_ITEMS.items()
        ]
    # and every other value as version 5 left it
    assert _rows(db_url, tables) == _done_items_unranked(v5_rows)


# -- version 3 to 4: each run's outcome in a status column ---------------------------------------

_SKIP = "only one class labelled so far (positive: 12); label at least 5 texts of another class"
_COLD = "no labels yet: label at least 5 texts of each of negative, positive"
#: Runs as version 3 wrote them (oldest first), each with the (status, reason) it upgrades to.
V3_RUNS = [
    ({"strategy": "cold-start", "error": f"skipped: {_COLD}", "n_reranked": 40,
      "metrics": {"awaiting_review": 0, "cold_start": {"clusters": 6, "boosted": 0}}},
     ("cold-start", _COLD)),
    ({"error": f"skipped: {_SKIP}"}, ("skipped", _SKIP)),
    ({"model_file": "models/run-3.joblib", "n_reranked": 30, "metrics": {"f1_macro": 0.71}},
     ("trained", None)),
    ({"error": "OSError: [Errno 28] No space left on device"},
     ("failed", "OSError: [Errno 28] No space left on device")),
    ({"finished": False}, ("running", None)),  # stopped mid-cycle, or still at work
]


def _build_v3_with_runs(url: str) -> None:
    """A version-3 database (migration 0003) holding a run of every kind."""
    with Database(url).write() as conn:
        command.upgrade(schema.alembic_config(conn), "0003")
    rows = []
    for i, (fields, _) in enumerate(V3_RUNS, start=1):
        row = {"started_at": T0 + timedelta(minutes=i), "n_labels": 10 * i, "metrics": None,
               "model_file": None, "featurizer": "tfidf-char", "strategy": "entropy",
               "timings": {"read_labels": 0.01}, "n_reranked": None, "error": None}
        fields = dict(fields)
        finished = fields.pop("finished", True)
        row["finished_at"] = row["started_at"] + timedelta(seconds=20) if finished else None
        rows.append({**row, **fields})
    with Database(url).write() as conn:
        conn.execute(sa.Table("widgetal_runs", sa.MetaData(), autoload_with=conn).insert(), rows)


def test_a_version_3_databases_runs_are_upgraded_to_their_status_and_reason(db_url, tmp_path):
    _build_v3_with_runs(db_url)
    before = _rows(db_url)["widgetal_runs"]

    q = Queue(db_url)
    runs = q.runs()[::-1]  # oldest first

    assert _state(db_url) == HEAD
    assert [(r["status"], r["reason"]) for r in runs] == [want for _, want in V3_RUNS]
    # every other column as version 3 left it
    assert [{k: v for k, v in r.items() if k not in ("status", "reason", "error")}
            for r in runs] == [{k: v for k, v in r.items() if k != "error"} for r in before]
    # what reads the runs (learning curve, stop signal) finds the one trained run
    assert [point["run"] for point in audit.curve(runs)] == [3]
    assert [run_id for run_id, _, _ in stopping.stop_signal(runs[::-1]).kappas] == [3]
    q.engine.dispose()
    assert _differences(db_url) == []
    assert _dump_url(db_url) == _fresh_dump(db_url, tmp_path)


def test_the_downgrade_to_version_3_gives_the_runs_their_text_back(db_url):
    _build_v3_with_runs(db_url)
    v3_schema, v3_rows = _dump_url(db_url), _rows(db_url)
    Queue(db_url).engine.dispose()
    with Database(db_url).write() as conn:
        command.downgrade(schema.alembic_config(conn), "0003")
    assert _dump_url(db_url) == v3_schema
    assert _rows(db_url) == v3_rows
    assert _state(db_url) == (3, "0003")


def test_a_fresh_database_equals_the_metadata_and_is_at_the_head_migration(db_url):
    Queue(db_url, labels=LABELS).engine.dispose()
    assert _state(db_url) == (schema.SCHEMA_VERSION, schema._REVISIONS[schema.SCHEMA_VERSION])
    assert _differences(db_url) == []


def test_opening_an_upgraded_database_again_changes_nothing(db_url, monkeypatch):
    _build_v1(db_url)
    _fill_v1(db_url)
    Queue(db_url).engine.dispose()
    schema_before, rows_before = _dump_url(db_url), _rows(db_url)

    def no_migration(*args, **kwargs):
        raise AssertionError("a database at the head migration was migrated again")

    monkeypatch.setattr(schema, "_migrate", no_migration)
    Queue(db_url).engine.dispose()
    assert _dump_url(db_url) == schema_before
    assert _rows(db_url) == rows_before
    assert _state(db_url) == HEAD


def test_a_database_of_a_newer_version_is_refused_and_left_alone(db_url):
    _build_v1(db_url)
    with Database(db_url).write() as conn:
        conn.execute(schema._write_schema_version, {"version": 99})
    before = _dump_url(db_url)
    with pytest.raises(SchemaVersionMismatch, match="schema version 99, but this widgetal"):
        Queue(db_url)
    assert _dump_url(db_url) == before
    assert _state(db_url) == (99, None)


def test_a_database_at_an_unknown_migration_is_refused(db_url):
    Queue(db_url).engine.dispose()
    with Database(db_url).write() as conn:
        conn.execute(schema.alembic_version.update().values(version_num="0042"))
    at = rf"version {schema.SCHEMA_VERSION} \(migration 0042\)"
    with pytest.raises(SchemaVersionMismatch, match=at):
        Queue(db_url)


def test_two_active_labels_by_one_labeller_on_one_item_do_not_block_the_upgrade(db_url):
    """Version 1 never wrote this, but a hand-edited database may hold it: the older label is
    marked undone when the newer was given, and no row is lost."""
    _build_v1(db_url)
    _fill_v1(db_url)
    with Database(db_url).write() as conn:
        conn.execute(
            _v1_tables(conn)["widgetal_labels"].insert(),
            [_label(1, "negative", "ana", seconds=3.0, minutes=30)],
        )
    Queue(db_url).engine.dispose()
    with Database(db_url).read() as conn:
        rows = conn.execute(
            sa.select(schema.labels.c.id, schema.labels.c.undone_at)
            .where(schema.labels.c.item_id == 1)
            .order_by(schema.labels.c.id)
        ).all()
    assert [r.id for r in rows] == [1, 4]
    assert rows[0].undone_at.replace(tzinfo=None) == (T0 + timedelta(minutes=30)).replace(
        tzinfo=None
    )
    assert rows[1].undone_at is None


def test_the_downgrade_returns_to_version_1(db_url):
    _build_v1(db_url)
    _fill_v1(db_url)
    v1_schema, v1_rows = _dump_url(db_url), _rows(db_url)
    Queue(db_url).engine.dispose()
    with Database(db_url).write() as conn:
        command.downgrade(schema.alembic_config(conn), "0001")
        schema.alembic_version.drop(conn)
    assert _dump_url(db_url) == v1_schema
    assert _rows(db_url) == _done_items_unranked(v1_rows)
    assert _state(db_url) == (1, None)


@pytest.mark.parametrize("start", ["empty", "version 1"])
def test_processes_opening_one_database_at_once_all_succeed(db_url, start):
    """Creation and upgrade run under a lock (PostgreSQL: advisory; SQLite: BEGIN IMMEDIATE):
    exactly one opener does the work, the others find it done."""
    if start == "version 1":
        _build_v1(db_url)
        _fill_v1(db_url)
    n = 4
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def open_queue():
        try:
            barrier.wait()
            Queue(db_url, labels=LABELS).engine.dispose()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_queue) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _state(db_url) == HEAD
    assert _differences(db_url) == []


# -- the migrations themselves ------------------------------------------------------------------


def test_the_head_migration_is_this_widgetals_schema_version():
    script = ScriptDirectory.from_config(schema.alembic_config(None))
    assert script.get_current_head() == schema._REVISIONS[schema.SCHEMA_VERSION]
    assert max(schema._REVISIONS) == schema.SCHEMA_VERSION
    chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert chain == [schema._REVISIONS[v] for v in sorted(schema._REVISIONS)]


def _v1_release_schema():
    """schema.py as the last version-1 release had it, loaded from git history."""
    try:
        source = subprocess.run(
            ["git", "show", f"{V1_COMMIT}:widgetal/schema.py"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"needs the git history (commit {V1_COMMIT})")
    spec = importlib.util.spec_from_loader("widgetal._schema_v1", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "widgetal"
    exec(compile(source, "schema_v1.py", "exec"), module.__dict__)
    assert module.SCHEMA_VERSION == 1
    return module


def test_migration_0001_builds_exactly_what_version_1_created(db_url, tmp_path):
    v1 = _v1_release_schema()
    _build_v1(db_url)
    if db_url.startswith("sqlite"):
        released = f"sqlite:///{tmp_path / 'released.db'}"
        with Database(released).write() as conn:
            v1.create_or_check(conn)
        expected, expected_rows = _dump_url(released), _rows(released)
    else:
        with Database(db_url).engine.connect() as conn, conn.begin() as tx:
            conn.exec_driver_sql("CREATE SCHEMA widgetal_released")
            conn.exec_driver_sql("SET LOCAL search_path = widgetal_released")
            v1.create_or_check(conn)
            expected = _dump(conn)
            tables = _v1_tables(conn)
            expected_rows = {
                name: [dict(r._mapping) for r in conn.execute(sa.select(t))]
                for name, t in tables.items()
            }
            tx.rollback()
    assert _dump_url(db_url) == expected
    assert _rows(db_url) == expected_rows
