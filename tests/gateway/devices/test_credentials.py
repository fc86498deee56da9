"""gateway.devices.credentials: tokens, secret hashes and remembered password checks (pure)."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import make_password
from hypothesis import given
from hypothesis import strategies as st

from gateway.devices.credentials import (
    VerifiedPasswords,
    check_slowly,
    check_token,
    generate_token,
    hash_secret,
    hash_token,
    is_fast_check,
    is_token,
    is_token_hash,
)
from tests.gateway.devices.test_limits import FakeClock


def test_tokens_are_256_random_bits_with_a_prefix() -> None:
    token = generate_token()
    assert token.startswith("gwd_")
    assert len(token) == 47
    assert is_token(token)
    assert generate_token() != token
    assert not is_token("gwd_short")
    assert not is_token("s3cret")
    assert not is_token(token + "x")


def test_tokens_are_stored_as_sha256_and_passwords_with_django() -> None:
    token = generate_token()
    assert hash_secret(token) == hash_token(token)
    assert is_token_hash(hash_secret(token))
    assert token not in hash_secret(token)
    assert not is_token_hash(hash_secret("s3cret"))
    assert check_slowly("s3cret", hash_secret("s3cret"))


@given(st.text(max_size=60))
def test_a_token_check_matches_only_its_own_token(secret: str) -> None:
    token = generate_token()
    assert check_token(token, hash_token(token))
    assert not check_token(secret, hash_token(token)) or secret == token
    assert not check_token(secret, None)  # no such device: never


@pytest.mark.parametrize(
    ("secret", "stored", "fast"),
    [
        ("token", "token hash", True),
        ("token", None, True),  # an unknown user costs what a known token device costs
        ("token", "django hash", False),
        ("password", "token hash", False),  # a password costs a hash, whoever is asked
        ("password", None, False),
        ("password", "django hash", False),
    ],
)
def test_the_cost_depends_on_what_was_presented(secret: str, stored: str, fast: bool) -> None:
    token = generate_token()
    secrets = {"token": token, "password": "s3cret"}
    encodings = {"token hash": hash_token(token), "django hash": make_password("x"), None: None}
    assert is_fast_check(secrets[secret], encodings[stored]) is fast


def test_slow_checks_refuse_unknown_users_and_token_hashes() -> None:
    assert not check_slowly("s3cret", None)
    assert not check_slowly("s3cret", hash_token(generate_token()))


def test_a_verified_password_is_remembered_for_its_stored_hash_only() -> None:
    clock = FakeClock()
    verified = VerifiedPasswords(300.0, max_entries=2, clock=clock)
    stored = hash_secret("s3cret")
    assert not verified.accepts("pw", stored, "s3cret")  # nothing verified yet
    verified.verified("pw", stored, "s3cret")
    assert verified.accepts("pw", stored, "s3cret")
    assert not verified.accepts("pw", stored, "s3cret ")  # another secret
    assert not verified.accepts("other", stored, "s3cret")  # another device
    assert not verified.accepts("pw", hash_secret("s3cret"), "s3cret")  # its secret was set again
    assert not verified.accepts("pw", None, "s3cret")  # the device is gone or inactive
    clock.now += 299.0
    assert verified.accepts("pw", stored, "s3cret")
    clock.now += 1.0
    assert not verified.accepts("pw", stored, "s3cret")  # expired: the hasher again
    for name in ("a", "b", "c"):
        verified.verified(name, stored, "s3cret")
    assert not verified.accepts("a", stored, "s3cret")  # bounded: the oldest forgotten
    assert verified.accepts("b", stored, "s3cret")
    assert verified.accepts("c", stored, "s3cret")
    never = VerifiedPasswords(0.0)
    never.verified("pw", stored, "s3cret")
    assert not never.accepts("pw", stored, "s3cret")
