"""Schema version 7: counts of the items awaiting review and of the items done read indexes.

SQLite uses a partial index only for a query whose WHERE repeats the index's condition.
SQLAlchemy writes a boolean test there as ``needs_review = 1``, while version 6 created the
index with a bare ``needs_review``, so every review pop and every count of the items awaiting
review scanned the whole item table (2.3 s at 10,000,000 items). That index is made again with
``needs_review = 1``; PostgreSQL compares the conditions by their meaning and keeps its own.
With overlap, progress also counts the items done on every click, which read every item on
both databases (75-90 ms at 1,000,000): a partial index of the items done serves that count.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_settings = sa.table("widgetal_settings", sa.column("key", sa.String), sa.column("value", sa.JSON))
_INDEX = "widgetal_items_awaiting_review"
_DONE = "widgetal_items_done"


def _set_schema_version(version: int) -> None:
    op.execute(_settings.update().where(_settings.c.key == "schema_version").values(value=version))


def _review_index(condition: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index(_INDEX, table_name="widgetal_items")
        op.create_index(_INDEX, "widgetal_items", ["id"], sqlite_where=sa.text(condition))


def upgrade() -> None:
    _review_index("needs_review = 1")
    op.create_index(_DONE, "widgetal_items", ["id"], sqlite_where=sa.text("done_at IS NOT NULL"),
                    postgresql_where=sa.text("done_at IS NOT NULL"))
    _set_schema_version(7)


def downgrade() -> None:
    op.drop_index(_DONE, table_name="widgetal_items")
    _review_index("needs_review")
    _set_schema_version(6)
