"""Project settings beyond the label set (overlap, the disagreement rule) and the people who label.

Stored in the database so that app, orchestrator and CLI always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from . import sql
from .errors import InvalidInput, NotAReviewer

#: What happens when an item's K labels disagree: wait for a reviewer, or take the strict
#: majority when there is one (and still ask a reviewer when there is none).
ON_DISAGREEMENT = ("review", "majority")
ROLES = ("labeller", "reviewer")
#: The share of hand-outs drawn for the audit sample in a project made by `widgetal init` or
#: the quickstart (see widgetal/audit.py). A database without the setting has it off.
DEFAULT_AUDIT_SHARE = 0.05


@dataclass(frozen=True)
class Person:
    """Someone who may label (and, as a reviewer, decide disagreements)."""

    name: str
    role: str
    active: bool
    created_at: datetime
    has_key: bool


def read_setting(conn: sa.Connection, key: str, default: Any = None) -> Any:
    value = conn.execute(sql.read_setting, {"key": key}).scalar_one_or_none()
    return default if value is None else value


def write_setting(conn: sa.Connection, key: str, value: Any) -> None:
    conn.execute(sql.delete_setting, {"key": key})
    conn.execute(sql.insert_setting, {"key": key, "value": value})


def check_overlap(overlap: Any) -> int:
    """K must be a whole number of labellers, at least 1."""
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 1:
        raise InvalidInput(
            f"Overlap must be a whole number of labellers, at least 1 (got {overlap!r}); "
            "nothing was changed."
        )
    return overlap


def check_audit_share(share: Any) -> float:
    """The audit share is a fraction of hand-outs: 0 (off) up to, not including, 1 (nothing
    would be left to train on)."""
    ok = isinstance(share, (int, float)) and not isinstance(share, bool)
    if not ok or not 0.0 <= float(share) < 1.0:  # NaN fails too
        raise InvalidInput(
            f"The audit share is the fraction of hand-outs drawn at random for the audit "
            f"sample: a number from 0 (off) up to but not including 1, e.g. 0.05; got "
            f"{share!r}; nothing was changed."
        )
    return float(share)


def check_on_disagreement(value: str) -> str:
    if value not in ON_DISAGREEMENT:
        raise InvalidInput(
            f"--on-disagreement must be one of {', '.join(ON_DISAGREEMENT)}, not {value!r}; "
            "nothing was changed."
        )
    return value


def set_multi_label(conn: sa.Connection, multi_label: bool) -> None:
    """Fix whether answers are label sets; it cannot change once any label has been given,
    since stored single labels and stored sets would not mean the same thing."""
    if not isinstance(multi_label, bool):
        raise InvalidInput(f"multi_label must be True or False, not {multi_label!r}.")
    if bool(read_setting(conn, "multi_label", False)) == multi_label:
        return
    given = conn.execute(sql.count_label_events).scalar_one()
    if given:
        now, other = ("single-label", "multi-label") if multi_label else ("multi-label",
                                                                           "single-label")
        raise InvalidInput(
            f"This project is {now} and already holds {given} "
            f"{'label' if given == 1 else 'labels'}, so it cannot become {other}; nothing was "
            f"changed. Start a new database (another --db) for a {other} project."
        )
    write_setting(conn, "multi_label", multi_label)


def add_person(conn: sa.Connection, name: str, role: str, now: datetime) -> Person:
    """Register someone; adding a known name again changes their role and re-activates them."""
    name = _check_name(name)
    if role not in ROLES:
        raise InvalidInput(f"A role is one of {', '.join(ROLES)}, not {role!r}.")
    params = {"labeller": name}
    if conn.execute(sql.read_labeller, params).first() is None:
        conn.execute(sql.insert_labeller,
                     {"name": name, "role": role, "active": True, "created_at": now})
    else:
        conn.execute(sql.update_labeller.values(role=role, active=True), params)
    return _person(conn.execute(sql.read_labeller, params).one())


def set_active(conn: sa.Connection, name: str, active: bool) -> Person:
    params = {"labeller": _check_name(name)}
    if conn.execute(sql.update_labeller.values(active=active), params).rowcount == 0:
        raise InvalidInput(f"No labeller named {name!r}: add them with `widgetal labellers add`.")
    return _person(conn.execute(sql.read_labeller, params).one())


def people(conn: sa.Connection) -> list[Person]:
    return [_person(r) for r in conn.execute(sql.read_labellers)]


def check_reviewer(conn: sa.Connection, name: str) -> None:
    """Only people registered as active reviewers may decide disagreements."""
    row = conn.execute(sql.read_labeller, {"labeller": name}).first()
    if row is None or row.role != "reviewer" or not row.active:
        raise NotAReviewer(
            f"{name} is not allowed to review: a project owner runs "
            f"`widgetal labellers add {name} --reviewer` first. Nothing was changed."
        )


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("A labeller needs a non-empty name.")
    return name.strip()


def _person(row: Any) -> Person:
    return Person(row.name, row.role, bool(row.active), row.created_at, row.key_hash is not None)
