"""Schema version 5: label counts kept by the database, so progress reads a few rows.

Progress is read on every click, and version 4 counted every label that counts to answer it
(7.5 ms at 24,000 labels on PostgreSQL, growing with them). ``widgetal_label_counts`` holds
those counts per labeller and label, and triggers on ``widgetal_labels`` keep it in step in each
label's own transaction: a label counts from its insert (unless inserted undone) until undo sets
its ``undone_at``. The upgrade counts the labels already there. The trigger text is the same as
``widgetal.schema.LABEL_COUNT_DDL`` (kept here as written, like every migration).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_settings = sa.table("widgetal_settings", sa.column("key", sa.String), sa.column("value", sa.JSON))

_COUNT_DDL = {
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
_DROP_DDL = {
    "sqlite": ["DROP TRIGGER widgetal_labels_counted", "DROP TRIGGER widgetal_labels_uncounted"],
    "postgresql": [
        "DROP TRIGGER widgetal_labels_counted ON widgetal_labels",
        "DROP FUNCTION widgetal_count_label()",
    ],
}

_count_labels = sa.text(
    "INSERT INTO widgetal_label_counts (labeller, label, n) "
    "SELECT labeller, label, count(*) FROM widgetal_labels WHERE undone_at IS NULL "
    "GROUP BY labeller, label"
)


def _set_schema_version(version: int) -> None:
    op.execute(_settings.update().where(_settings.c.key == "schema_version").values(value=version))


def upgrade() -> None:
    op.create_table(
        "widgetal_label_counts",
        sa.Column("labeller", sa.String, primary_key=True),
        sa.Column("label", sa.String, primary_key=True),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.execute(_count_labels)
    for statement in _COUNT_DDL[op.get_bind().dialect.name]:
        op.execute(statement)
    _set_schema_version(5)


def downgrade() -> None:
    for statement in _DROP_DDL[op.get_bind().dialect.name]:
        op.execute(statement)
    op.drop_table("widgetal_label_counts")
    _set_schema_version(4)
