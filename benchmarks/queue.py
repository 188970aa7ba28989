"""Queue benchmark: import rate, pop+submit latency, reorder time, concurrent throughput.

    python benchmarks/queue.py                       # 1,000,000 items on SQLite
    python benchmarks/queue.py --postgres-url postgresql://user:pw@127.0.0.1/db   # and PostgreSQL

Prints figures only; targets are in the README. The baseline is superintendent 0.6's own
row-by-row ``set_priorities``, measured in the same run when superintendent is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file shares its name with the stdlib's `queue`, which multiprocessing imports: keep the
# benchmarks folder off the import path before anything else is imported.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import multiprocessing as mp
import os
import re
import subprocess
import tempfile
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

import numpy as np
import pandas as pd
import sqlalchemy as sa
import typer

from widgetal import Queue

app = typer.Typer(add_completion=False)


def _frame(n: int) -> pd.DataFrame:
    words = np.array("the a good bad film plot actor slow great awful long fun dull".split())
    rng = np.random.default_rng(0)
    picks = words[rng.integers(0, len(words), size=(n, 8))]
    return pd.DataFrame({"id": np.arange(n).astype(str), "text": [" ".join(r) for r in picks]})


def _bench_import(url: str, frame: pd.DataFrame, audit_share: float = 0.0) -> Queue:
    q = Queue(url, labels=["negative", "positive"], lease_seconds=600)
    if audit_share:
        q.configure(audit_share=audit_share)
    t = time.perf_counter()
    q.add(frame, id="id")
    elapsed = time.perf_counter() - t
    print(f"  import {len(frame):,} rows: {elapsed:.1f} s = {len(frame) / elapsed:,.0f} rows/s")
    return q


def _bench_pop_submit(q: Queue, n: int = 2_000) -> None:
    separate, combined = [], []
    for _ in range(n):
        t = time.perf_counter()
        item = q.pop("bench")
        q.submit(item.item_id, "positive", "bench")
        separate.append(time.perf_counter() - t)
    item = q.pop("bench")
    for _ in range(n):  # what the widget does per click: one transaction
        t = time.perf_counter()
        item = q.submit_and_pop(item.item_id, "positive", "bench")
        combined.append(time.perf_counter() - t)
    for name, values in (("pop + submit", separate), ("submit_and_pop", combined)):
        ms = np.array(values) * 1000
        print(
            f"  {name} over {n:,} labels: p50 {np.percentile(ms, 50):.2f} ms, "
            f"p99 {np.percentile(ms, 99):.2f} ms (targets 5 / 50 ms)"
        )


def _bench_progress(q: Queue, n: int = 50) -> None:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        q.progress("bench")
        times.append(time.perf_counter() - t)
    print(f"  progress (read on every click): p50 {np.median(times) * 1000:.2f} ms")


def _bench_reorder(q: Queue, n: int) -> None:
    rng = np.random.default_rng(1)
    for what in ("priorities", "priorities and guesses"):  # an orchestrator cycle writes both
        scores = rng.random(n)
        guesses = None
        if what != "priorities":
            guesses = (np.where(scores > 0.5, "positive", "negative"), np.maximum(scores, 0.5))
        ids = rng.permutation(np.arange(1, n + 1))  # in pool order, as an orchestrator's come
        t = time.perf_counter()
        changed = q.reorder(ids, scores, guesses=guesses)
        elapsed = time.perf_counter() - t
        print(f"  reorder {n:,} items ({changed:,} not done), {what}: {elapsed:.1f} s "
              f"(targets at 1,000,000: SQLite 3 s, PostgreSQL 8 s; load average "
              f"{os.getloadavg()[0]:.1f})")


def _labeller(url: str, name: str, seconds: float, out, go, with_progress: bool = False) -> None:
    q = Queue(url)
    count = 0
    item = q.pop(name)
    out.put("ready")
    go.wait()  # all labellers start together, connected, as pgbench's clients do
    cpu = time.process_time()
    end = time.monotonic() + seconds
    while item is not None and time.monotonic() < end:
        item = q.submit_and_pop(item.item_id, "negative", name)  # as the widget does per click
        if with_progress:
            q.progress(name)  # the widget also refreshes its counts on every click
        count += 1
    out.put((count, time.process_time() - cpu))


def _bench_throughput(
    q: Queue, url: str, labellers: int, seconds: float, with_progress: bool = False
) -> float:
    before = q.progress().done
    ctx = mp.get_context("spawn")
    out, go = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_labeller, args=(url, f"team{i}", seconds, out, go, with_progress))
        for i in range(labellers)
    ]
    t = time.perf_counter()
    for p in procs:
        p.start()
    for _ in procs:  # started (Python and widgetal imported) and holding a first item
        out.get(timeout=300)
    go.set()
    busy = _busy_cpu_seconds()
    counts, cpus = zip(*[out.get(timeout=seconds + 300) for _ in procs])
    busy = _busy_cpu_seconds() - busy if busy is not None else None
    elapsed = time.perf_counter() - t
    for p in procs:
        p.join()
    labelled = q.labelled()
    duplicates = int(labelled.item_id.duplicated().sum())
    total = sum(counts)
    assert q.progress().done - before == total, "a label went missing"
    # Process start-up (imports) is inside `elapsed`; the rate uses the labelling window,
    # which all processes share (none labels while others still start: that CPU is not billed).
    what = "submit_and_pop + progress" if with_progress else "submit_and_pop"
    print(
        f"  {labellers} concurrent labellers ({what}) for {seconds:.0f} s: {total:,} labels = "
        f"{total / seconds:,.0f} labels/s (wall {elapsed:.1f} s incl. start-up), "
        f"{duplicates} duplicates; load average {os.getloadavg()[0]:.1f}"
    )
    # With the database on this machine, the labellers' own CPU is taken from the server.
    share = f" of the machine's {busy:.1f} busy CPU-seconds" if busy is not None else ""
    print(f"    the labelling processes used {sum(cpus):.1f} CPU-seconds{share} "
          f"({sum(cpus) / max(total, 1) * 1000:.2f} ms a label)")
    return total / seconds


def _bench_against_pgbench(q: Queue, url: str, base: str, labellers: int, seconds: float,
                           pgbench_seconds: int, rounds: int) -> None:
    """labels/s as a ratio to pgbench's transactions/s, each round measuring both one after
    the other: the machine's speed drifts between runs (pgbench alone gave 1,843-2,793 tps over
    two days, and moved by half within one seven-minute run), so a ratio is only fair within a
    round, and its median over rounds is the figure."""
    ratios, with_progress = [], []
    for r in range(1, rounds + 1):
        print(f"  round {r} of {rounds}")
        rate = _bench_throughput(q, url, labellers, seconds)
        clicks = _bench_throughput(q, url, labellers, seconds, with_progress=True)
        tps = _pgbench(base, labellers, pgbench_seconds)
        if not tps:
            return
        ratios.append(rate / tps)
        with_progress.append(clicks / tps)
        print(f"    ratio to pgbench: {rate / tps:.2f} (with progress() per click: "
              f"{clicks / tps:.2f})")
    print(f"  ratio to pgbench (the README's figure: pop then submit_and_pop, as the widget's "
          f"path), median of {rounds} rounds: {float(np.median(ratios)):.2f} (rounds "
          f"{', '.join(f'{x:.2f}' for x in ratios)}); with progress() per click as the widget "
          f"also does: {float(np.median(with_progress)):.2f}")


def _busy_cpu_seconds() -> float | None:
    """CPU-seconds all cores have spent busy since boot (Linux), else None."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def _pgbench(base: str, clients: int, seconds: int) -> float | None:
    """pgbench's TPC-B-like rate on this server and machine: the yardstick for labels/s."""
    exe = Path(os.environ.get("PGBENCH", "/usr/lib/postgresql/15/bin/pgbench"))
    if not exe.exists():
        print(f"  (no pgbench at {exe}: set PGBENCH)")
        return None
    url = sa.make_url(base)
    scratch = f"bench_pgbench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    args = ["-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
            "-U", url.username or "", scratch]
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
    try:
        subprocess.run([exe, "-i", "-q", "-s", str(clients), *args], env=env, check=True,
                       capture_output=True)
        run = subprocess.run([exe, "-c", str(clients), "-j", "2", "-T", str(seconds), *args],
                             env=env, check=True, capture_output=True, text=True)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}"')
        admin.dispose()
    found = re.search(r"tps = ([0-9.]+)", run.stdout)
    if found is None:
        print("  (could not read pgbench's tps)")
        return None
    tps = float(found.group(1))
    print(f"  pgbench TPC-B-like, {clients} clients for {seconds} s: {tps:,.0f} transactions/s; "
          f"load average {os.getloadavg()[0]:.1f}")
    return tps


