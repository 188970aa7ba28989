"""Every SQL statement widgetal runs, named and explained; nobody else builds SQL.

Statements are SQLAlchemy Core expressions where one expression serves SQLite and PostgreSQL,
and ``text()`` with ``:named`` binds where a dialect needs its own wording. User input only
ever arrives as bind parameters.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import (
    counters,
    features,
    items,
    label_counts,
    labellers,
    labels,
    leases,
    ranks,
    reviews,
    runs,
    settings,
    skips,
)

# Statements name the items and ranks by short aliases, which keeps the click's statement under
# the 4,096 characters up to which psycopg caches the parsing of a statement's text: past it,
# every call parses it again (measured: 0.8-1.0 ms of client CPU a click against 0.6 ms).
_items = items.alias("i")
_ranks = ranks.alias("r")
_i = _items.c
_r = _ranks.c
_now = sa.bindparam("now")
_labeller = sa.bindparam("labeller")
# Row limits are written into the statement, not bound: PostgreSQL plans each statement once
# for any parameters (db._plan_once), and a bound LIMIT reads to its planner as a tenth of the
# table, which made the one-row hand-out look costly enough to JIT-compile on every click
# (0.6 s a click at 1,000,000 items).
_ONE = sa.literal_column("1")
_LIMIT = sa.bindparam("limit", type_=sa.Integer, literal_execute=True)

# -- settings ---------------------------------------------------------------------------------

# Read one project setting (label set, instructions, schema version).
read_setting = sa.select(settings.c.value).where(settings.c.key == sa.bindparam("key"))

# Write one project setting; callers delete first so one statement works on both databases.
delete_setting = settings.delete().where(settings.c.key == sa.bindparam("key"))
insert_setting = settings.insert()

# -- items ------------------------------------------------------------------------------------

# Item ids and done state for some external ids: importers that add labels to items already
# stored (e.g. a re-imported superintendent database) need to know which are still open.
find_items_by_external_id = sa.select(_i.id, _i.external_id, _i.done_at).where(
    _i.external_id.in_(sa.bindparam("external_ids", expanding=True))
)

# What an import needs to know of items it finds already stored: is the text the same, and
# (with the labels read next) is a label it brings new, the same, or in conflict.
find_items_for_import = sa.select(
    _i.id, _i.external_id, _i.text, _i.done_at, _i.extra_labels
).where(
    _i.external_id.in_(sa.bindparam("external_ids", expanding=True))
)

# Add texts; RETURNING maps the new ids back to external ids for labels that come with them.
insert_items = items.insert().returning(items.c.id, items.c.external_id)

# PostgreSQL: the same, as parallel arrays unnested into one INSERT. psycopg parses a long
# multi-row VALUES list far more slowly than it sends a few arrays (5k vs 40k+ rows/s).
# random() draws each item's audit key (in [0, 1), as schema's Python default does).
insert_items_postgresql = sa.text(
    "INSERT INTO widgetal_items (external_id, text, meta, created_at, done_at, audit_key) "
    "SELECT r.e, r.t, CAST(r.m AS json), :now, r.d, random() "
    "FROM unnest(CAST(:external_ids AS text[]), CAST(:texts AS text[]), "
    "CAST(:metas AS text[]), CAST(:done_ats AS timestamptz[])) AS r(e, t, m, d) "
    "RETURNING id, external_id"
)

# PostgreSQL: refresh the planner's statistics after a bulk import. Without them a table that
# was empty when last analysed gets sequential scans for every pop until autovacuum catches up
# (measured: 18 ms instead of 2 ms per pop + submit at 300,000 items).
analyze_items_postgresql = [sa.text("ANALYZE widgetal_items"), sa.text("ANALYZE widgetal_ranks")]


def _rank_of(column: sa.Column) -> sa.ScalarSelect:
    # one probe of the ranks' primary key for the item of the row at hand
    return sa.select(column).where(_r.item_id == _i.id).scalar_subquery()


# What a labeller is handed with a text: its place in the queue and the published guess (an
# item out of the queue has no rank: priority 0, no run, no guess).
_item_columns = (
    _i.id, _i.external_id, _i.text, _i.meta,
    sa.func.coalesce(_rank_of(_r.priority), 0.0).label("priority"),
    _rank_of(_r.ranked_by).label("ranked_by"),
    _rank_of(_r.guess_label).label("guess_label"),
    _rank_of(_r.guess_proba).label("guess_proba"),
    _i.audit,
)

# A lease returns the same, with the priority and run it has just recorded as served: the
# rank is looked up once per pop, not twice.
_leased_columns = (
    *_item_columns[:4],
    sa.func.coalesce(_i.served_priority, 0.0).label("priority"),
    _i.served_ranked_by.label("ranked_by"),
    *_item_columns[6:],
)

# The texts of some items (the widget shows one; the orchestrator featurizes many).
read_items = sa.select(*_item_columns).where(_i.id.in_(sa.bindparam("item_ids", expanding=True)))

# The items in the queue, best first; outer, so an item not done always counts (a rank row it
# lacks for a moment, e.g. reopened during a reorder, reads as priority 0).
_ranked_items = _items.outerjoin(_ranks, _r.item_id == _i.id)

# Every item not yet done, in queue order: what the orchestrator scores.
read_undone_items = (
    sa.select(_i.id, _i.text)
    .select_from(_ranked_items)
    .where(_i.done_at.is_(None))
    .order_by(sa.func.coalesce(_r.priority, 0.0).desc(), _i.id)
)

# The same in batches by id (keyset: id > :after), with each item's priority: a boost scans
# millions of texts for matches without holding them all at once.
read_undone_batch = (
    sa.select(_i.id, _i.text, sa.func.coalesce(_r.priority, 0.0).label("priority"))
    .select_from(_ranked_items)
    .where(_i.done_at.is_(None), _i.id > sa.bindparam("after"))
    .order_by(_i.id)
    .limit(_LIMIT)
)

# Bounded cycles (widgetal/pool.py). Whether more than :limit items are undone, counted
# without reading the rest: a small project is scored whole.
count_undone_upto = sa.select(sa.func.count()).select_from(
    sa.select(_i.id).where(_i.done_at.is_(None)).limit(_LIMIT).subquery()
)

# A random subpool: undone items whose fixed uniform key lies in [:start, :stop), in key
# order, at most :limit (the audit-order index serves it; the caller wraps the window around).
read_pool_window = (
    sa.select(_i.id, _i.text)
    .where(_i.done_at.is_(None), _i.audit_key >= sa.bindparam("start"),
           _i.audit_key < sa.bindparam("stop"))
    .order_by(_i.audit_key, _i.id)
    .limit(_LIMIT)
)

# -- the hand-out -----------------------------------------------------------------------------

_live_lease = sa.and_(_i.leased_by.is_not(None), _i.lease_expires_at > _now)

# The item this labeller already holds: a reloaded page gets the same text back.
find_own_lease = (
    sa.select(_i.id)
    .where(_i.leased_by == _labeller, _i.done_at.is_(None), _i.lease_expires_at > _now)
    .order_by(_i.lease_expires_at.desc())
    .limit(_ONE)
)

# (aliased, like the items: these probes are part of the click's statement)
_s = skips.alias("s").c
_not_skipped_by_labeller = ~sa.exists().where(
    _s.item_id == _i.id, _s.labeller == _labeller, _s.undone_at.is_(None)
)

_l = labels.alias("l").c
_not_labelled_by_labeller = ~sa.exists().where(
    _l.item_id == _i.id, _l.labeller == _labeller, _l.undone_at.is_(None)
)


# The audit reserve (see widgetal/audit.py): items whose fixed random key is below the share.
# The priority hand-out never serves them (a NULL key, which no insert leaves, counts as
# outside), so the reserve stays a uniform sample that active learning never picked from;
# an audit pop serves the reserve in key order, so its labelled part is one too.
_audit_share = sa.bindparam("audit_share")
_in_audit_reserve = _i.audit_key < _audit_share
_outside_audit_reserve = sa.func.coalesce(_i.audit_key, 1.0) >= _audit_share


# The priority order walks the ranks' order index from the top and looks each item up by its
# key; the audit order walks the items' audit-order index.
_in_rank_order = _ranks.join(_items, _i.id == _r.item_id)


def _queue_order(audit: bool) -> tuple:
    if audit:
        return _items, _in_audit_reserve, (_i.audit_key, _i.id)
    return _in_rank_order, _outside_audit_reserve, (_r.priority.desc(), _r.item_id)


# The top of the priority queue (outside the audit reserve), which a bounded cycle always
# re-scores with the new model; the ranks' order index serves it.
read_queue_top = (
    sa.select(_i.id, _i.text)
    .select_from(_in_rank_order)
    .where(_i.done_at.is_(None), _outside_audit_reserve)
    .order_by(_r.priority.desc(), _r.item_id)
    .limit(_LIMIT)
)


def _next_free_item(skip_locked: bool, audit: bool = False) -> sa.Select:
    source, reserve, order = _queue_order(audit)
    return (
        sa.select(_i.id)
        .select_from(source)
        .where(
            _i.done_at.is_(None), ~_live_lease, _not_skipped_by_labeller, reserve,
            # only an item a reviewer sent back can hold this labeller's label: the OR keeps
            # the probe off the path of every other item (an anti-join over all of the
            # labeller's labels made each pop grow with their count)
            sa.or_(_i.extra_labels == 0, _not_labelled_by_labeller),
        )
        .order_by(*order)
        .limit(_ONE)
        .with_for_update(skip_locked=skip_locked, of=_items)
    )


def _lease(subquery: sa.Select, audit: bool = False) -> sa.Update:
    # An audit hand-out marks the item for good; a priority one leaves the mark as it is.
    marks = {"audit": True} if audit else {}
    return (
        sa.update(_items)
        .where(_i.id == subquery.scalar_subquery())
        .values(leased_by=_labeller, lease_expires_at=sa.bindparam("expires_at"),
                served_priority=_rank_of(_r.priority), served_ranked_by=_rank_of(_r.ranked_by),
                **marks)
        .returning(*_leased_columns)
    )


# Hand out the best free item and lease it, in one statement. PostgreSQL: FOR UPDATE SKIP
# LOCKED lets concurrent labellers pass each other's rows; SQLite drops the clause and runs it
# inside BEGIN IMMEDIATE, which serialises writers.
lease_next_item = _lease(_next_free_item(skip_locked=True))

# Same, but waiting for locked rows instead of skipping them. Used only when the skipping form
# found nothing, which on PostgreSQL can mean "all candidates are locked by a reorder in
# flight" rather than "queue empty"; waiting gives the right answer once it commits.
lease_next_item_waiting = _lease(_next_free_item(skip_locked=False))

# The audit draw: the free reserve item of smallest key, leased and marked audit, with the
# same locking as the priority hand-out.
lease_next_audit_item = _lease(_next_free_item(skip_locked=True, audit=True), audit=True)
lease_next_audit_item_waiting = _lease(_next_free_item(skip_locked=False, audit=True),
                                       audit=True)

# PostgreSQL: a lease need not survive a server crash (the item would simply be free again), so
# a pop does not wait for its commit to reach disk. Labels never use this: they are durable.
relax_durability_postgresql = sa.text("SET LOCAL synchronous_commit TO OFF")

# PostgreSQL: every session plans each statement once, for any parameters (see db._plan_once;
# a plain string, run by the connect hook on the driver's own cursor).
plan_once_postgresql = "SET plan_cache_mode TO force_generic_plan"

def _renew(item_id: sa.ColumnElement) -> sa.Update:
    # with the priority and run the item was served at: what the label will record
    return (
        sa.update(_items)
        .where(_i.id == item_id)
        .values(leased_by=_labeller, lease_expires_at=sa.bindparam("expires_at"))
        .returning(*_leased_columns)
    )


# Renew the lease on an item this labeller holds (a reloaded page gets the same text back).
renew_lease = _renew(sa.bindparam("item_id"))


def _renew_own(own: sa.CTE) -> sa.CTE:
    """``renew_lease`` of the item in ``own`` (none if ``own`` is empty), as a CTE."""
    return _renew(sa.select(own.c.id).scalar_subquery()).cte("renewed")


def _own_or_next(audit: bool) -> sa.Select:
    own = find_own_lease.cte("own")
    renewed = _renew_own(own)
    leased = (
        _lease(_next_free_item(skip_locked=True, audit=audit), audit=audit)
        .where(~sa.exists(sa.select(own.c.id)))
        .cte("leased")
    )
    return sa.select(renewed).union_all(sa.select(leased))


# PostgreSQL: find_own_lease then renew_lease, else lease_next_item (or, drawn for the audit
# sample, lease_next_audit_item), as one statement: a round trip less per click. No row: the
# labeller holds no lease and the skipping hand-out of that kind found nothing.
lease_own_or_next_postgresql = _own_or_next(audit=False)
lease_own_or_next_audit_postgresql = _own_or_next(audit=True)

# Give an item back to the queue, but only if this labeller holds it.
release_lease = (
    sa.update(_items)
    .where(_i.id == sa.bindparam("item_id"), _i.leased_by == _labeller)
    .values(leased_by=None, lease_expires_at=None)
)

# Remember a skip so this labeller is not shown the item again (while the skip stands).
insert_skip = skips.insert()
find_skip = sa.select(skips.c.item_id).where(
    skips.c.item_id == sa.bindparam("item_id"), skips.c.labeller == _labeller,
    skips.c.undone_at.is_(None),
)

# The labeller's latest skip that still stands: undo takes back the later of it and their
# latest label.
find_latest_skip = (
    sa.select(skips.c.id, skips.c.item_id, skips.c.created_at)
    .where(skips.c.labeller == _labeller, skips.c.undone_at.is_(None))
    .order_by(skips.c.id.desc())
    .limit(_ONE)
)

# Undo keeps the skip in the history, marked; the item may be handed to the labeller again.
mark_skip_undone = (
    skips.update().where(skips.c.id == sa.bindparam("skip_id")).values(undone_at=_now)
)

# Undoing a skip (K = 1): lease that item to the labeller, recording what they are served, as
# a pop does; never over another labeller's live lease (that text is theirs now).
lease_item = (
    sa.update(_items)
    .where(_i.id == sa.bindparam("item_id"),
           sa.or_(~_live_lease, _i.leased_by == _labeller))
    .values(leased_by=_labeller, lease_expires_at=sa.bindparam("expires_at"),
            served_priority=_rank_of(_r.priority), served_ranked_by=_rank_of(_r.ranked_by))
)

# -- labels -----------------------------------------------------------------------------------

# Overlap 1: mark an item done if nobody did first; no row back means someone else's label won
# (or the item wants more than one label: a reviewer sent it back, see record_label_locked).
# RETURNING gives what the labeller was served, for the label's provenance.
_o = settings.alias("o").c
_overlap_is_one = ~sa.exists().where(_o.key == "overlap", sa.cast(_o.value, sa.Text) != "1")
mark_item_done = (
    sa.update(_items)
    .where(
        _i.id == sa.bindparam("item_id"), _i.done_at.is_(None), _i.extra_labels == 0,
        _overlap_is_one,  # the caller's idea of K may be seconds old; the database's is not
    )
    .values(done_at=_now, leased_by=None, lease_expires_at=None)
    .returning(_i.id, _i.served_priority, _i.served_ranked_by, _i.leased_by, _i.audit)
)

# Does the item exist at all (to tell "unknown item" from "already labelled").
item_exists = sa.select(_i.id, _i.done_at).where(_i.id == sa.bindparam("item_id"))

# -- overlap K > 1, and items a reviewer sent back --------------------------------------------
# Leases live in their own table (up to K per item). Correctness rests on the submit: it locks
# the item row, then counts, so an item never holds more than K active labels.

# Lock one item row and read what a label for it must respect; SQLite's BEGIN IMMEDIATE
# already serialises writers, so the clause is dropped there.
lock_item = (
    sa.select(_i.id, _i.done_at, _i.extra_labels, _i.needs_review, _i.served_priority,
              _i.served_ranked_by, _i.audit)
    .where(_i.id == sa.bindparam("item_id"))
    .with_for_update()
)

# The active labels of one item, in the order given: consensus and the one-per-labeller rule.
item_labels = (
    sa.select(labels.c.id, labels.c.label, labels.c.labeller, labels.c.created_at)
    .where(labels.c.item_id == sa.bindparam("item_id"), labels.c.undone_at.is_(None))
    .order_by(labels.c.id)
)

# Close an item that holds all its labels, saying whether they await a reviewer.
complete_item = (
    sa.update(_items)
    .where(_i.id == sa.bindparam("item_id"))
    .values(done_at=_now, needs_review=sa.bindparam("needs_review"), leased_by=None,
            lease_expires_at=None)
)

# Reopen an item (an undone label, a review sending it back): out of review, back in hand-out.
reopen_for_labels = (
    sa.update(_items)
    .where(_i.id == sa.bindparam("item_id"))
    .values(done_at=None, needs_review=False, review_leased_by=None,
            review_lease_expires_at=None,
            extra_labels=_i.extra_labels + sa.bindparam("more", value=0))
)

# This labeller's live lease under overlap (a reloaded page gets the same text back).
find_own_lease_overlap = (
    sa.select(leases.c.item_id)
    .join(_items, _i.id == leases.c.item_id)
    .where(leases.c.labeller == _labeller, leases.c.expires_at > _now, _i.done_at.is_(None))
    .order_by(leases.c.expires_at.desc())
    .limit(_ONE)
)

_active_labels = (
    sa.select(sa.func.count())
    .where(labels.c.item_id == _i.id, labels.c.undone_at.is_(None))
    .scalar_subquery()
)
_others_live_leases = (
    sa.select(sa.func.count())
    .where(leases.c.item_id == _i.id, leases.c.expires_at > _now, leases.c.labeller != _labeller)
    .scalar_subquery()
)


def _next_open_slot(skip_locked: bool, audit: bool = False) -> sa.Select:
    source, reserve, order = _queue_order(audit)
    return (
        sa.select(_i.id)
        .select_from(source)
        .where(
            _i.done_at.is_(None),
            reserve,
            _not_skipped_by_labeller,
            _not_labelled_by_labeller,
            _active_labels + _others_live_leases < sa.bindparam("overlap") + _i.extra_labels,
        )
        .order_by(*order)
        .limit(_ONE)
        .with_for_update(skip_locked=skip_locked, of=_items)
    )


# Overlap: the best item with a free slot that this labeller has neither labelled nor skipped.
# The row lock (SKIP LOCKED) keeps two pops from racing for one slot.
next_open_slot = _next_open_slot(skip_locked=True)
next_open_slot_waiting = _next_open_slot(skip_locked=False)

# Overlap, the audit draw: the reserve item of smallest key with a free slot; the slot's item
# is then marked audit (all its labels are audit labels).
next_open_audit_slot = _next_open_slot(skip_locked=True, audit=True)
next_open_audit_slot_waiting = _next_open_slot(skip_locked=False, audit=True)
mark_item_audit = sa.update(_items).where(_i.id == sa.bindparam("item_id")).values(audit=True)

# Take (or renew) a lease under overlap; delete first, so one statement pair works everywhere.
delete_lease = leases.delete().where(
    leases.c.item_id == sa.bindparam("item_id"), leases.c.labeller == _labeller
)
insert_lease = leases.insert().values(
    item_id=sa.bindparam("item_id"), labeller=_labeller, expires_at=sa.bindparam("expires_at"),
    served_priority=sa.select(_r.priority).where(_r.item_id == sa.bindparam("item_id"))
    .scalar_subquery(),
    served_ranked_by=sa.select(_r.ranked_by).where(_r.item_id == sa.bindparam("item_id"))
    .scalar_subquery(),
)

# What this labeller was served with the item (provenance), under overlap.
read_lease = sa.select(leases.c.served_priority, leases.c.served_ranked_by).where(
    leases.c.item_id == sa.bindparam("item_id"), leases.c.labeller == _labeller
)

# Leases that can never be used again (the item is done): keeps the table small.
delete_item_leases = leases.delete().where(leases.c.item_id == sa.bindparam("item_id"))

# -- review -----------------------------------------------------------------------------------

_live_review_lease = sa.and_(
    _i.review_leased_by.is_not(None), _i.review_lease_expires_at > _now
)

# The item this reviewer already holds.
find_own_review = (
    sa.select(_i.id)
    .where(_i.review_leased_by == _labeller, _i.needs_review, _i.review_lease_expires_at > _now)
    .limit(_ONE)
)


_review_columns = _item_columns[:6]  # a reviewer is shown no guess


def _review_lease(skip_locked: bool) -> sa.Update:
    # best first by the rank the item kept (an item sent back to review after its decision
    # was undone has none: it comes last)
    pick = (
        sa.select(_i.id)
        .select_from(_ranked_items)
        .where(_i.needs_review, ~_live_review_lease)
        .order_by(_r.priority.desc().nulls_last(), _i.id)
        .limit(_ONE)
        .with_for_update(skip_locked=skip_locked, of=_items)
    )
    return (
        sa.update(_items)
        .where(_i.id == pick.scalar_subquery())
        .values(review_leased_by=_labeller, review_lease_expires_at=sa.bindparam("expires_at"))
        .returning(*_review_columns)
    )


# Hand the best item awaiting review to one reviewer, exactly once (as pop does for labels).
lease_next_review = _review_lease(skip_locked=True)
lease_next_review_waiting = _review_lease(skip_locked=False)

# Renew the review lease on an item this reviewer holds (or is handed back by undo).
renew_review_lease = (
    sa.update(_items)
    .where(_i.id == sa.bindparam("item_id"))
    .values(review_leased_by=_labeller, review_lease_expires_at=sa.bindparam("expires_at"),
            needs_review=True)
    .returning(*_review_columns)
)

# A decision closes the review: the item leaves the review queue.
close_review = (
    sa.update(_items)
    .where(_i.id == sa.bindparam("item_id"))
    .values(needs_review=False, review_leased_by=None, review_lease_expires_at=None)
)

# Record a decision (label) or a send-back (label NULL) as its own event.
insert_review = reviews.insert()

# The reviewer's latest decision that still counts: what undo takes back.
find_latest_review = (
    sa.select(reviews.c.id, reviews.c.item_id, reviews.c.label)
    .where(reviews.c.reviewer == _labeller, reviews.c.undone_at.is_(None))
    .order_by(reviews.c.id.desc())
    .limit(_ONE)
)
mark_review_undone = (
    reviews.update().where(reviews.c.id == sa.bindparam("review_id")).values(undone_at=_now)
)

# Has the item a decision that counts (a labeller may not undo a label under it).
find_active_decision = sa.select(reviews.c.id, reviews.c.reviewer).where(
    reviews.c.item_id == sa.bindparam("item_id"), reviews.c.undone_at.is_(None),
    reviews.c.label.is_not(None),
)

# Items awaiting review: status and the orchestrator's "left out" count.
count_awaiting_review = sa.select(sa.func.count()).select_from(_items).where(_i.needs_review)

# Items done, counted (overlap > 1: per-label counts are labels, not items).
count_done_items = sa.select(sa.func.count()).select_from(_items).where(_i.done_at.is_not(None))

# -- team: labels, decisions, people ----------------------------------------------------------

# Every active label of every item that is done: the input of the final-label rule.
read_done_labels = (
    sa.select(
        _i.id.label("item_id"), _i.external_id, _i.text, labels.c.label, labels.c.labeller,
        labels.c.created_at, labels.c.seconds, _i.audit,
    )
    .join(labels, labels.c.item_id == _i.id)
    .where(labels.c.undone_at.is_(None), _i.done_at.is_not(None))
    .order_by(labels.c.id)
)

# Every active label, done or not: agreement statistics.
read_active_label_table = (
    sa.select(labels.c.item_id, labels.c.labeller, labels.c.label)
    .where(labels.c.undone_at.is_(None))
    .order_by(labels.c.id)
)

# Decisions that count: they override the labellers.
read_decisions = (
    sa.select(reviews.c.item_id, reviews.c.label, reviews.c.reviewer, reviews.c.created_at)
    .where(reviews.c.undone_at.is_(None), reviews.c.label.is_not(None))
)

# Decisions on some items: an import compares what it brings with their final labels.
read_decisions_for_items = sa.select(reviews.c.item_id, reviews.c.label).where(
    reviews.c.item_id.in_(sa.bindparam("item_ids", expanding=True)),
    reviews.c.undone_at.is_(None),
    reviews.c.label.is_not(None),
)

# Every event, for `export --events`: labels (and their undos), skips, reviews (and undos).
read_label_events = sa.select(
    labels.c.id, labels.c.item_id, _i.external_id, labels.c.label, labels.c.labeller,
    labels.c.created_at, labels.c.seconds, labels.c.undone_at, labels.c.ranked_by,
    labels.c.priority,
).join(_items, _i.id == labels.c.item_id)
read_skip_events = sa.select(
    skips.c.id, skips.c.item_id, _i.external_id, skips.c.labeller, skips.c.created_at,
    skips.c.undone_at,
).join(_items, _i.id == skips.c.item_id)
read_review_events = sa.select(
    reviews.c.id, reviews.c.item_id, _i.external_id, reviews.c.label, reviews.c.reviewer,
    reviews.c.created_at, reviews.c.seconds, reviews.c.undone_at,
).join(_items, _i.id == reviews.c.item_id)

# People: add, change, list.
read_labeller = sa.select(labellers).where(labellers.c.name == _labeller)
read_labellers = sa.select(labellers).order_by(labellers.c.name)
insert_labeller = labellers.insert()
update_labeller = labellers.update().where(labellers.c.name == _labeller)

# Append one label to the history.
insert_label = labels.insert()

# PostgreSQL, overlap 1: mark_item_done and insert_label as one statement (a round trip less
# per click). The label row takes what the labeller was served from the row the UPDATE
# returns, as the two statements do; no row back means someone else's label won (or the item
# wants more labels), and then nothing was written.
def _first_label(won: sa.CTE) -> sa.Insert:
    return labels.insert().from_select(
        ["item_id", "label", "labeller", "created_at", "seconds", "priority", "ranked_by",
         "audit"],
        sa.select(won.c.id, sa.bindparam("label", type_=labels.c.label.type),
                  sa.bindparam("labeller", type_=labels.c.labeller.type),
                  _now,  # (a parameter named like a column of the items would join the SET)
                  sa.cast(sa.bindparam("seconds"), labels.c.seconds.type),
                  won.c.served_priority, won.c.served_ranked_by, won.c.audit),
    )


_won = mark_item_done.cte("won")
record_first_label_postgresql = (
    _first_label(_won).add_cte(_won, nest_here=True).returning(labels.c.id)
)


def _label_and_lease(audit: bool) -> sa.Select:
    won = mark_item_done.cte("won")
    recorded = _first_label(won).returning(labels.c.item_id).cte("recorded")
    # One snapshot: the labelled item still looks leased and undone here, so it is left out
    # by id (what the second statement of two would see as done).
    labelled = _i.id != sa.bindparam("item_id")
    own = find_own_lease.where(labelled, sa.exists(sa.select(recorded.c.item_id))).cte("own")
    renewed = _renew_own(own)
    leased = (
        _lease(_next_free_item(skip_locked=True, audit=audit).where(labelled), audit=audit)
        .where(~sa.exists(sa.select(own.c.id)), sa.exists(sa.select(recorded.c.item_id)))
        .cte("leased")
    )
    handed = sa.union_all(sa.select(renewed), sa.select(leased)).subquery("handed")
    return sa.select(recorded.c.item_id.label("recorded"), handed).select_from(
        recorded.outerjoin(handed, sa.true())
    )


# PostgreSQL, overlap 1: submit_and_pop's usual click in one statement, record_first_label
# then lease_own_or_next (or its audit form). No row: nothing written, as for
# record_first_label; a row with NULL item columns: the label is recorded and the skipping
# hand-out found nothing.
label_and_lease_postgresql = _label_and_lease(audit=False)
label_and_lease_audit_postgresql = _label_and_lease(audit=True)

# PostgreSQL: many labels at once (an import with a label column), as arrays.
insert_labels_postgresql = sa.text(
    "INSERT INTO widgetal_labels (item_id, label, labeller, created_at, seconds) "
    "SELECT r.i, r.l, r.w, r.c, r.s "
    "FROM unnest(CAST(:item_ids AS integer[]), CAST(:labels AS text[]), "
    "CAST(:labellers AS text[]), CAST(:created_ats AS timestamptz[]), "
    "CAST(:seconds AS double precision[])) AS r(i, l, w, c, s)"
)

# The labels that count on some items: an import compares what it brings with them.
read_active_labels = (
    sa.select(labels.c.id, labels.c.item_id, labels.c.label, labels.c.labeller)
    .where(
        labels.c.item_id.in_(sa.bindparam("item_ids", expanding=True)),
        labels.c.undone_at.is_(None),
    )
    .order_by(labels.c.id)
)

# An import with --on-conflict replace: the old labels stay in the history, marked undone.
mark_labels_undone = (
    labels.update()
    .where(labels.c.id.in_(sa.bindparam("label_ids", expanding=True)))
    .values(undone_at=_now)
)

# Items an import completed (their labels arrived with the file): out of the hand-out.
complete_imported_items = (
    sa.update(_items)
    .where(_i.id.in_(sa.bindparam("item_ids", expanding=True)), _i.done_at.is_(None))
    .values(done_at=_now, leased_by=None, lease_expires_at=None)
)

# The labeller's latest label that still counts: what undo takes back.
find_latest_label = (
    sa.select(labels.c.id, labels.c.item_id, labels.c.created_at)
    .where(labels.c.labeller == _labeller, labels.c.undone_at.is_(None))
    .order_by(labels.c.id.desc())
    .limit(_ONE)
)

# Undo keeps the history: the label is marked, never deleted.
mark_label_undone = (
    labels.update().where(labels.c.id == sa.bindparam("label_id")).values(undone_at=_now)
)

# An undone item is not done any more; it goes straight back to the labeller who undid it.
reopen_item = (
    sa.update(_items)
    .where(_i.id == sa.bindparam("item_id"))
    .values(done_at=None, leased_by=_labeller, lease_expires_at=sa.bindparam("expires_at"))
    .returning(*_item_columns)
)

# -- progress (every click: a row read and a small aggregate) -----------------------------------

# Items in all: one row read, not a count over the items table (see schema.counters).
read_item_count = sa.select(counters.c.value).where(counters.c.name == "items")

# An import adds to the count in the transaction that adds the rows.
add_to_item_count = (
    counters.update()
    .where(counters.c.name == "items")
    .values(value=counters.c.value + sa.bindparam("n"))
)

# A progress bar in one statement: the item count (in a row whose label and labeller are NULL),
# then the labels that count per label and labeller, a few rows the database keeps counted
# (schema.label_counts) that give both tallies. The per-label sum is the number of items done:
# an item is done exactly while one label for it counts (the first wins; undo reopens it).
read_progress = sa.union_all(
    sa.select(sa.null().label("label"), sa.null().label("labeller"),
              counters.c.value.label("n")).where(counters.c.name == "items"),
    sa.select(label_counts.c.label, label_counts.c.labeller, label_counts.c.n)
    .where(label_counts.c.n > 0),
)

# How many labels exist in all (undone included): the orchestrator's "new labels" trigger.
count_label_events = sa.select(sa.func.count()).select_from(labels)

# -- reorder ----------------------------------------------------------------------------------
# Set-based, on the narrow ranks table: only items not done change (an item awaiting a reviewer
# keeps its rank); leases are left as they are. A reorder without guesses clears the old ones: a
# guess is always the run's in ranked_by, never an older model's. A reorder of much of the
# queue writes the table anew in one pass (rows appended in key order, then one sorted index
# build) instead of moving a million index entries one at a time; a small one updates rows in
# place.

# SQLite: a temp table lives in the connection's own temp database, so filling it does not
# hold the main database's write lock. Scores come without their run (one value for all,
# bound once when they are written); ranks kept as they are bring their own. (Named for this
# shape: a pooled connection may still hold a table of an older widgetal under the old name.)
create_scores_table_sqlite = sa.text(
    "CREATE TEMP TABLE IF NOT EXISTS widgetal_rerank "
    "(item_id INTEGER PRIMARY KEY, priority REAL, guess_label TEXT, guess_proba REAL, "
    "kept INTEGER NOT NULL DEFAULT 0, ranked_by INTEGER)"
)
clear_scores_table_sqlite = sa.text("DELETE FROM temp.widgetal_rerank")
# A plain driver statement, given tuples: a million rows skip SQLAlchemy's per-row dicts.
insert_scores_sqlite = (
    "INSERT INTO temp.widgetal_rerank (item_id, priority, guess_label, guess_proba) "
    "VALUES (?, ?, ?, ?)"
)
# ANALYZE gives the planner the temp table's size, so a small reorder walks its own scores and
# finds each rank by its key, rather than the other way round.
analyze_scores_table_sqlite = sa.text("ANALYZE temp.widgetal_rerank")

# Small: each scored rank of an item not done, updated in place (found by key: NOT INDEXED
# keeps the planner off the order index).
apply_priorities_sqlite = sa.text(
    "UPDATE widgetal_ranks NOT INDEXED SET priority = s.priority, ranked_by = :ranked_by, "
    "guess_label = s.guess_label, guess_proba = s.guess_proba "
    "FROM temp.widgetal_rerank AS s "
    "WHERE widgetal_ranks.item_id = s.item_id "
    "AND (SELECT done_at FROM widgetal_items WHERE id = s.item_id) IS NULL"
)
# Large, in one transaction. The ranks not to change join the scores: an item awaiting review
# keeps its own (scored or not), and every rank not scored stays as it is.
keep_reviewed_ranks_sqlite = sa.text(
    "INSERT OR REPLACE INTO temp.widgetal_rerank "
    "(item_id, priority, guess_label, guess_proba, kept, ranked_by) "
    "SELECT r.item_id, r.priority, r.guess_label, r.guess_proba, 1, r.ranked_by "
    "FROM widgetal_items AS i JOIN widgetal_ranks AS r ON r.item_id = i.id "
    "WHERE i.needs_review = 1"  # (as the partial index of items awaiting review says it)
)
keep_unscored_ranks_sqlite = sa.text(
    "INSERT INTO temp.widgetal_rerank "
    "(item_id, priority, guess_label, guess_proba, kept, ranked_by) "
    "SELECT item_id, priority, guess_label, guess_proba, 1, ranked_by FROM widgetal_ranks "
    "WHERE true ON CONFLICT (item_id) DO NOTHING"
)
# The table emptied without its order index (SQLite drops all pages at once)...
_rank_order = next(iter(ranks.indexes))
drop_rank_order = sa.schema.DropIndex(_rank_order)
clear_ranks_sqlite = sa.text("DELETE FROM widgetal_ranks")
# ...written again in key order, leaving out scores of items done (or unknown): CROSS JOIN
# makes SQLite walk the scores and look each item up, not walk the items...
write_ranks_sqlite = sa.text(
    "INSERT INTO widgetal_ranks (item_id, priority, ranked_by, guess_label, guess_proba) "
    "SELECT s.item_id, s.priority, CASE s.kept WHEN 1 THEN s.ranked_by ELSE :ranked_by END, "
    "s.guess_label, s.guess_proba "
    "FROM temp.widgetal_rerank AS s CROSS JOIN widgetal_items AS i ON i.id = s.item_id "
    "WHERE i.done_at IS NULL OR i.needs_review ORDER BY s.item_id"
)
# ...and the index built in one sorted pass.
create_rank_order = sa.schema.CreateIndex(_rank_order)

# PostgreSQL: the scores arrive by binary COPY into a temporary table (db writes the rows with
# numpy: a million rows cost milliseconds of Python, against seconds for text or per-value
# adaptation), emptied at commit. Each guess is its label's 1-based place in :guess_names, the
# few distinct labels, which the driver quotes; without guesses those columns stay NULL.
create_scores_table_postgresql = sa.text(
    "CREATE TEMP TABLE IF NOT EXISTS widgetal_rerank (item_id integer, score double precision, "
    "guess integer, guess_proba double precision) ON COMMIT DELETE ROWS"
)
copy_scores_postgresql = "COPY widgetal_rerank (item_id, score{}) FROM STDIN (FORMAT BINARY)"
copy_guesses_postgresql = ", guess, guess_proba"
analyze_scores_table_postgresql = sa.text("ANALYZE widgetal_rerank")
# Hash joins of a million rows stay in memory for the reorder's transaction.
reorder_memory_postgresql = sa.text("SET LOCAL work_mem TO 131072")  # kB

# Small: in place (the item must not be done: one awaiting review keeps its rank).
apply_priorities_postgresql = sa.text(
    "UPDATE widgetal_ranks SET priority = s.score, ranked_by = :ranked_by, "
    "guess_label = (CAST(:guess_names AS text[]))[s.guess], guess_proba = s.guess_proba "
    "FROM widgetal_rerank AS s JOIN widgetal_items AS i ON i.id = s.item_id "
    "WHERE widgetal_ranks.item_id = s.item_id AND i.done_at IS NULL"
)
# Large: a new table, filled and indexed while labellers go on with the old one, then swapped
# in. Written rows are never updated in place, so a new version of every row and an entry in
# each index per row (PostgreSQL cannot update a row's priority without both) give way to an
# append and two sorted index builds. Pops read the old table meanwhile; the swap waits for
# those in flight and holds the next ones for a moment.
create_next_ranks_postgresql = sa.text(
    "CREATE TABLE widgetal_ranks_next (LIKE widgetal_ranks INCLUDING DEFAULTS)"
)
write_next_ranks_postgresql = sa.text(
    "INSERT INTO widgetal_ranks_next (item_id, priority, ranked_by, guess_label, guess_proba) "
    "SELECT s.item_id, s.score, :ranked_by, (CAST(:guess_names AS text[]))[s.guess], "
    "s.guess_proba FROM widgetal_rerank AS s"
)
key_next_ranks_postgresql = sa.text(
    "ALTER TABLE widgetal_ranks_next ADD CONSTRAINT widgetal_ranks_next_pkey "
    "PRIMARY KEY (item_id)"
)
order_next_ranks_postgresql = sa.text(
    "CREATE INDEX widgetal_ranks_next_order ON widgetal_ranks_next (priority DESC, item_id)"
)
# Under the swap's lock, with a fresh snapshot, the new table is made to hold exactly the items
# that have a rank now: an item awaiting review keeps its own, ranks the old table holds and the
# new one lacks join it (items not scored; items added or reopened since the scores were read),
# and scores of items without a rank (done, before or since) leave it.
lock_ranks_postgresql = sa.text("LOCK TABLE widgetal_ranks IN ACCESS EXCLUSIVE MODE")
unscore_reviewed_postgresql = sa.text(
    "DELETE FROM widgetal_ranks_next WHERE item_id IN "
    "(SELECT id FROM widgetal_items WHERE needs_review)"
)
keep_unscored_ranks_postgresql = sa.text(
    "INSERT INTO widgetal_ranks_next SELECT r.* FROM widgetal_ranks AS r "
    "WHERE NOT EXISTS (SELECT 1 FROM widgetal_ranks_next AS n WHERE n.item_id = r.item_id)"
)
drop_done_ranks_postgresql = sa.text(
    "DELETE FROM widgetal_ranks_next AS n WHERE NOT EXISTS "
    "(SELECT 1 FROM widgetal_ranks AS r WHERE r.item_id = n.item_id)"
)
swap_ranks_postgresql = [
    sa.text("DROP TABLE widgetal_ranks"),
    sa.text("ALTER TABLE widgetal_ranks_next RENAME TO widgetal_ranks"),
    sa.text("ALTER TABLE widgetal_ranks RENAME CONSTRAINT widgetal_ranks_next_pkey "
            "TO widgetal_ranks_pkey"),
    sa.text("ALTER INDEX widgetal_ranks_next_order RENAME TO widgetal_ranks_order"),
    sa.text("ANALYZE widgetal_ranks"),
]

# -- runs -------------------------------------------------------------------------------------

# Open a run record at the start of a cycle.
insert_run = runs.insert().returning(runs.c.id)

# Close it with its outcome (status, and the reason when no model) and what the cycle did.
finish_run = runs.update().where(runs.c.id == sa.bindparam("run_id"))

# Runs, newest first: status, the widget's "ranked by" line, the models notebook.
read_runs = sa.select(runs).order_by(runs.c.id.desc()).limit(_LIMIT)

# -- feature cache ----------------------------------------------------------------------------

# Cached vectors for some items under one featurizer.
read_features = sa.select(features.c.item_id, features.c.vector).where(
    features.c.featurizer == sa.bindparam("featurizer"),
    features.c.item_id.in_(sa.bindparam("item_ids", expanding=True)),
)

# Store new vectors.
insert_features = features.insert()
