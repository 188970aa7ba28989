"""Bounded cycles: which unlabelled items a cycle scores when there are too many to score all.

A cycle scores a random subpool of ``pool_size`` items plus the ``top`` items currently at the
head of the queue (so what labellers are about to see is always re-scored by the newest
model); every other item keeps its old priority and the ``ranked_by`` of the run that set it.
Sampling the pool is common active-learning practice; ``widgetal simulate --pool-size``
replays the same sampler (:func:`window`) to measure what it costs in labels.

The subpool is a window of the items' fixed uniform random ``audit_key``: the ``pool_size``
items whose key follows a start drawn afresh each run, wrapping around, read in key order
through the audit-order index (no scan of the corpus). Keys below the project's audit share
are the audit reserve, which the queue never serves by priority: the window skips them, as
scoring them would change nothing a labeller sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import sql

#: Items scored per cycle by default: projects up to this size are scored whole.
DEFAULT_POOL_SIZE = 200_000
#: Items at the head of the queue re-scored by every bounded cycle.
DEFAULT_TOP = 10_000


def check_pool_size(pool_size: Any) -> int | None:
    """``None`` (score every item) or a whole number of items, at least 1."""
    if pool_size is None:
        return None
    return _whole_number(
        pool_size, 1, "pool_size is how many unlabelled items a cycle scores: a whole number "
        ">= 1, or None to score them all")


def check_top(top: Any) -> int:
    """How many items at the head of the queue each bounded cycle re-scores: 0 or more."""
    return _whole_number(
        top, 0, "top is how many items at the head of the queue a bounded cycle re-scores: a "
        "whole number >= 0")


def _whole_number(value: Any, minimum: int, meaning: str) -> int:
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool)
            or value < minimum):
        raise ValueError(f"{meaning}; got {value!r}.")
    return int(value)


def draw_start(rng: np.random.Generator, audit_share: float) -> float:
    """Where this run's window of keys begins: uniform over the keys outside the reserve."""
    return float(audit_share + (1.0 - audit_share) * rng.random())


def window(keys: Any, start: float, audit_share: float, size: int) -> np.ndarray:
    """Positions of the ``size`` keys at or after ``start`` in key order, wrapping round to
    ``audit_share``: the in-memory twin of :func:`read_subpool`'s two reads (simulate's)."""
    keys = np.asarray(keys, dtype=float)
    after = np.flatnonzero(keys >= start)
    after = after[np.lexsort((after, keys[after]))][:size]
    before = np.flatnonzero((keys >= audit_share) & (keys < start))
    before = before[np.lexsort((before, keys[before]))][: size - after.size]
    return np.concatenate([after, before])


def read_subpool(queue: Any, pool_size: int | None, top: int,
                 rng: np.random.Generator) -> tuple[Any, dict]:
    """The items a cycle scores, in id order (``item_id``, ``text``), and what was read.

    Every undone item while there are at most ``pool_size`` (or ``pool_size`` is None): the
    full cycle, audit reserve included. Otherwise the key window of ``pool_size`` items
    outside the reserve, from :func:`draw_start`, plus the ``top`` items first in the queue.
    """
    import pandas as pd

    columns = ["item_id", "text"]
    if pool_size is None or not _more_undone_than(queue, pool_size):
        pool = queue.undone()
        return pool.sort_values("item_id", kind="stable"), {"sampled": False,
                                                          "scored": len(pool)}
    share = queue.audit_share
    start = draw_start(rng, share)
    with queue.db.read() as conn:
        rows = _read_window(conn, start, share, pool_size)
        head = conn.execute(sql.read_queue_top, {"limit": top, "audit_share": share}).all()
    # plain tuples: pandas probes each driver row for attributes, which costs seconds at 200,000
    pool = (pd.DataFrame([tuple(row) for row in rows + head], columns=columns)
            .drop_duplicates("item_id").sort_values("item_id", kind="stable")
            .reset_index(drop=True))
    info = {"sampled": True, "pool_size": pool_size, "top": top, "start": round(start, 6),
            "window": len(rows), "head": len(head), "scored": len(pool)}
    return pool, info


def sample_undone_ids(queue: Any, pool_size: int | None, n: int,
                      rng: np.random.Generator) -> list[int]:
    """Ids to draw a fixed sample of ``n`` unlabelled items from (the stop set).

    Every undone item while a cycle scores them all (as :func:`read_subpool`); otherwise a key
    window of ``n`` items outside the audit reserve, which is itself a uniform sample, read
    through the audit-order index instead of every id of a corpus of millions.
    """
    if pool_size is None or not _more_undone_than(queue, pool_size):
        return queue.undone()["item_id"].tolist()
    share = queue.audit_share
    with queue.db.read() as conn:
        return [row[0] for row in _read_window(conn, draw_start(rng, share), share, n)]


def _read_window(conn: Any, start: float, share: float, limit: int) -> list:
    """Up to ``limit`` undone items (id, text) from key ``start`` on, wrapping round to the
    reserve's edge ``share``."""
    rows = conn.execute(sql.read_pool_window, {"start": start, "stop": 2.0, "limit": limit}).all()
    if len(rows) < limit:
        rows += conn.execute(sql.read_pool_window, {
            "start": share, "stop": start, "limit": limit - len(rows)}).all()
    return rows


def _more_undone_than(queue: Any, n: int) -> bool:
    with queue.db.read() as conn:
        return conn.execute(sql.count_undone_upto, {"limit": n + 1}).scalar_one() > n


__all__ = ["DEFAULT_POOL_SIZE", "DEFAULT_TOP", "check_pool_size", "check_top", "draw_start",
           "window", "read_subpool", "sample_undone_ids"]
