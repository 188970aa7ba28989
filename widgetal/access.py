"""Who is this page's labeller: the project's access mode, personal keys, and the verified name.

Three modes, stored in the project (``widgetal init --access``):

``open``
    A name is enough (``?labeller=NAME``, or the name prompt): one person, or people who trust
    each other. ``?reviewer=NAME`` opens the review app as NAME (registered reviewers only).
``keys``
    Everyone opens a personal secret link, ``?key=KEY`` (``widgetal labellers add NAME`` prints
    it). The key alone says who it is: ``?labeller=`` and the name in ``?reviewer=`` are
    ignored. ``&review=1`` on a reviewer's link opens the review app instead of labelling.
``header``
    A trusted reverse proxy authenticates people and passes the name in a request header;
    ``widgetal serve`` asks Voila to hand that header to the kernel's environment
    (``HTTP_X_FORWARDED_USER`` for ``X-Forwarded-User``). An optional allow-list limits who
    may label. ``?review=1`` opens the review app.

In ``keys`` and ``header`` mode a disabled person (``widgetal labellers disable``) is refused.
Everything here but :func:`page_identity` and the two database helpers is pure: query string,
environment and people in, an :class:`Identity` out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import sqlalchemy as sa

from . import project, sql
from .errors import InvalidInput

MODES = ("open", "keys", "header")
DEFAULT_HEADER = "X-Forwarded-User"
SETTING = "access"  # the widgetal_settings key holding the policy
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class AccessPolicy:
    """The project's access mode; ``header`` and ``allow`` matter in header mode only."""

    mode: str = "open"
    header: str = DEFAULT_HEADER
    allow: tuple[str, ...] = field(default_factory=tuple)

    def to_setting(self) -> dict[str, Any]:
        return {"mode": self.mode, "header": self.header, "allow": list(self.allow)}

    @classmethod
    def from_setting(cls, value: Any) -> AccessPolicy:
        if not isinstance(value, dict):
            return cls()
        return cls(value.get("mode", "open"), value.get("header") or DEFAULT_HEADER,
                   tuple(value.get("allow") or ()))


@dataclass(frozen=True)
class Identity:
    """Who the page belongs to.

    ``refusal`` set: nobody verified; show it and hand out nothing. ``name`` None without a
    refusal: open mode without a name in the URL (the app asks for one). ``review``: the page
    asked for the review app.
    """

    name: str | None
    review: bool = False
    refusal: str | None = None
    mode: str = "open"

    @property
    def refused(self) -> bool:
        return self.refusal is not None


@dataclass(frozen=True)
class KeyHolder:
    """What :func:`resolve` needs to know of a registered person."""

    name: str
    key_hash: str | None
    active: bool


def check_policy(mode: str, header: str | None = None,
                 allow: Iterable[str] | None = None) -> AccessPolicy:
    """A valid policy from ``widgetal init --access`` options, or InvalidInput."""
    if mode not in MODES:
        raise InvalidInput(f"--access must be one of {', '.join(MODES)}, not {mode!r}; "
                           "nothing was changed.")
    header = (header or DEFAULT_HEADER).strip()
    if not header or not all(c.isalnum() or c == "-" for c in header):
        raise InvalidInput(f"--header-name must be an HTTP header name such as {DEFAULT_HEADER}"
                           f" (letters, digits and -), not {header!r}; nothing was changed.")
    names = tuple(dict.fromkeys(a.strip() for a in (allow or ()) if a.strip()))
    if names and mode != "header":
        raise InvalidInput("--allow lists names for header mode only (--access header); "
                           "nothing was changed.")
    return AccessPolicy(mode, header, names)


# -- keys ------------------------------------------------------------------------------------

def new_key() -> str:
    """A personal key: 256 random bits from ``secrets``, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What the database stores instead of the key.

    A plain SHA-256 is enough here, unlike for passwords: keys are 256-bit random tokens from
    ``secrets``, not words a person chose, so there is no dictionary to try and brute force
    over the key space is hopeless; a slow, salted hash (bcrypt, argon2) would add nothing but
    a dependency and a slower page load. A leaked database still does not reveal any key.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, key_hash: str | None) -> bool:
    """Constant-time comparison, so response times do not reveal how much of a hash matched."""
    if not key or not key_hash:
        return False
    return hmac.compare_digest(hash_key(key), key_hash)


def key_link(base_url: str, key: str, review: bool = False) -> str:
    """The personal link for ``key`` on the app at ``base_url``."""
    params = {"key": key, **({"review": "1"} if review else {})}
    return f"{base_url.rstrip('/')}/?{urlencode(params)}"


def header_env_name(header: str) -> str:
    """The kernel environment variable Voila sets for a request header (RFC 3875 style)."""
    return "HTTP_" + header.upper().replace("-", "_")


# -- who is this page ------------------------------------------------------------------------

def resolve(policy: AccessPolicy, query_string: str, environ: Mapping[str, str],
            people: Iterable[KeyHolder]) -> Identity:
    """The page's verified identity from its query string and kernel environment.

    Pure: the caller reads the policy and the people (see :func:`page_identity`).
    """
    query = parse_qs((query_string or "").lstrip("?"))

    def param(name: str) -> str:
        values = query.get(name)
        return values[0].strip() if values else ""

    mode = policy.mode
    if mode == "open":
        if "reviewer" in query:
            return Identity(param("reviewer") or None, review=True, mode=mode)
        return Identity(param("labeller") or None, review=param("review").lower() in _TRUE,
                        mode=mode)
    review = param("review").lower() in _TRUE or "reviewer" in query
    if mode == "keys":
        key = param("key")
        if not key:
            return _refuse(mode, review, "This labelling app needs your personal link (it ends in "
                           "?key=...). Ask the project owner for yours; a name in the address is "
                           "not enough.")
        # every stored hash is compared (no early exit on the first match): constant time
        # per person, and no index lookup whose timing depends on the key
        matches = [p for p in people if key_matches(key, p.key_hash)]
        if not matches:
            return _refuse(mode, review, "This link's key is not valid: it may have been "
                           "replaced by a new one. Ask the project owner for your current link.")
        person = matches[0]
        if not person.active:
            return _refuse(mode, review, f"{person.name}'s access is disabled. Ask the project "
                           "owner if this is a mistake.")
        return Identity(person.name, review=review, mode=mode)
    if mode == "header":
        name = (environ.get(header_env_name(policy.header)) or "").strip()
        if not name:
            return _refuse(mode, review, "You are not signed in: this app is served behind a "
                           "sign-in page, and the request did not say who you are. Open it "
                           "through your organisation's address, not the server's port.")
        if policy.allow and name not in policy.allow:
            return _refuse(mode, review, f"{name} is signed in but not on this project's list "
                           "of labellers. Ask the project owner to add you.")
        known = {p.name: p for p in people}
        if name in known and not known[name].active:
            return _refuse(mode, review, f"{name}'s access is disabled. Ask the project owner "
                           "if this is a mistake.")
        return Identity(name, review=review, mode=mode)
    return _refuse(mode, review, f"This project's access mode {mode!r} is unknown to this "
                   "version of widgetal; nothing is handed out.")


def _refuse(mode: str, review: bool, why: str) -> Identity:
    return Identity(None, review=review, refusal=why, mode=mode)


def page_environment(environ: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """The page's request environment. A pre-heated Voila kernel starts before its page is
    requested, then waits here until Voila hands it the request's variables."""
    env = os.environ if environ is None else environ
    if env.get("VOILA_PREHEAT") == "True":
        wait_for_voila_request()
    return env


