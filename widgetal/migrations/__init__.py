"""Alembic migrations of widgetal's tables, run by ``widgetal.schema.create_or_check``.

There is no ``alembic.ini``: ``schema.alembic_config(connection)`` builds the configuration and
hands Alembic the connection (and so the transaction) that opened the queue. A new schema version
is one more file in ``versions/``: it upgrades the previous version in place, can be downgraded,
and the tables in ``schema.py`` change with it (``tests/test_migrations.py`` checks that an
upgraded database equals a freshly created one).
"""
