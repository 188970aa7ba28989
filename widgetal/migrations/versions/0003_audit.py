"""Schema version 3: the audit sample.

Additions only, done in place on SQLite and PostgreSQL: each item gets ``audit_key``, a uniform
random number in [0, 1) fixed once (the audit reserve is the items whose key is below the
project's ``audit_share``, served in key order), and ``audit``, whether it was handed out as an
audit item; each label records ``audit`` too. An index lets an audit pop walk undone items by
key. Existing items get their random keys here, in one UPDATE; none of them has been served as
an audit item, so every existing label keeps training models as before. Nothing else changes.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_settings = sa.table("widgetal_settings", sa.column("key", sa.String), sa.column("value", sa.JSON))

# A uniform key in [0, 1) per existing item, drawn by the database. SQLite's random() is a
# 64-bit signed integer, scaled here; PostgreSQL's random() is already in [0, 1).
_random_keys = {
    "sqlite": sa.text(
        "UPDATE widgetal_items SET audit_key = random() / 18446744073709551616.0 + 0.5"
    ),
    "postgresql": sa.text("UPDATE widgetal_items SET audit_key = random()"),
}


def _set_schema_version(version: int) -> None:
    op.execute(_settings.update().where(_settings.c.key == "schema_version").values(value=version))


def _where(clause: str) -> dict:
    return {"sqlite_where": sa.text(clause), "postgresql_where": sa.text(clause)}


def upgrade() -> None:
    op.add_column("widgetal_items", sa.Column("audit_key", sa.Float, nullable=True))
    op.add_column(
        "widgetal_items",
        sa.Column("audit", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "widgetal_labels",
        sa.Column("audit", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.execute(_random_keys[op.get_bind().dialect.name])
    op.create_index(
        "widgetal_items_audit_order", "widgetal_items", ["audit_key", "id"],
        **_where("done_at IS NULL"),
    )
    _set_schema_version(3)


def downgrade() -> None:
    """Back to version 2: the keys and the audit marks are dropped (audit labels then train
    like any other)."""
    op.drop_index("widgetal_items_audit_order", table_name="widgetal_items")
    op.drop_column("widgetal_labels", "audit")
    op.drop_column("widgetal_items", "audit")
    op.drop_column("widgetal_items", "audit_key")
    _set_schema_version(2)
