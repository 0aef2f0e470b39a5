"""Salted password hashes, as User objects keep them.

Owns: the ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` format (salt and hash
in URL-safe base64 without padding), hashing a password with a fresh salt,
checking one in constant time, and ``PasswordChecks``: the threads checks run
in for an event loop (a check costs tens of milliseconds of CPU), bounded in
number and in waiting callers, and the same work for a user that does not
exist or has no usable hash (a dummy hash of ``ITERATIONS``), so that a
check's time does not say whether the user exists.

Must never: keep or log a password; check one on an event loop's thread.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

from state.errors import Transient

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


@functools.cache
def _dummy() -> str:
    """A hash no password is checked against in earnest: the work a real check costs."""
    return hash_password(secrets.token_urlsafe(16))


def _usable(stored: str) -> bool:
    parts = stored.split("$")
    return len(parts) == 4 and parts[0] == _PREFIX and parts[1].isdigit()


def verify(password: str, stored: str | None) -> bool:
    """Whether ``password`` is the one ``stored`` hashes; with no usable hash (no user, or
    none set), a check against a dummy hash all the same, and False."""
    if stored and _usable(stored):
        return check_password(password, stored)
    check_password(password, _dummy())
    return False


class Busy(Transient):
    """More password checks are waiting than ``PasswordChecks`` lets wait."""


#: how much lower than the event loop's the checking threads' CPU priority is (nice)
_NICER = 10


def _nicer() -> None:
    """Lowers this thread's CPU priority (Linux: a thread's own nice value), so that the
    event loop's thread gets a CPU first; nothing where that cannot be done."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICER)
    except (AttributeError, OSError):
        pass


class PasswordChecks:
    """Password checks for one event loop: in ``workers`` threads of their own (never the
    loop's default executor, which SQL reads use) at a lower CPU priority, with at most
    ``queue`` more callers waiting; past that ``Busy`` (503) at once, so that a flood of
    logins costs at most ``workers`` CPUs and no unbounded queue."""

    def __init__(self, workers: int = 1, queue: int = 32) -> None:
        self.workers = max(1, workers)
        self.queue = max(0, queue)
        self._pool = ThreadPoolExecutor(
            self.workers, thread_name_prefix="password-check", initializer=_nicer
        )
        #: checks running or waiting
        self.pending = 0
        #: checks done (a test's way to see that an unknown user's login hashed too)
        self.done = 0
        _dummy()  # made now rather than in the first unknown user's login

    async def verify(self, password: str, stored: str | None) -> bool:
        """``verify`` in a checking thread (``Busy`` when too many wait already)."""
        if self.pending >= self.workers + self.queue:
            raise Busy("too many password checks are waiting; retry later")
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, verify, password, stored)
        finally:
            self.pending -= 1
            self.done += 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
