"""Salted password hashes, as User objects keep them.

Owns: the ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` format (salt and hash
in URL-safe base64 without padding), hashing a password with a fresh salt,
and checking one in constant time.

Must never: keep or log a password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 120_000
_PREFIX = "pbkdf2_sha256"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes = b"") -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{_PREFIX}${iterations}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        prefix, iterations, salt, digest = stored.split("$")
        if prefix != _PREFIX:
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(got, _unb64(digest))
