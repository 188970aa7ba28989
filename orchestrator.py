"""Container entrypoint: ``python orchestrator.py [OPTIONS]`` is ``widgetal orchestrate``.

Configured by the same options or by environment variables: WIDGETAL_DB_URL,
WIDGETAL_MODELS_DIR, WIDGETAL_INTERVAL_SECONDS, WIDGETAL_MIN_NEW_LABELS, WIDGETAL_FEATURIZER,
WIDGETAL_STRATEGY, WIDGETAL_EXPLORE, WIDGETAL_KEEP, WIDGETAL_WAIT_SECONDS, WIDGETAL_LOG_LEVEL.
It waits for the database, retries transient errors, and stops cleanly on SIGTERM.
"""

from widgetal.cli import orchestrate_main

if __name__ == "__main__":
    orchestrate_main()
