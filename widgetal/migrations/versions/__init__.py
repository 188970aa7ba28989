"""One file per schema version; Alembic reads them in the order of their down_revision."""
