"""The tables, the schema version, and creating or checking them."""

from __future__ import annotations

import sqlalchemy as sa

from .errors import SchemaVersionMismatch

#: Bumped whenever a table changes; a database of another version is refused with a message.
SCHEMA_VERSION = 1

metadata = sa.MetaData()
_UTC = sa.DateTime(timezone=True)

#: key/value project settings: label set, instructions, schema version.
settings = sa.Table(
    "widgetal_settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
)

#: One row per text, with its queue state beside it so that a pop is one UPDATE on one table.
items = sa.Table(
    "widgetal_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("external_id", sa.String, nullable=False, unique=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("meta", sa.JSON, nullable=True),
    sa.Column("created_at", _UTC, nullable=False),
    # queue state
    sa.Column("priority", sa.Float, nullable=False, server_default="0"),
    sa.Column("ranked_by", sa.Integer, nullable=True),  # runs.id of the run that set priority
    sa.Column("leased_by", sa.String, nullable=True),
    sa.Column("lease_expires_at", _UTC, nullable=True),
    sa.Column("done_at", _UTC, nullable=True),
)
# The hand-out walks this index from the top: only undone items, best first.
sa.Index(
    "widgetal_items_queue_order",
    items.c.priority.desc(),
    items.c.id,
    sqlite_where=items.c.done_at.is_(None),
    postgresql_where=items.c.done_at.is_(None),
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
)
sa.Index("widgetal_labels_item", labels.c.item_id)
sa.Index("widgetal_labels_labeller", labels.c.labeller, labels.c.id)

#: Items a labeller skipped: never shown to that labeller again.
skips = sa.Table(
    "widgetal_skips",
    metadata,
    sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), primary_key=True),
    sa.Column("labeller", sa.String, primary_key=True),
    sa.Column("created_at", _UTC, nullable=False),
)

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
    sa.Column("error", sa.Text, nullable=True),
)

#: Counts kept in step with the rows they count, in the same transaction: the number of items is
#: read on every click, and counting a million rows each time would take ~100 ms.
counters = sa.Table(
    "widgetal_counters",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

#: Each text embedded once per featurizer; a cycle embeds only what is missing here.
features = sa.Table(
    "widgetal_features",
    metadata,
    sa.Column("featurizer", sa.String, primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), primary_key=True),
    sa.Column("vector", sa.LargeBinary, nullable=False),
)


# A transaction-scoped advisory lock, released at commit; the key is arbitrary but fixed.
_lock_schema_postgresql = sa.text("SELECT pg_advisory_xact_lock(7261616263)")


def create_or_check(connection: sa.Connection) -> None:
    """Create the tables in an empty database, or check the version of an existing one.

    Raises
    ------
    SchemaVersionMismatch
        If the database holds widgetal tables of another schema version.
    """
    if connection.dialect.name == "postgresql":
        # Serialise first-time creation: an orchestrator and a labelling app started together
        # on an empty database would otherwise both try to create the tables.
        connection.execute(_lock_schema_postgresql)
    inspector = sa.inspect(connection)
    if not inspector.has_table(settings.name):
        metadata.create_all(connection)
        connection.execute(settings.insert().values(key="schema_version", value=SCHEMA_VERSION))
        connection.execute(counters.insert().values(name="items", value=0))
        return
    found = connection.execute(
        sa.select(settings.c.value).where(settings.c.key == "schema_version")
    ).scalar_one_or_none()
    if found != SCHEMA_VERSION:
        raise SchemaVersionMismatch(
            f"This database has widgetal schema version {found}, but this widgetal "
            f"uses version {SCHEMA_VERSION}. Use the widgetal release that made it, "
            "or export its labels (`widgetal export`) and import them into a new database."
        )
