"""The audit sample's cost per click: pop + submit with audit share 0, 0.05 and 0.99.

    python benchmarks/audit_pop.py [--items 100000] [--postgres-url URL]

Three queues of the same size, popped in turn (one pop + submit each, round after round), so
that all three see the same machine load: share 0 takes the priority path only, 0.99 the audit
path almost always. Prints p50 / p99 per queue.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/queue.py would shadow the stdlib's `queue` (psycopg imports it): keep this folder
# off the import path before anything else is imported.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import quote  # noqa: E402

import numpy as np  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import typer  # noqa: E402

from widgetal import Queue  # noqa: E402

SHARES = {"share 0 (priority path only)": 0.0, "share 0.05": 0.05,
          "share 0.99 (audit path)": 0.99}


def _queue(url: str, items: int, share: float) -> Queue:
    q = Queue(url, labels=["a", "b"])
    q.add([f"text {i} lorem ipsum" for i in range(items)])
    q.configure(audit_share=share)
    q.reorder(np.arange(1, items + 1), np.random.default_rng(0).random(items))  # a model ran
    return q


def _compare(urls: dict[str, str], items: int, pops: int) -> None:
    queues = {name: _queue(url, items, SHARES[name]) for name, url in urls.items()}
    times: dict[str, list[float]] = {name: [] for name in queues}
    audits = dict.fromkeys(queues, 0)
    for _ in range(pops):
        for name, q in queues.items():
            start = time.perf_counter()
            item = q.pop("bench")
            q.submit(item.item_id, "a", "bench")
            times[name].append(time.perf_counter() - start)
            audits[name] += item.audit
    for name, values in times.items():
        ms = np.array(values) * 1000
        print(f"  {name}: pop + submit p50 {np.median(ms):.2f} ms, p99 "
              f"{np.percentile(ms, 99):.2f} ms; audit items {audits[name]} of {pops}")
    for q in queues.values():
        q.engine.dispose()


def main(
    items: int = typer.Option(100_000, help="Items per queue."),
    pops: int = typer.Option(600, help="Pops per queue."),
    postgres_url: str | None = typer.Option(None, envvar="WIDGETAL_TEST_POSTGRES_URL"),
):
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite ({items:,} items)")
        _compare({name: f"sqlite:///{tmp}/{i}.db" for i, name in enumerate(SHARES)}, items, pops)
    if postgres_url:
        admin = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
        schemas = {name: f"audit_bench_{uuid.uuid4().hex[:8]}" for name in SHARES}
        with admin.begin() as conn:
            for schema in schemas.values():
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in postgres_url else "?"
        try:
            print(f"PostgreSQL ({items:,} items)")
            _compare({name: f"{postgres_url}{sep}options={quote(f'-csearch_path={s}')}"
                      for name, s in schemas.items()}, items, pops)
        finally:
            with admin.begin() as conn:
                for schema in schemas.values():
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    typer.run(main)
