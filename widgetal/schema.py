"""The tables, the schema version, and creating or checking them."""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .errors import SchemaVersionMismatch

if TYPE_CHECKING:
    from alembic.config import Config

#: Bumped whenever a table changes, with an Alembic migration (``widgetal/migrations``) that
#: upgrades the previous version in place.
SCHEMA_VERSION = 7

metadata = sa.MetaData()
_UTC = sa.DateTime(timezone=True)


def utcnow() -> datetime:
    """Now, in UTC, as every timestamp column stores it."""
    return datetime.now(timezone.utc)


def jsonable(value: Any) -> Any:
    """``value`` as a JSON column stores it on every database: numpy scalars and arrays become
    plain values, other objects their text, and NaN or infinity null (PostgreSQL's JSON refuses
    them)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

#: key/value project settings: label set, instructions, schema version.
settings = sa.Table(
    "widgetal_settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
)

#: One row per text, with the state of its hand-out beside it so that a pop is one UPDATE of
#: one row. Its place in the queue lives in ``ranks``, which a reorder rewrites.
items = sa.Table(
    "widgetal_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("external_id", sa.String, nullable=False, unique=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("meta", sa.JSON, nullable=True),
    sa.Column("created_at", _UTC, nullable=False),
    # hand-out state
    sa.Column("leased_by", sa.String, nullable=True),
    sa.Column("lease_expires_at", _UTC, nullable=True),
    sa.Column("done_at", _UTC, nullable=True),
    # what the lease holder was served: the provenance its label records (K = 1)
    sa.Column("served_priority", sa.Float, nullable=True),
    sa.Column("served_ranked_by", sa.Integer, nullable=True),
    # team labelling: labels still wanted beyond the project's overlap (a reviewer sent the
    # item back), and whether the labels disagree and await a reviewer
    sa.Column("extra_labels", sa.Integer, nullable=False, server_default="0"),
    sa.Column("needs_review", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("review_leased_by", sa.String, nullable=True),
    sa.Column("review_lease_expires_at", _UTC, nullable=True),
    # the audit sample (see widgetal/audit.py): a uniform random key fixed at import (items
    # with audit_key < the project's audit_share form the audit reserve, served in key order
    # and never by priority), and whether the item was handed out as an audit item, which
    # keeps its labels out of training for good
    sa.Column("audit_key", sa.Float, nullable=True, default=random.random),
    sa.Column("audit", sa.Boolean, nullable=False, server_default=sa.false()),
)
# An audit pop walks this index from the smallest key: only undone items.
sa.Index(
    "widgetal_items_audit_order",
    items.c.audit_key,
    items.c.id,
    sqlite_where=items.c.done_at.is_(None),
    postgresql_where=items.c.done_at.is_(None),
)
# With overlap, progress counts the items done on every click: this counts them without
# reading every item (at 1,000,000 items the count read them all, 75-90 ms a click).
sa.Index(
    "widgetal_items_done",
    items.c.id,
    sqlite_where=items.c.done_at.is_not(None),
    postgresql_where=items.c.done_at.is_not(None),
)
# "Does this labeller hold a lease?" is asked on every pop.
sa.Index(
    "widgetal_items_leased_by",
    items.c.leased_by,
    sqlite_where=items.c.leased_by.is_not(None),
    postgresql_where=items.c.leased_by.is_not(None),
)

#: Append-only label history; undo sets undone_at instead of deleting.
labels = sa.Table(
    "widgetal_labels",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), nullable=False),
    sa.Column("label", sa.String, nullable=False),
    sa.Column("labeller", sa.String, nullable=False),
    sa.Column("created_at", _UTC, nullable=False),
    sa.Column("seconds", sa.Float, nullable=True),
    sa.Column("undone_at", _UTC, nullable=True),
    # provenance: the run that ranked the item and its priority when it was served
    sa.Column("ranked_by", sa.Integer, nullable=True),
    sa.Column("priority", sa.Float, nullable=True),
    # the item was served as an audit item: this label tests models and never trains them
    sa.Column("audit", sa.Boolean, nullable=False, server_default=sa.false()),
)
sa.Index("widgetal_labels_item", labels.c.item_id)
sa.Index("widgetal_labels_labeller", labels.c.labeller, labels.c.id)
# The database itself enforces one active label per item and labeller (overlap: K distinct
# labellers), whatever the Python code does.
sa.Index(
    "widgetal_labels_one_active",
    labels.c.item_id,
    labels.c.labeller,
    unique=True,
    sqlite_where=labels.c.undone_at.is_(None),
    postgresql_where=labels.c.undone_at.is_(None),
)
# The review hand-out reads only items awaiting a reviewer (few: it sorts them by their rank).
# SQLite's condition is written as SQLAlchemy writes it in queries there (`needs_review = 1`):
# SQLite uses a partial index only for a query that repeats its condition, and with a bare
# `needs_review` every review pop and count scanned the whole table (2.3 s at 10,000,000).
sa.Index(
    "widgetal_items_awaiting_review",
    items.c.id,
    sqlite_where=items.c.needs_review == sa.true(),
    postgresql_where=items.c.needs_review,
)

#: The queue's order: a row per item still in the hand-out (not done) or awaiting a reviewer,
#: with its priority (higher is served sooner), the run that set it (runs.id) and that run's
#: guess (the label its model finds likeliest, and that probability: the app shows it without
#: loading a model; NULL until a model has ranked the item). Apart from the wide item rows so
#: that a reorder of every item rewrites a narrow table in one pass (schema version 6): on
#: PostgreSQL it builds a new table and swaps it in. No foreign key for the same reason; the
#: triggers below keep a row exactly while the item is in the hand-out or under review.
ranks = sa.Table(
    "widgetal_ranks",
    metadata,
    sa.Column("item_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("priority", sa.Float, nullable=False, server_default="0"),
    sa.Column("ranked_by", sa.Integer, nullable=True),
    sa.Column("guess_label", sa.String, nullable=True),
    sa.Column("guess_proba", sa.Float, nullable=True),
)
# The hand-out walks this index from the top, best first.
sa.Index("widgetal_ranks_order", ranks.c.priority.desc(), ranks.c.item_id)

# The triggers that keep ranks (schema version 6; migration 0006 creates the same). A new item
# not done gets priority 0; an item leaves the queue when it is done and not awaiting a
# reviewer; an item reopened (its label undone) comes back at the priority and run its latest
# label records (what it was served at), without a guess until the next cycle.
RANK_DDL = {
    "sqlite": [
        "CREATE TRIGGER widgetal_items_ranked AFTER INSERT ON widgetal_items "
        "WHEN NEW.done_at IS NULL BEGIN "
        "INSERT INTO widgetal_ranks (item_id, priority) VALUES (NEW.id, 0); END",
        "CREATE TRIGGER widgetal_items_unranked AFTER UPDATE OF done_at, needs_review "
        "ON widgetal_items WHEN NEW.done_at IS NOT NULL AND NOT NEW.needs_review BEGIN "
        "DELETE FROM widgetal_ranks WHERE item_id = NEW.id; END",
        "CREATE TRIGGER widgetal_items_reranked AFTER UPDATE OF done_at ON widgetal_items "
        "WHEN OLD.done_at IS NOT NULL AND NEW.done_at IS NULL BEGIN "
        "INSERT INTO widgetal_ranks (item_id, priority, ranked_by) VALUES (NEW.id, "
        "coalesce((SELECT priority FROM widgetal_labels WHERE item_id = NEW.id "
        "ORDER BY id DESC LIMIT 1), 0), "
        "(SELECT ranked_by FROM widgetal_labels WHERE item_id = NEW.id "
        "ORDER BY id DESC LIMIT 1)) "
        "ON CONFLICT (item_id) DO NOTHING; END",
    ],
    "postgresql": [
        "CREATE FUNCTION widgetal_rank_item() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.done_at IS NOT NULL AND NOT NEW.needs_review THEN "
        "DELETE FROM widgetal_ranks WHERE item_id = NEW.id; "
        "ELSIF NEW.done_at IS NULL AND OLD.done_at IS NOT NULL THEN "
        "INSERT INTO widgetal_ranks (item_id, priority, ranked_by) "
        "SELECT NEW.id, coalesce(l.priority, 0), l.ranked_by FROM (SELECT 1) AS one "
        "LEFT JOIN LATERAL (SELECT priority, ranked_by FROM widgetal_labels "
        "WHERE item_id = NEW.id ORDER BY id DESC LIMIT 1) AS l ON true "
        "ON CONFLICT (item_id) DO NOTHING; "
        "END IF; RETURN NULL; END $$",
        "CREATE TRIGGER widgetal_items_unranked AFTER UPDATE OF done_at, needs_review "
        "ON widgetal_items FOR EACH ROW EXECUTE FUNCTION widgetal_rank_item()",
        # one statement for a whole import: a row trigger per item would slow a large one
        "CREATE FUNCTION widgetal_rank_items() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO widgetal_ranks (item_id, priority) "
        "SELECT id, 0 FROM added WHERE done_at IS NULL; RETURN NULL; END $$",
        "CREATE TRIGGER widgetal_items_ranked AFTER INSERT ON widgetal_items "
        "REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION widgetal_rank_items()",
    ],
}

#: Overlap K > 1: one row per live (or expired, not yet reused) lease of an item by a labeller.
#: With K = 1 the lease lives on the item row, so today's single-statement pop stays as it is.
leases = sa.Table(
    "widgetal_leases",
    metadata,
    sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), primary_key=True),
    sa.Column("labeller", sa.String, primary_key=True),
    sa.Column("expires_at", _UTC, nullable=False),
    sa.Column("served_priority", sa.Float, nullable=True),
    sa.Column("served_ranked_by", sa.Integer, nullable=True),
)
sa.Index("widgetal_leases_labeller", leases.c.labeller, leases.c.expires_at)

#: A reviewer's decision on an item whose labels disagree: a final label, or (label NULL) the
#: item sent back for one more label. Undo marks it undone, like a label.
reviews = sa.Table(
    "widgetal_reviews",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), nullable=False),
    sa.Column("reviewer", sa.String, nullable=False),
    sa.Column("label", sa.String, nullable=True),
    sa.Column("created_at", _UTC, nullable=False),
    sa.Column("seconds", sa.Float, nullable=True),
    sa.Column("undone_at", _UTC, nullable=True),
)
sa.Index("widgetal_reviews_item", reviews.c.item_id)
sa.Index("widgetal_reviews_reviewer", reviews.c.reviewer, reviews.c.id)
# At most one final decision counts per item: two reviewers cannot both finalise it. (An item
# sent back may be sent back again later, so those events are left out.)
sa.Index(
    "widgetal_reviews_one_active",
    reviews.c.item_id,
    unique=True,
    sqlite_where=sa.and_(reviews.c.undone_at.is_(None), reviews.c.label.is_not(None)),
    postgresql_where=sa.and_(reviews.c.undone_at.is_(None), reviews.c.label.is_not(None)),
)

#: The people who label: their role (labeller or reviewer), a hash of their personal key
#: (never the key) and whether they may still work.
labellers = sa.Table(
    "widgetal_labellers",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("role", sa.String(16), nullable=False, server_default="labeller"),
    sa.Column("key_hash", sa.String, nullable=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", _UTC, nullable=False),
)

#: Items a labeller skipped: never shown to that labeller again while the skip stands. Undo
#: marks a skip undone instead of deleting it (the history keeps it), so a re-skip is a new row.
skips = sa.Table(
    "widgetal_skips",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), nullable=False),
    sa.Column("labeller", sa.String, nullable=False),
    sa.Column("created_at", _UTC, nullable=False),
    sa.Column("undone_at", _UTC, nullable=True),
)
# One standing skip per item and labeller; it is also what every pop probes ("not skipped by me").
sa.Index(
    "widgetal_skips_one_active",
    skips.c.item_id,
    skips.c.labeller,
    unique=True,
    sqlite_where=skips.c.undone_at.is_(None),
    postgresql_where=skips.c.undone_at.is_(None),
)
# Undo finds the labeller's latest skip.
sa.Index("widgetal_skips_labeller", skips.c.labeller, skips.c.id)

#: What became of a run (``widgetal_runs.status``): ``running`` until it finishes, then
#: ``trained`` (a model saved, the queue reordered), ``cold-start`` (no model yet, the queue
#: ordered for diversity), ``skipped`` (no model, nothing ordered) or ``failed``. The orchestrator
#: writes each; ``reason`` says why a run has no model (the skip's reason, or the error).
RUN_STATUSES = ("running", "trained", "cold-start", "skipped", "failed")

#: One row per orchestrator cycle.
runs = sa.Table(
    "widgetal_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", _UTC, nullable=False),
    sa.Column("finished_at", _UTC, nullable=True),
    sa.Column("n_labels", sa.Integer, nullable=True),
    sa.Column("metrics", sa.JSON, nullable=True),
    sa.Column("model_file", sa.String, nullable=True),
    sa.Column("featurizer", sa.String, nullable=True),
    sa.Column("strategy", sa.String, nullable=True),
    sa.Column("timings", sa.JSON, nullable=True),
    sa.Column("n_reranked", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    # last because version 4 added it (a new run is open until it finishes): see RUN_STATUSES
    sa.Column("status", sa.String(16), nullable=False, server_default="running"),
)

#: Counts kept in step with the rows they count, in the same transaction: the number of items is
#: read on every click, and counting a million rows each time would take ~100 ms.
counters = sa.Table(
    "widgetal_counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

#: The labels that count (not undone) per labeller and label, kept by the database itself in
#: each label's own transaction (triggers on widgetal_labels, below): progress, read on every
#: click, reads these few rows instead of counting every label (7.5 ms at 24,000 labels on
#: PostgreSQL, growing with them).
label_counts = sa.Table(
    "widgetal_label_counts",
    metadata,
    sa.Column("labeller", sa.String, primary_key=True),
    sa.Column("label", sa.String, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

# The triggers that keep label_counts (schema version 5; migration 0005 creates the same). A
# label counts from its insert (unless inserted undone) until undo sets its undone_at. Row
# triggers on both databases: on PostgreSQL a statement trigger with transition tables (one
# upsert per statement, cheaper for bulk imports) cost the click more than a row trigger.
LABEL_COUNT_DDL = {
    "sqlite": [
        "CREATE TRIGGER widgetal_labels_counted AFTER INSERT ON widgetal_labels "
        "WHEN NEW.undone_at IS NULL BEGIN "
        "INSERT INTO widgetal_label_counts (labeller, label, n) "
        "VALUES (NEW.labeller, NEW.label, 1) "
        "ON CONFLICT (labeller, label) DO UPDATE SET n = n + 1; END",
        "CREATE TRIGGER widgetal_labels_uncounted AFTER UPDATE OF undone_at ON widgetal_labels "
        "WHEN (OLD.undone_at IS NULL) <> (NEW.undone_at IS NULL) BEGIN "
        "INSERT INTO widgetal_label_counts (labeller, label, n) "
        "VALUES (NEW.labeller, NEW.label, CASE WHEN NEW.undone_at IS NULL THEN 1 ELSE -1 END) "
        "ON CONFLICT (labeller, label) DO UPDATE SET n = n + excluded.n; END",
    ],
    "postgresql": [
        "CREATE FUNCTION widgetal_count_label() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "DECLARE d integer := CASE WHEN NEW.undone_at IS NULL THEN 1 ELSE 0 END; BEGIN "
        "IF TG_OP = 'UPDATE' AND OLD.undone_at IS NULL THEN d := d - 1; END IF; "
        "IF d <> 0 THEN "
        "INSERT INTO widgetal_label_counts AS c (labeller, label, n) "
        "VALUES (NEW.labeller, NEW.label, d) "
        "ON CONFLICT (labeller, label) DO UPDATE SET n = c.n + excluded.n; "
        "END IF; RETURN NULL; END $$",
        "CREATE TRIGGER widgetal_labels_counted AFTER INSERT OR UPDATE OF undone_at "
        "ON widgetal_labels FOR EACH ROW EXECUTE FUNCTION widgetal_count_label()",
    ],
}
for _ddl in (LABEL_COUNT_DDL, RANK_DDL):
    for _dialect, _statements in _ddl.items():
        for _statement in _statements:  # once every table exists
            sa.event.listen(metadata, "after_create",
                            sa.DDL(_statement).execute_if(dialect=_dialect))

#: Each text embedded once per featurizer; a cycle embeds only what is missing here.
features = sa.Table(
    "widgetal_features",
    metadata,
    sa.Column("featurizer", sa.String, primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), primary_key=True),
    sa.Column("vector", sa.LargeBinary, nullable=False),
)


#: Alembic's record of the migration a database is at. Not in ``metadata``: Alembic creates and
#: owns it. Prefixed like our tables, so it cannot clash with another application's Alembic in a
#: shared database.
alembic_version = sa.Table(
    "widgetal_alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), primary_key=True),
)

#: The migration (``widgetal/migrations/versions``) that brings a database to each schema version.
_REVISIONS = {1: "0001", 2: "0002", 3: "0003", 4: "0004", 5: "0005", 6: "0006", 7: "0007"}
_MIGRATIONS = Path(__file__).with_name("migrations")

# A transaction-scoped advisory lock, released at commit; the key is arbitrary but fixed.
_lock_schema_postgresql = sa.text("SELECT pg_advisory_xact_lock(7261616263)")

# The schema version the database records: read first, on every open.
_read_schema_version = sa.select(settings.c.value).where(settings.c.key == "schema_version")

# The migration the database is at (widgetal 0.1 databases have no such table: version 1).
_read_revision = sa.select(alembic_version.c.version_num)

# After an upgrade: the database records the version it now has.
_write_schema_version = (
    settings.update()
    .where(settings.c.key == "schema_version")
    .values(value=sa.bindparam("version"))
)


def create_or_check(connection: sa.Connection) -> None:
    """Create the tables in an empty database, upgrade an older one in place, or check it.

    Runs inside the caller's write transaction (and on PostgreSQL under an advisory lock), so an
    upgrade is all or nothing and two processes opening one database never both create or
    upgrade it.

    Raises
    ------
    SchemaVersionMismatch
        If the database holds widgetal tables of a version this widgetal cannot upgrade (a newer
        one, or one it does not know).
    """
    if connection.dialect.name == "postgresql":
        # Serialise first-time creation and upgrades: an orchestrator and a labelling app
        # started together would otherwise both try to create or alter the tables.
        connection.execute(_lock_schema_postgresql)
    inspector = sa.inspect(connection)
    if not inspector.has_table(settings.name):
        metadata.create_all(connection)
        connection.execute(settings.insert().values(key="schema_version", value=SCHEMA_VERSION))
        connection.execute(counters.insert().values(name="items", value=0))
        _migrate(connection, stamp=_REVISIONS[SCHEMA_VERSION])
        return
    found = connection.execute(_read_schema_version).scalar_one_or_none()
    revision = None
    if inspector.has_table(alembic_version.name):
        revision = connection.execute(_read_revision).scalar_one_or_none()
    head = _REVISIONS[SCHEMA_VERSION]
    if found == SCHEMA_VERSION and revision == head:
        return
    known = _REVISIONS.get(found) if type(found) is int else None
    if known is None or revision not in (None, known):
        at = f" (migration {revision})" if revision is not None else ""
        raise SchemaVersionMismatch(
            f"This database has widgetal schema version {found}{at}, but this widgetal "
            f"uses version {SCHEMA_VERSION}. Use the widgetal release that made it, "
            "or export its labels (`widgetal export`) and import them into a new database."
        )
    # An older version: a database from before migrations existed has no record of its
    # migration yet, so it is stamped with the one its version stands for, then upgraded.
    _migrate(connection, stamp=None if revision is not None else known, upgrade=True)
    connection.execute(_write_schema_version, {"version": SCHEMA_VERSION})


def alembic_config(connection: sa.Connection) -> Config:
    """An Alembic ``Config`` for widgetal's migrations that runs them on ``connection``.

    No alembic.ini: the migrations ship inside the package, and ``migrations/env.py`` uses the
    connection (and the transaction open on it) given here instead of opening its own.
    """
    from alembic.config import Config  # imported on creation and upgrade only

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _migrate(connection: sa.Connection, stamp: str | None = None, upgrade: bool = False) -> None:
    from alembic import command

    config = alembic_config(connection)
    if stamp is not None:
        command.stamp(config, stamp)
    if upgrade:
        command.upgrade(config, "head")
