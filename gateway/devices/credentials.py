"""Device secrets: generated tokens checked in a microsecond, chosen passwords slowly.

A device logs in with a secret, and checking it must not be a denial-of-service
lever (DESIGN.md §8): Django's password hasher (PBKDF2, about 0.3 s of CPU) is
right for a secret a person chose, and ruinous when a fleet of a thousand devices
reconnects at once. So there are two kinds of secret:

- a **token** made by :func:`generate_token`: ``gwd_`` and 43 base64url characters
  (256 random bits). It is stored as ``token_sha256$<hex SHA-256 of the token>``.
  Nobody can guess 2**256 values, so key stretching and salt, which exist to slow
  down guessing low-entropy passwords, buy nothing; the hash keeps a copy of the
  database from holding usable secrets. No server key is mixed in, so rotating
  ``SECRET_KEY`` never locks devices out. The prefix tells the check (and secret
  scanners) what a string is.
- any other secret, stored with Django's password hashers (``make_password``),
  exactly as before: existing hashes keep working.

Both checks compare in constant time. :func:`is_fast_check` says which check a
login costs from what was *presented* (and the stored kind), never from whether
the device exists: an unknown username costs the same as a known one.
:class:`VerifiedPasswords` remembers, for a few minutes, that a password was
checked right, so a device reconnecting with it skips the hasher; a wrong one
still costs the hasher. Pure; no database, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict

from django.contrib.auth.hashers import check_password, make_password

from gateway.devices.limits import Clock, remember_newest

TOKEN_PREFIX = "gwd_"
TOKEN_HASH_PREFIX = "token_sha256$"
_TOKEN = re.compile(r"gwd_[A-Za-z0-9_-]{43}")


def generate_token() -> str:
    """A new device token: ``gwd_`` and 256 random bits, base64url (47 characters)."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return TOKEN_PREFIX + raw


def is_token(secret: str) -> bool:
    """Whether ``secret`` has the shape of a :func:`generate_token` token."""
    return _TOKEN.fullmatch(secret) is not None


def is_token_hash(encoded: str) -> bool:
    return encoded.startswith(TOKEN_HASH_PREFIX)


def hash_token(token: str) -> str:
    return TOKEN_HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


#: Compared against when the username is unknown, so that costs the same.
_UNKNOWN_TOKEN_HASH = hash_token(generate_token())


def hash_secret(secret: str) -> str:
    """What to store for ``secret``: a token hash for tokens, a Django hash otherwise."""
    return hash_token(secret) if is_token(secret) else make_password(secret)


def is_fast_check(secret: str, encoded: str | None) -> bool:
    """Whether checking ``secret`` against ``encoded`` (None: no such device) is fast."""
    return is_token(secret) and (encoded is None or is_token_hash(encoded))


def check_token(secret: str, encoded: str | None) -> bool:
    """The fast check: one SHA-256, constant-time compare (False when ``encoded`` is None)."""
    expected = _UNKNOWN_TOKEN_HASH if encoded is None else encoded
    matches = hmac.compare_digest(hash_token(secret).encode(), expected.encode())
    return matches and encoded is not None


def check_slowly(secret: str, encoded: str | None) -> bool:
    """The slow check: one run of Django's hasher whatever ``encoded`` is (or is not).

    A token hash or no device at all still costs a hash (Django's own
    ``authenticate`` does the same for unknown users), so a refusal takes as long as
    a wrong password for a real device.
    """
    if encoded is None or is_token_hash(encoded):
        make_password(secret)
        return False
    return check_password(secret, encoded)


class VerifiedPasswords:
    """Passwords the slow check accepted lately: a reconnect with one skips the hasher.

    An entry is keyed by the username *and the stored hash* the password was
    checked against, so any change of the device's secret (a new password, a token,
    a rehash) is a different key and the entry is never used again; an inactive or
    deleted device is never looked up this far. It holds a keyed digest of the
    password (HMAC-SHA256 under a random key of this process), not the password,
    for ``ttl`` seconds, at most ``max_entries`` entries (least recently verified
    forgotten first).

    :meth:`accepts` costs the same whatever is remembered: one HMAC and a
    constant-time comparison (against a dummy digest when there is no entry). Only
    the right password is answered faster; anything else goes on to the hasher, so
    the timing of a refusal says nothing about whether the device exists or logged
    in lately.
    """

    def __init__(
        self,
        ttl: float = 300.0,
        *,
        max_entries: int = 10_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._dummy = self.digest(generate_token())
        self._entries: OrderedDict[tuple[str, str | None], tuple[bytes, float]] = OrderedDict()

    def digest(self, secret: str) -> bytes:
        return hmac.digest(self._key, secret.encode(), "sha256")

    def accepts(self, username: str, encoded: str | None, secret: str) -> bool:
        """Whether ``secret`` is the password lately verified against ``encoded``."""
        key = (username, encoded)
        entry = self._entries.get(key)
        if entry is not None and self.clock() - entry[1] >= self.ttl:
            del self._entries[key]
            entry = None
        expected = self._dummy if entry is None else entry[0]
        return hmac.compare_digest(self.digest(secret), expected) and entry is not None

    def verified(self, username: str, encoded: str, secret: str) -> None:
        """The slow check accepted ``secret`` for ``username`` against ``encoded``."""
        if self.ttl > 0:
            entry = (self.digest(secret), self.clock())
            remember_newest(self._entries, (username, encoded), entry, self.max_entries)
