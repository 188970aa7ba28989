"""Schema version 2: team labelling (overlap, review, labellers), label provenance, published
guesses and undoable skips.

Almost only additions: nullable or server-defaulted columns (among them each item's published
guess), partial indexes and new tables, so both SQLite and PostgreSQL do it in place with plain
ALTER TABLE. One small table is rebuilt: ``widgetal_skips`` gets its own id and an
``undone_at`` (undo takes a skip back and keeps it in the history, and the same item may be
skipped again), so its (item, labeller) key becomes a unique index on the skips that stand; its
rows are copied over unchanged. Every row stays as it was, with one exception: a version-1
database holding two active labels by one labeller on one item (version 1 never wrote that, but
a hand-edited database may hold it). The new unique index would refuse it, so the older of such
labels is marked undone at the time of the newer one, as if the labeller had changed their mind.
Nothing is deleted.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)

_settings = sa.table("widgetal_settings", sa.column("key", sa.String), sa.column("value", sa.JSON))

# Before the unique index on active labels: an older active label by the same labeller on the
# same item is marked undone when the newer one was given (keeps the row, frees the index).
_undo_superseded_labels = sa.text(
    "UPDATE widgetal_labels SET undone_at = ("
    " SELECT MIN(later.created_at) FROM widgetal_labels AS later"
    " WHERE later.item_id = widgetal_labels.item_id"
    " AND later.labeller = widgetal_labels.labeller"
    " AND later.undone_at IS NULL AND later.id > widgetal_labels.id)"
    " WHERE undone_at IS NULL AND EXISTS ("
    " SELECT 1 FROM widgetal_labels AS later"
    " WHERE later.item_id = widgetal_labels.item_id"
    " AND later.labeller = widgetal_labels.labeller"
    " AND later.undone_at IS NULL AND later.id > widgetal_labels.id)"
)


# Rebuilding widgetal_skips: the version-1 rows, oldest first, get ids in the new table.
_copy_v1_skips = sa.text(
    "INSERT INTO widgetal_skips (item_id, labeller, created_at)"
    " SELECT item_id, labeller, created_at FROM widgetal_skips_old"
    " ORDER BY created_at, item_id, labeller"
)
# Downgrading: version 1 knows only standing skips (an undone one had no row).
_copy_standing_skips = sa.text(
    "INSERT INTO widgetal_skips (item_id, labeller, created_at)"
    " SELECT item_id, labeller, created_at FROM widgetal_skips_old WHERE undone_at IS NULL"
)


def _set_schema_version(version: int) -> None:
    # The version widgetal reads first when it opens a database (see schema.create_or_check).
    op.execute(_settings.update().where(_settings.c.key == "schema_version").values(value=version))


def _where(clause: str) -> dict:
    return {"sqlite_where": sa.text(clause), "postgresql_where": sa.text(clause)}


def _set_aside_skips() -> None:
    """Rename widgetal_skips out of the way (PostgreSQL: its primary key index too, whose name
    the new table's key takes)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX widgetal_skips_pkey RENAME TO widgetal_skips_old_pkey")
    op.rename_table("widgetal_skips", "widgetal_skips_old")


def upgrade() -> None:
    op.add_column("widgetal_items", sa.Column("served_priority", sa.Float, nullable=True))
    op.add_column("widgetal_items", sa.Column("served_ranked_by", sa.Integer, nullable=True))
    op.add_column(
        "widgetal_items",
        sa.Column("extra_labels", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column(
        "widgetal_items",
        sa.Column("needs_review", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("widgetal_items", sa.Column("review_leased_by", sa.String, nullable=True))
    op.add_column("widgetal_items", sa.Column("review_lease_expires_at", _UTC, nullable=True))
    op.add_column("widgetal_items", sa.Column("guess_label", sa.String, nullable=True))
    op.add_column("widgetal_items", sa.Column("guess_proba", sa.Float, nullable=True))
    op.add_column("widgetal_labels", sa.Column("ranked_by", sa.Integer, nullable=True))
    op.add_column("widgetal_labels", sa.Column("priority", sa.Float, nullable=True))

    _set_aside_skips()
    op.create_table(
        "widgetal_skips",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), nullable=False),
        sa.Column("labeller", sa.String, nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("undone_at", _UTC, nullable=True),
    )
    op.execute(_copy_v1_skips)
    op.drop_table("widgetal_skips_old")
    op.create_index(
        "widgetal_skips_one_active",
        "widgetal_skips",
        ["item_id", "labeller"],
        unique=True,
        **_where("undone_at IS NULL"),
    )
    op.create_index("widgetal_skips_labeller", "widgetal_skips", ["labeller", "id"])

    op.execute(_undo_superseded_labels)
    op.create_index(
        "widgetal_labels_one_active",
        "widgetal_labels",
        ["item_id", "labeller"],
        unique=True,
        **_where("undone_at IS NULL"),
    )
    op.create_index(
        "widgetal_items_review_order",
        "widgetal_items",
        [sa.text("priority DESC"), "id"],
        **_where("needs_review"),
    )

    op.create_table(
        "widgetal_leases",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), primary_key=True),
        sa.Column("labeller", sa.String, primary_key=True),
        sa.Column("expires_at", _UTC, nullable=False),
        sa.Column("served_priority", sa.Float, nullable=True),
        sa.Column("served_ranked_by", sa.Integer, nullable=True),
    )
    op.create_index("widgetal_leases_labeller", "widgetal_leases", ["labeller", "expires_at"])

    op.create_table(
        "widgetal_reviews",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), nullable=False),
        sa.Column("reviewer", sa.String, nullable=False),
        sa.Column("label", sa.String, nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("seconds", sa.Float, nullable=True),
        sa.Column("undone_at", _UTC, nullable=True),
    )
    op.create_index("widgetal_reviews_item", "widgetal_reviews", ["item_id"])
    op.create_index("widgetal_reviews_reviewer", "widgetal_reviews", ["reviewer", "id"])
    op.create_index(
        "widgetal_reviews_one_active",
        "widgetal_reviews",
        ["item_id"],
        unique=True,
        **_where("undone_at IS NULL AND label IS NOT NULL"),
    )

    op.create_table(
        "widgetal_labellers",
        sa.Column("name", sa.String, primary_key=True),
        sa.Column("role", sa.String(16), nullable=False, server_default="labeller"),
        sa.Column("key_hash", sa.String, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", _UTC, nullable=False),
    )
    _set_schema_version(2)


def downgrade() -> None:
    """Back to version 1: team data (leases, reviews, labellers, provenance, guesses, undone
    skips) is dropped.

    SQLite drops the columns with ALTER TABLE DROP COLUMN (SQLite 3.35 or later), after the
    indexes that use them.
    """
    op.drop_index("widgetal_skips_labeller", table_name="widgetal_skips")
    op.drop_index("widgetal_skips_one_active", table_name="widgetal_skips")
    _set_aside_skips()
    op.create_table(
        "widgetal_skips",
        sa.Column("item_id", sa.Integer, sa.ForeignKey("widgetal_items.id"), primary_key=True),
        sa.Column("labeller", sa.String, primary_key=True),
        sa.Column("created_at", _UTC, nullable=False),
    )
    op.execute(_copy_standing_skips)
    op.drop_table("widgetal_skips_old")
    op.drop_table("widgetal_labellers")
    op.drop_table("widgetal_reviews")
    op.drop_table("widgetal_leases")
    op.drop_index("widgetal_items_review_order", table_name="widgetal_items")
    op.drop_index("widgetal_labels_one_active", table_name="widgetal_labels")
    for column in ("priority", "ranked_by"):
        op.drop_column("widgetal_labels", column)
    for column in (
        "guess_proba",
        "guess_label",
        "review_lease_expires_at",
        "review_leased_by",
        "needs_review",
        "extra_labels",
        "served_ranked_by",
        "served_priority",
    ):
        op.drop_column("widgetal_items", column)
    _set_schema_version(1)