def _bench_baseline(tmp: Path, sizes: list[int], repeats: int = 5) -> None:
    try:
        from superintendent.db_queue import DatabaseQueue, SuperintendentData
    except ImportError:
        print("  (superintendent not installed: no baseline)")
        return
    for n in sizes:
        url = f"sqlite:///{tmp / f'si_{n}.db'}"
        old = DatabaseQueue(url)
        table = SuperintendentData.__table__
        now = datetime.now(timezone.utc)
        with old.engine.begin() as conn:
            conn.execute(
                table.insert(),
                [{"input": f'"t{i}"', "inserted_at": now, "priority": 0} for i in range(n)],
            )
        ids = list(range(1, n + 1))
        ours = Queue(f"sqlite:///{tmp / f'ours_{n}.db'}", labels=["a", "b"])
        ours.add(_frame(n), id="id")
        # Alternated, each side `repeats` times with the scores reversed every time (so every
        # priority changes): the medians see the same load, where one run of each may not.
        befores, afters = [], []
        for r in range(repeats):
            scores = np.arange(n, dtype=float) if r % 2 == 0 else np.arange(n, 0, -1.0)
            t = time.perf_counter()
            old.set_priorities(ids, scores.astype(int).tolist())
            befores.append(time.perf_counter() - t)
            t = time.perf_counter()
            ours.reorder(ids, scores)
            afters.append(time.perf_counter() - t)
        before, after = float(np.median(befores)), float(np.median(afters))
        ratios = ", ".join(f"{b / a:,.0f}x" for b, a in zip(befores, afters))
        print(
            f"  reorder {n:,} items, median of {repeats} alternated runs: superintendent 0.6 "
            f"{before:.2f} s, widgetal {after:.3f} s ({before / after:,.0f}x faster; each run "
            f"{ratios}; target 50x at 32,000; load average {os.getloadavg()[0]:.1f})"
        )


