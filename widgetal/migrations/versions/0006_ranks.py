"""Schema version 6: each item's place in the queue moves to a narrow table of its own.

A reorder sets the priority, run and guess of every item still queued. In version 5 those lived
on the wide item rows (with the text and metadata), so a reorder rewrote every item row: on
PostgreSQL a new version of each wide row plus every index on the table. ``widgetal_ranks``
holds them instead, one narrow row per item still in the hand-out (not done) or awaiting a
reviewer, with no foreign key, so a reorder rewrites only that table. Triggers on
``widgetal_items`` keep a row there exactly while the item is queued or under review; their
text is the same as ``widgetal.schema.RANK_DDL`` (kept here as written, like every migration).

The upgrade copies the queued and awaiting-review items' priorities, runs and guesses over, then
drops the four columns and the two item indexes that ordered the queue by them (the review
hand-out reads a small partial index of the items awaiting a reviewer instead). Done items lose
their last priority, run and guess: their labels record what they were served at, which is what
an undo brings back.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)

_settings = sa.table("widgetal_settings", sa.column("key", sa.String), sa.column("value", sa.JSON))

_RANK_DDL = {
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
        "CREATE FUNCTION widgetal_rank_items() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO widgetal_ranks (item_id, priority) "
        "SELECT id, 0 FROM added WHERE done_at IS NULL; RETURN NULL; END $$",
        "CREATE TRIGGER widgetal_items_ranked AFTER INSERT ON widgetal_items "
        "REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION widgetal_rank_items()",
    ],
}
_DROP_DDL = {
    "sqlite": [
        "DROP TRIGGER widgetal_items_ranked",
        "DROP TRIGGER widgetal_items_unranked",
        "DROP TRIGGER widgetal_items_reranked",
    ],
    "postgresql": [
        "DROP TRIGGER widgetal_items_ranked ON widgetal_items",
        "DROP TRIGGER widgetal_items_unranked ON widgetal_items",
        "DROP FUNCTION widgetal_rank_items()",
        "DROP FUNCTION widgetal_rank_item()",
    ],
}

_RANKED = ("priority", "ranked_by", "guess_label", "guess_proba")

# The items still in the hand-out or awaiting a reviewer keep their place.
_copy_ranks = sa.text(
    "INSERT INTO widgetal_ranks (item_id, priority, ranked_by, guess_label, guess_proba) "
    "SELECT id, priority, ranked_by, guess_label, guess_proba FROM widgetal_items "
    "WHERE done_at IS NULL OR needs_review"
)

# Version 5's item columns after ``created_at``, in their order. The downgrade puts the four
# ranked columns back in their places so that the table is the one version 5 made, column for
# column: neither database inserts a column mid-table, so every column from ``priority`` on is
# added anew at the end and filled from the old one (renamed ``<name>_v6`` first) or the ranks.
def _v5_tail() -> list[sa.Column]:
    return [
        sa.Column("priority", sa.Float, nullable=False, server_default="0"),
        sa.Column("ranked_by", sa.Integer, nullable=True),
        sa.Column("leased_by", sa.String, nullable=True),
        sa.Column("lease_expires_at", _UTC, nullable=True),
        sa.Column("done_at", _UTC, nullable=True),
        sa.Column("served_priority", sa.Float, nullable=True),
        sa.Column("served_ranked_by", sa.Integer, nullable=True),
        sa.Column("extra_labels", sa.Integer, nullable=False, server_default="0"),
        sa.Column("needs_review", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("review_leased_by", sa.String, nullable=True),
        sa.Column("review_lease_expires_at", _UTC, nullable=True),
        sa.Column("guess_label", sa.String, nullable=True),
        sa.Column("guess_proba", sa.Float, nullable=True),
        sa.Column("audit_key", sa.Float, nullable=True),
        sa.Column("audit", sa.Boolean, nullable=False, server_default=sa.false()),
    ]


_MOVED = [c.name for c in _v5_tail() if c.name not in _RANKED]

# Downgrading: the moved columns take their old values, and the ranked ones the item's rank
# (items without one, the done ones, keep priority 0 and no run or guess).
_fill_v5_tail = sa.text(
    "UPDATE widgetal_items SET "
    "leased_by = leased_by_v6, lease_expires_at = lease_expires_at_v6, done_at = done_at_v6, "
    "served_priority = served_priority_v6, served_ranked_by = served_ranked_by_v6, "
    "extra_labels = extra_labels_v6, needs_review = needs_review_v6, "
    "review_leased_by = review_leased_by_v6, "
    "review_lease_expires_at = review_lease_expires_at_v6, "
    "audit_key = audit_key_v6, audit = audit_v6, "
    "priority = coalesce((SELECT r.priority FROM widgetal_ranks AS r "
    "WHERE r.item_id = widgetal_items.id), 0), "
    "ranked_by = (SELECT r.ranked_by FROM widgetal_ranks AS r "
    "WHERE r.item_id = widgetal_items.id), "
    "guess_label = (SELECT r.guess_label FROM widgetal_ranks AS r "
    "WHERE r.item_id = widgetal_items.id), "
    "guess_proba = (SELECT r.guess_proba FROM widgetal_ranks AS r "
    "WHERE r.item_id = widgetal_items.id)"
)


def _set_schema_version(version: int) -> None:
    op.execute(_settings.update().where(_settings.c.key == "schema_version").values(value=version))


def _where(clause: str) -> dict:
    return {"sqlite_where": sa.text(clause), "postgresql_where": sa.text(clause)}


def upgrade() -> None:
    op.create_table(
        "widgetal_ranks",
        sa.Column("item_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("priority", sa.Float, nullable=False, server_default="0"),
        sa.Column("ranked_by", sa.Integer, nullable=True),
        sa.Column("guess_label", sa.String, nullable=True),
        sa.Column("guess_proba", sa.Float, nullable=True),
    )
    op.execute(_copy_ranks)
    op.create_index("widgetal_ranks_order", "widgetal_ranks", [sa.text("priority DESC"), "item_id"])
    op.drop_index("widgetal_items_queue_order", table_name="widgetal_items")
    op.drop_index("widgetal_items_review_order", table_name="widgetal_items")
    op.create_index(
        "widgetal_items_awaiting_review", "widgetal_items", ["id"], **_where("needs_review")
    )
    # SQLite: ALTER TABLE DROP COLUMN (3.35 or later), once no index uses the column
    for name in _RANKED:
        op.drop_column("widgetal_items", name)
    for statement in _RANK_DDL[op.get_bind().dialect.name]:
        op.execute(statement)
    _set_schema_version(6)


def downgrade() -> None:
    """Back to version 5: the ranks return to the item rows, in version 5's column order."""
    for statement in _DROP_DDL[op.get_bind().dialect.name]:
        op.execute(statement)
    # the indexes on columns about to be moved (SQLite refuses to drop an indexed column)
    op.drop_index("widgetal_items_awaiting_review", table_name="widgetal_items")
    op.drop_index("widgetal_items_audit_order", table_name="widgetal_items")
    op.drop_index("widgetal_items_leased_by", table_name="widgetal_items")
    for name in _MOVED:
        op.alter_column("widgetal_items", name, new_column_name=f"{name}_v6")
    for column in _v5_tail():
        op.add_column("widgetal_items", column)
    op.execute(_fill_v5_tail)
    for name in _MOVED:
        op.drop_column("widgetal_items", f"{name}_v6")
    # version 5's indexes, as migrations 0001-0003 made them
    op.create_index(
        "widgetal_items_queue_order",
        "widgetal_items",
        [sa.text("priority DESC"), "id"],
        **_where("done_at IS NULL"),
    )
    op.create_index(
        "widgetal_items_leased_by", "widgetal_items", ["leased_by"],
        **_where("leased_by IS NOT NULL"),
    )
    op.create_index(
        "widgetal_items_review_order",
        "widgetal_items",
        [sa.text("priority DESC"), "id"],
        **_where("needs_review"),
    )
    op.create_index(
        "widgetal_items_audit_order", "widgetal_items", ["audit_key", "id"],
        **_where("done_at IS NULL"),
    )
    op.drop_table("widgetal_ranks")
    _set_schema_version(5)
