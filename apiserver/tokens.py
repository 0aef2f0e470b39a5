"""Identity tokens: what a token says, signed so that any API server can check it alone.

Owns: the ``Token`` record (user, project, roles, expiry, audit id, the
application credential it stands for), what
checks one (``TokenChecker``), and its
text form ``<payload>.<signature>`` (URL-safe base64 of compact JSON and of
its HMAC-SHA256 under the cloud's token key).

Must never: accept a token whose signature or expiry does not hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass
from typing import Protocol


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenChecker(Protocol):
    """Whatever says what a token stands for: the identity service here, or an external
    Keystone."""

    async def check(self, text: str) -> Token | None: ...


@dataclass(frozen=True)
class Token:
    user_id: str
    user: str
    #: the project it is scoped to, or "" (unscoped, or scoped to the whole cloud)
    project_id: str
    project: str
    roles: tuple[str, ...]
    issued: float
    expires: float
    audit_id: str
    #: scoped to the whole cloud (Keystone's system scope)
    system: bool = False
    #: the application credential it was issued for ("": a password or token login); it
    #: dies with the credential
    application_credential: str = ""
    #: issued for a restricted application credential: it may not make another
    restricted: bool = False
    #: how it was obtained, as Keystone's ``methods`` (empty: ``password``, or
    #: ``application_credential`` for one of those); a token made from a token adds
    #: ``token``
    methods: tuple[str, ...] = ()
    #: the only calls it may make, as (service type, method, path pattern): its application
    #: credential's access rules (``state.access_rules``); none: any call
    access_rules: tuple[tuple[str, str, str], ...] = ()

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires


def encode(token: Token, key: bytes) -> str:
    payload = json.dumps(asdict(token), separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(payload)}.{_b64(hmac.new(key, payload, hashlib.sha256).digest())}"


def decode(text: str, key: bytes) -> Token | None:
    """The token ``text`` stands for, or None if it is malformed, forged or expired."""
    try:
        payload_text, signature = text.split(".")
        payload = _unb64(payload_text)
        if not hmac.compare_digest(
            _unb64(signature), hmac.new(key, payload, hashlib.sha256).digest()
        ):
            return None
        data = json.loads(payload)
        token = Token(
            **{
                **data,
                "roles": tuple(data["roles"]),
                "methods": tuple(data.get("methods", ())),
                "access_rules": tuple(
                    (str(s), str(m), str(p)) for s, m, p in data.get("access_rules", ())
                ),
            }
        )
    except (ValueError, TypeError, KeyError):
        return None
    return None if token.expired else token
