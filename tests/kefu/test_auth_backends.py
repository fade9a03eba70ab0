"""Sign-in throttling (issue 16: 13, django-axes): repeated failures lock the client address out of the one
staff sign-in (for /staff/, /kb/ and /admin/); another address, and the right password after the cool-off, still
get in. Failures are stored in the database: SQLite in embedded mode, PostgreSQL in service mode."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from kefu.roles import ANALYST
from tests.conftest import staff_member

ATTACKER = {"REMOTE_ADDR": "203.0.113.7"}


@pytest.fixture
def analyst(db):
    return staff_member("ana", password="pw-ana-12345", roles=(ANALYST,))


def sign_in(client, password: str, *, url: str = "/staff/login/", username: str = "ana", **meta):
    return client.post(url, {"username": username, "password": password, "next": "/staff/"}, **meta)


def test_repeated_failed_sign_ins_lock_the_address_out(client, analyst, settings):
    # given the default limit of 5 failures
    assert settings.AXES_FAILURE_LIMIT == 5
    # when one address guesses 5 wrong passwords / then the fifth failure locks it out
    assert [sign_in(client, f"guess-{n}", **ATTACKER).status_code for n in range(5)] == [200] * 4 + [429]
    # and even the right password is refused with 429 on the one sign-in page, which the admin's address sends to
    assert sign_in(client, "pw-ana-12345", **ATTACKER).status_code == 429
    assert sign_in(client, "pw-ana-12345", url="/admin/login/", **ATTACKER)["Location"] == "/staff/login/"
    assert "_auth_user_id" not in client.session
    # while the same user from another address signs in
    response = sign_in(client, "pw-ana-12345", REMOTE_ADDR="198.51.100.9")
    assert response.status_code == 302 and response["Location"] == "/staff/"


def test_guessing_across_usernames_from_one_address_is_locked_out_too(client, analyst):
    # when one address tries one password on many usernames
    for n in range(5):
        sign_in(client, "Summer2026!", username=f"user{n}", **ATTACKER)
    # then that address is locked out, whatever the username
    assert sign_in(client, "pw-ana-12345", **ATTACKER).status_code == 429


def test_the_lock_ends_after_the_cool_off(client, analyst, settings):
    from axes.models import AccessAttempt

    for n in range(5):
        sign_in(client, f"guess-{n}", **ATTACKER)
    assert sign_in(client, "pw-ana-12345", **ATTACKER).status_code == 429
    # when the cool-off has passed (the attempts are older than it)
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.first().attempt_time - settings.AXES_COOLOFF_TIME)
    # then the right password works again
    assert sign_in(client, "pw-ana-12345", **ATTACKER).status_code == 302


def test_a_sign_in_without_a_request_is_left_to_djangos_backend(db):
    from django.contrib.auth import authenticate

    # given a user / when code (not a sign-in page) authenticates without a request
    User.objects.create_user("cli", password="pw-cli-12345")
    # then the password decides, as before
    assert authenticate(username="cli", password="pw-cli-12345") is not None
    assert authenticate(username="cli", password="wrong") is None


def test_a_host_rotating_ipv6_addresses_of_its_64_is_locked_out_as_one(client, analyst):
    # when one host guesses from a new address of its /64 each time
    for n in range(1, 6):
        sign_in(client, f"guess-{n}", REMOTE_ADDR=f"2001:db8:7:7::{n:x}")
    # then the whole /64 is locked out, and another /64 is not
    assert sign_in(client, "pw-ana-12345", REMOTE_ADDR="2001:db8:7:7::ff").status_code == 429
    assert sign_in(client, "pw-ana-12345", REMOTE_ADDR="2001:db8:7:8::1").status_code == 302


@pytest.mark.parametrize(("meta", "address"), [
    ({"REMOTE_ADDR": "203.0.113.7"}, "203.0.113.7"),
    ({"REMOTE_ADDR": "2001:db8:7:7:1:2:3:4"}, "2001:db8:7:7::"),
    ({}, None),
])
def test_failures_are_counted_per_ipv4_address_or_ipv6_64(rf, meta, address):
    from kefu.auth_backends import login_client_address

    request = rf.post("/staff/login/", **meta)
    if not meta:
        del request.META["REMOTE_ADDR"]
    assert login_client_address(request) == address
