"""Schema version 4: a run's outcome in its own column.

Version 3 kept a run's outcome in its ``error`` text (``"skipped: too few labels"`` for a run
that trained no model, the exception for a failed one), and readers inferred it from that text
and ``model_file``. Each run now gets ``status`` (``running``, ``trained``, ``cold-start``,
``skipped`` or ``failed``, see ``widgetal.schema.RUN_STATUSES``), and ``error`` becomes
``reason``: the human reason alone, without the ``"skipped: "`` prefix. Done in place on SQLite
and PostgreSQL (ADD COLUMN, RENAME COLUMN). Existing runs get their status from what version 3
wrote: still open (no ``finished_at``) is ``running``, a ``"skipped: "`` text is ``cold-start``
when the run ordered the queue for diversity (its strategy says ``cold-start``) and ``skipped``
otherwise, any other text is ``failed``, and a run with a model file and no text ``trained``. A
finished run with neither text nor model (version 3 never wrote one) counts as ``skipped``: it
trained nothing, and said nothing against itself.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_settings = sa.table("widgetal_settings", sa.column("key", sa.String), sa.column("value", sa.JSON))

# Each version-3 run's status from its text, model file and end, and its reason without the
# "skipped: " prefix (9 characters). Both SET expressions read the row as it was.
_backfill_status = sa.text(
    "UPDATE widgetal_runs SET"
    " status = CASE"
    "  WHEN finished_at IS NULL THEN 'running'"
    "  WHEN reason LIKE 'skipped: %' AND strategy = 'cold-start' THEN 'cold-start'"
    "  WHEN reason LIKE 'skipped: %' THEN 'skipped'"
    "  WHEN reason IS NOT NULL THEN 'failed'"
    "  WHEN model_file IS NOT NULL THEN 'trained'"
    "  ELSE 'skipped' END,"
    " reason = CASE WHEN reason LIKE 'skipped: %' THEN substr(reason, 10) ELSE reason END"
)

# Downgrading: version 3 told a run without a model by its "skipped: " text.
_prefix_skipped = sa.text(
    "UPDATE widgetal_runs SET reason = 'skipped: ' || COALESCE(reason, '')"
    " WHERE status IN ('skipped', 'cold-start')"
)


def _set_schema_version(version: int) -> None:
    op.execute(_settings.update().where(_settings.c.key == "schema_version").values(value=version))


def upgrade() -> None:
    op.alter_column("widgetal_runs", "error", new_column_name="reason")
    # SQLite adds a NOT NULL column only with a default; a new run is open until it finishes.
    op.add_column(
        "widgetal_runs",
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
    )
    op.execute(_backfill_status)
    _set_schema_version(4)


def downgrade() -> None:
    """Back to version 3: the status goes back into the text (a run still open, trained or
    failed needs nothing; skipped and cold-start runs get their "skipped: " prefix again)."""
    op.execute(_prefix_skipped)
    op.drop_column("widgetal_runs", "status")
    op.alter_column("widgetal_runs", "reason", new_column_name="error")
    _set_schema_version(3)
