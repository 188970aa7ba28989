"""Who is this page's labeller: open, keys and header access, pure and against the database."""

from __future__ import annotations

import pytest

from widgetal import access
from widgetal.access import AccessPolicy, KeyHolder, resolve
from widgetal.errors import InvalidInput

ANA_KEY = access.new_key()
BO_KEY = access.new_key()
PEOPLE = [
    KeyHolder("ana", access.hash_key(ANA_KEY), True),
    KeyHolder("bo", access.hash_key(BO_KEY), False),  # disabled
    KeyHolder("cy", None, True),  # registered, no key
]
KEYS = AccessPolicy("keys")
HEADER = AccessPolicy("header", "X-Forwarded-User")


def test_keys_are_random_url_safe_and_only_their_hash_matches():
    assert ANA_KEY != BO_KEY and len(ANA_KEY) >= 43  # 256 bits
    assert all(c.isalnum() or c in "-_" for c in ANA_KEY)
    digest = access.hash_key(ANA_KEY)
    assert ANA_KEY not in digest and len(digest) == 64
    assert access.key_matches(ANA_KEY, digest)
    assert not access.key_matches(BO_KEY, digest)
    assert not access.key_matches("", digest) and not access.key_matches(ANA_KEY, None)


def test_open_mode_trusts_the_name_in_the_url_or_asks_for_one():
    policy = AccessPolicy()
    assert resolve(policy, "labeller=ana", {}, []) == access.Identity("ana")
    assert resolve(policy, "", {}, []) == access.Identity(None)  # the widget asks
    who = resolve(policy, "?reviewer=rita", {}, [])
    assert who.name == "rita" and who.review and not who.refused


def test_keys_mode_names_the_keys_holder_and_ignores_a_labeller_in_the_url():
    who = resolve(KEYS, f"key={ANA_KEY}&labeller=mallory", {}, PEOPLE)
    assert (who.name, who.review, who.refusal) == ("ana", False, None)
    who = resolve(KEYS, f"key={ANA_KEY}&review=1", {}, PEOPLE)
    assert who.name == "ana" and who.review
    who = resolve(KEYS, f"key={ANA_KEY}&reviewer=mallory", {}, PEOPLE)
    assert who.name == "ana" and who.review  # the reviewer's name is not taken either


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("labeller=ana", "personal link"),
        ("", "personal link"),
        ("key=", "personal link"),
        (f"key={ANA_KEY[:-1]}x", "not valid"),
        (f"key={BO_KEY}", "bo's access is disabled"),
        ("key=" + "A" * 43, "not valid"),
    ],
)
def test_keys_mode_refuses_a_missing_wrong_or_disabled_key(query, why):
    who = resolve(KEYS, query, {}, PEOPLE)
    assert who.refused and who.name is None
    assert why in who.refusal


def test_header_mode_takes_the_proxys_name_and_nothing_from_the_url():
    env = {"HTTP_X_FORWARDED_USER": " dana "}
    who = resolve(HEADER, "labeller=mallory", env, PEOPLE)
    assert (who.name, who.refused) == ("dana", False)
    assert resolve(HEADER, "review=1", env, PEOPLE).review


def test_header_mode_refuses_no_header_a_name_off_the_list_or_a_disabled_person():
    assert "not signed in" in resolve(HEADER, "labeller=ana", {}, PEOPLE).refusal
    assert resolve(HEADER, "", {"HTTP_X_FORWARDED_USER": "  "}, PEOPLE).refused
    listed = AccessPolicy("header", "X-Remote-User", ("ana", "dana"))
    assert resolve(listed, "", {"HTTP_X_REMOTE_USER": "ana"}, PEOPLE).name == "ana"
    off = resolve(listed, "", {"HTTP_X_REMOTE_USER": "eve"}, PEOPLE)
    assert off.refused and "not on this project's list" in off.refusal
    wrong_header = resolve(listed, "", {"HTTP_X_FORWARDED_USER": "ana"}, PEOPLE)
    assert wrong_header.refused
    assert "disabled" in resolve(HEADER, "", {"HTTP_X_FORWARDED_USER": "bo"}, PEOPLE).refusal


def test_header_env_name_follows_voila():
    assert access.header_env_name("X-Forwarded-User") == "HTTP_X_FORWARDED_USER"
    assert access.header_env_name("x-remote-user") == "HTTP_X_REMOTE_USER"


def test_check_policy_refuses_bad_options():
    assert access.check_policy("header", None, ["ana", " bo", "", "ana"]).allow == ("ana", "bo")
    assert access.check_policy("keys").mode == "keys"
    for args in (("secret",), ("header", "X Forwarded"), ("keys", None, ["ana"])):
        with pytest.raises(InvalidInput):
            access.check_policy(*args)


def test_key_link():
    assert access.key_link("http://h:1", "k-_") == "http://h:1/?key=k-_"
    assert access.key_link("http://h:1/", "k", review=True) == "http://h:1/?key=k&review=1"


def test_policy_and_keys_live_in_the_project(queue):
    assert access.policy(queue) == AccessPolicy()
    access.configure(queue, access.check_policy("header", "X-Remote-User", ["ana"]))
    assert access.policy(queue) == AccessPolicy("header", "X-Remote-User", ("ana",))
    access.configure(queue, AccessPolicy("keys"))
    queue.add_person("ana")
    assert not access.has_key(queue, "ana")
    old = access.rotate_key(queue, "ana")
    new = access.rotate_key(queue, "ana")
    with queue.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT key_hash FROM widgetal_labellers").scalar_one()
    assert stored == access.hash_key(new) and new not in stored and old != new
    env = {"QUERY_STRING": f"key={new}"}
    assert access.page_identity(queue, env).name == "ana"
    assert access.page_identity(queue, {"QUERY_STRING": f"key={old}"}).refused
    queue.set_person_active("ana", False)
    assert "disabled" in access.page_identity(queue, env).refusal
    with pytest.raises(InvalidInput, match="No labeller named"):
        access.rotate_key(queue, "nobody")
