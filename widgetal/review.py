"""Review: a reviewer is served items whose labels disagree, exactly once, and decides them.

A decision (a final label) or a send-back (one more label wanted) is its own event in
``widgetal_reviews``; undo marks it undone and returns the item to review. Every function runs
in the caller's write transaction; the item row is locked first, as a labeller's submit or
undo does, so a reviewer and a labeller never both finalise one item differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import sql
from .errors import NotAwaitingReview, NothingToUndo, UnknownItem

if TYPE_CHECKING:
    from .db import Database


@dataclass(frozen=True)
class ReviewItem:
    """An item awaiting a decision, with every label and who gave it."""

    item_id: int
    external_id: str
    text: str
    meta: dict[str, Any] | None
    labels: list[tuple[str, str]]  # (labeller, label), in the order given


def lease_next(conn: sa.Connection, reviewer: str, now: datetime, lease: timedelta,
               db: Database) -> ReviewItem | None:
    """The reviewer's held item, else the best item awaiting review, leased to them."""
    params = {"labeller": reviewer, "now": now, "expires_at": now + lease}
    own = conn.execute(sql.find_own_review, params).scalar()
    if own is not None:
        row = conn.execute(sql.renew_review_lease, {**params, "item_id": own}).one()
    else:
        row = db.hand_out(conn, sql.lease_next_review, sql.lease_next_review_waiting, params)
    return None if row is None else _with_labels(conn, row)


def details(conn: sa.Connection, item_id: int) -> ReviewItem:
    row = conn.execute(sql.read_items, {"item_ids": [item_id]}).first()
    if row is None:
        raise UnknownItem(f"There is no item {item_id}.")
    return _with_labels(conn, row)


def decide(conn: sa.Connection, item_id: int, reviewer: str, label: str | None,
           seconds: float | None, now: datetime) -> None:
    """Record the final label (or, with ``label=None``, send the item back for one more)."""
    item = conn.execute(sql.lock_item, {"item_id": item_id}).first()
    if item is None:
        raise UnknownItem(f"There is no item {item_id}; nothing was saved.")
    if not item.needs_review:
        raise NotAwaitingReview(
            f"Item {item_id} is not awaiting review (its labels agree, it is not complete yet, "
            "or another reviewer decided it); nothing was saved."
        )
    conn.execute(sql.insert_review, {"item_id": item_id, "reviewer": reviewer, "label": label,
                                     "created_at": now, "seconds": seconds})
    conn.execute(sql.close_review, {"item_id": item_id})
    if label is None:
        conn.execute(sql.reopen_for_labels, {"item_id": item_id, "more": 1})


def undo(conn: sa.Connection, reviewer: str, now: datetime, lease: timedelta,
         overlap: int) -> ReviewItem:
    """Take back the reviewer's latest decision; the item returns to review, held by them."""
    latest = conn.execute(sql.find_latest_review, {"labeller": reviewer}).first()
    if latest is None:
        raise NothingToUndo(f"{reviewer} has no review to undo.")
    item = conn.execute(sql.lock_item, {"item_id": latest.item_id}).one()
    if latest.label is None:  # a send-back: only while the extra label has not arrived
        n = len(conn.execute(sql.item_labels, {"item_id": latest.item_id}).all())
        if item.done_at is not None or n != overlap + item.extra_labels - 1:
            raise NothingToUndo(
                f"Item {latest.item_id} has been labelled again since you sent it back; "
                "review it when it returns instead."
            )
        conn.execute(sql.reopen_for_labels, {"item_id": latest.item_id, "more": -1})
        conn.execute(sql.complete_item, {"item_id": latest.item_id, "now": now,
                                         "needs_review": True})
        conn.execute(sql.delete_item_leases, {"item_id": latest.item_id})
    conn.execute(sql.mark_review_undone, {"review_id": latest.id, "now": now})
    params = {"labeller": reviewer, "item_id": latest.item_id, "expires_at": now + lease}
    row = conn.execute(sql.renew_review_lease, params).one()
    return _with_labels(conn, row)


def _with_labels(conn: sa.Connection, row: Any) -> ReviewItem:
    given = conn.execute(sql.item_labels, {"item_id": row.id}).all()
    return ReviewItem(row.id, row.external_id, row.text, row.meta,
                      [(r.labeller, r.label) for r in given])