def wait_for_voila_request() -> None:
    """Block until Voila sends this pre-heated kernel its page's request, and put the request's
    variables (``QUERY_STRING``, the chosen headers) in ``os.environ``.

    The same exchange as ``voila.utils.wait_for_request`` (one JSON message on Voila's
    ``voila/query/KERNEL_ID`` websocket, read with the websockets client Voila itself uses),
    without importing ``voila.utils``, which loads the Voila server (jupyter_server,
    jupyterlab_server): about 45 MB and a second of CPU in every pooled kernel. If Voila cannot
    be reached the environment stays as it is, and the page is refused for want of a name.
    """
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    env = os.environ
    base = env.get("VOILA_WS_BASE_URL", env.get("VOILA_SERVER_URL", "/"))
    url = (f"{env.get('VOILA_WS_PROTOCOL', 'ws')}://{env.get('VOILA_APP_IP', '127.0.0.1')}:"
           f"{env.get('VOILA_APP_PORT', '8866')}{base}voila/query/{env.get('VOILA_KERNEL_ID')}")
    try:
        with connect(url, open_timeout=5) as socket:
            request = json.loads(socket.recv())
    except (OSError, TimeoutError, ValueError, WebSocketException) as exc:
        warnings.warn(f"widgetal: cannot read this page's request from Voila at {url}: {exc}",
                      stacklevel=2)
        return
    os.environ.update({str(k): str(v) for k, v in request.items()})


def page_identity(queue: Any, environ: Mapping[str, str] | None = None) -> Identity:
    """The identity of the page the kernel serves (Voila passes ``QUERY_STRING`` and the
    chosen headers in the kernel's environment), checked against the project's policy."""
    env = page_environment(environ)
    with queue.db.read() as conn:
        policy = read_policy(conn)
        people = [] if policy.mode == "open" else holders(conn)
    return resolve(policy, env.get("QUERY_STRING", ""), env, people)


# -- the database side ------------------------------------------------------------------------

def read_policy(conn: sa.Connection) -> AccessPolicy:
    return AccessPolicy.from_setting(project.read_setting(conn, SETTING))


def write_policy(conn: sa.Connection, policy: AccessPolicy) -> None:
    project.write_setting(conn, SETTING, policy.to_setting())


def holders(conn: sa.Connection) -> list[KeyHolder]:
    return [KeyHolder(r.name, r.key_hash, bool(r.active)) for r in conn.execute(sql.read_labellers)]


def set_new_key(conn: sa.Connection, name: str) -> str:
    """Give a registered person a new key (the old one stops working); returns the key, which
    is shown once and never stored."""
    key = new_key()
    params = {"labeller": name}
    if conn.execute(sql.update_labeller.values(key_hash=hash_key(key)), params).rowcount == 0:
        raise InvalidInput(f"No labeller named {name!r}: add them with `widgetal labellers add`.")
    return key


def policy(queue: Any) -> AccessPolicy:
    """The project's access policy (``open`` until ``widgetal init --access`` says otherwise)."""
    with queue.db.read() as conn:
        return read_policy(conn)


def configure(queue: Any, policy: AccessPolicy) -> None:
    with queue.db.write() as conn:
        write_policy(conn, policy)


def rotate_key(queue: Any, name: str) -> str:
    with queue.db.write() as conn:
        return set_new_key(conn, name.strip())


def has_key(queue: Any, name: str) -> bool:
    with queue.db.read() as conn:
        row = conn.execute(sql.read_labeller, {"labeller": name.strip()}).first()
    return row is not None and row.key_hash is not None


__all__ = [
    "AccessPolicy", "Identity", "KeyHolder", "MODES", "DEFAULT_HEADER", "check_policy",
    "new_key", "hash_key", "key_matches", "key_link", "header_env_name", "resolve",
    "page_environment", "page_identity", "policy", "configure", "rotate_key", "has_key",
]
