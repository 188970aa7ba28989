"""Schema version 1: the tables widgetal created before migrations existed.

A version-1 database found in the wild is stamped with this revision rather than built by it;
this file builds the same tables (and the two rows ``create_or_check`` wrote) so that an empty
database can be brought to any later version, and so the tests can make a version-1 database.
The definitions are frozen here on purpose: they must not follow later changes to schema.py.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    settings = op.create_table(
        "widgetal_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
    )
    op.create_table(
        "widgetal_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("external_id", sa.String, nullable=False, unique=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("meta", sa.JSON, nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("priority", sa.Float, nullable=False, server_default="0"),
        sa.Column("ranked_by", sa.Integer, nullable=True),
        sa.Column("leased_by", sa.String, nullable=True),
        sa.Column("lease_expires_at", _UTC, nullable=True),
        sa.Column("done_at", _UTC, nullable=True),
    )
    op.create_index(
        "widgetal_items_queue_order",
        "widgetal_items",
        [sa.text("priority DESC"), "id"],
        sqlite_where=sa.text("done_at IS NULL"),
        postgresql_where=sa.text("done_at IS NULL"),
    )
    op.create_index(
        "widgetal_items_leased_by",
        "widgetal_items",
        ["leased_by"],
        sqlite_where=sa.text("leased_by IS NOT NULL"),
        postgresql_where=sa.text("leased_by IS NOT NULL"),
    )
    op.create_table(
        "widgetal_labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), nullable=False),
        sa.Column("label", sa.String, nullable=False),
        sa.Column("labeller", sa.String, nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("seconds", sa.Float, nullable=True),
        sa.Column("undone_at", _UTC, nullable=True),
    )
    op.create_index("widgetal_labels_item", "widgetal_labels", ["item_id"])
    op.create_index("widgetal_labels_labeller", "widgetal_labels", ["labeller", "id"])
    op.create_table(
        "widgetal_skips",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), primary_key=True),
        sa.Column("labeller", sa.String, primary_key=True),
        sa.Column("created_at", _UTC, nullable=False),
    )
    op.create_table(
        "widgetal_runs",
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
    counters = op.create_table(
        "widgetal_counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "widgetal_features",
        sa.Column("featurizer", sa.String, primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), primary_key=True),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    # The two rows version 1's create_or_check wrote with its tables.
    op.bulk_insert(settings, [{"key": "schema_version", "value": 1}])
    op.bulk_insert(counters, [{"name": "items", "value": 0}])


def downgrade() -> None:
    for table in (
        "widgetal_features",
        "widgetal_counters",
        "widgetal_runs",
        "widgetal_skips",
        "widgetal_labels",
        "widgetal_items",
        "widgetal_settings",
    ):
        op.drop_table(table)