def _postgres_schema_url(base: str) -> tuple[str, sa.Engine, str]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}", admin, schema


@app.command()
def main(
    items: int = typer.Option(1_000_000, help="Items queued."),
    postgres_url: str | None = typer.Option(
        None, envvar="WIDGETAL_TEST_POSTGRES_URL", help="Also benchmark this PostgreSQL server."
    ),
    labellers: int = typer.Option(16, help="Concurrent labelling processes."),
    seconds: float = typer.Option(15, help="How long the concurrent labellers run."),
    baseline_sizes: str = typer.Option("8000,32000", help="Sizes for the superintendent baseline."),
    audit_share: float = typer.Option(
        0.0, help="Share of pops drawn for the audit sample (new projects: 0.05)."
    ),
    pgbench: bool = typer.Option(
        False, help="Also run pgbench (TPC-B-like, as many clients as labellers) and print "
        "labels/s as a ratio to its transactions/s."
    ),
    pgbench_seconds: int = typer.Option(20, help="How long pgbench runs."),
    rounds: int = typer.Option(
        3, min=1, help="With --pgbench: rounds of labellers and pgbench, alternated (the ratio's "
        "median sees the same load on both sides, where one run of each may not)."
    ),
):
    frame = _frame(items)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        print(f"SQLite ({items:,} items)")
        url = f"sqlite:///{tmp_path / 'bench.db'}"
        q = _bench_import(url, frame, audit_share)
        _bench_pop_submit(q)
        _bench_progress(q)
        _bench_reorder(q, items)
        _bench_throughput(q, url, labellers, seconds)
        if postgres_url:
            print(f"PostgreSQL ({items:,} items)")
            url, admin, schema = _postgres_schema_url(postgres_url)
            try:
                q = _bench_import(url, frame, audit_share)
                _bench_pop_submit(q)
                _bench_progress(q)
                _bench_reorder(q, items)
                if not pgbench:
                    _bench_throughput(q, url, labellers, seconds)
                else:
                    _bench_against_pgbench(q, url, postgres_url, labellers, seconds,
                                           pgbench_seconds, rounds)
                q.engine.dispose()
            finally:
                with admin.begin() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        print("Baseline: row-by-row reorder (superintendent 0.6) vs set-based (widgetal), SQLite")
        _bench_baseline(tmp_path, [int(s) for s in baseline_sizes.split(",")])


if __name__ == "__main__":
    app()
