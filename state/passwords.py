"""Salted password hashes, as User objects keep them.

Owns: the ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` format (salt and hash
in URL-safe base64 without padding), hashing a password with a fresh salt,
checking one in constant time, and ``PasswordChecks``: the threads checks (and
the hashing of new passwords) run in for an event loop (a check costs tens of milliseconds of CPU), bounded in
number and in waiting callers, and the same answer time for a user that does
not exist or has no usable hash, so that a check's time does not say whether
the user exists. That answer waits as long as recent real checks took,
without taking a CPU or a checking thread: a flood of made-up names (which no
lockout stops) can neither burn the CPUs nor crowd out real users' checks.

Must never: keep or log a password; check one on an event loop's thread.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import os
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from state.errors import Transient

ITERATIONS = 120_000
_PREFIX = "pbkdf2_sha256"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _utf8(password: str) -> bytes:
    # a lone surrogate (a JSON escape) cannot be in a stored password: it matches none
    return password.encode("utf-8", "surrogatepass")


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes = b"") -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", _utf8(password), salt, iterations)
    return f"{_PREFIX}${iterations}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        prefix, iterations, salt, digest = stored.split("$")
        if prefix != _PREFIX:
            return False
        got = hashlib.pbkdf2_hmac("sha256", _utf8(password), _unb64(salt), int(iterations))
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


#: how much a real check's time moves the estimate ``PasswordChecks`` answers unknown users in
_WEIGHT = 0.2
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
    logins costs at most ``workers`` CPUs and no unbounded queue. A login without a usable
    hash (no such user) waits as long as real checks took lately instead, on a bound of
    its own."""

    def __init__(self, workers: int = 1, queue: int = 32) -> None:
        self.workers = max(1, workers)
        self.queue = max(0, queue)
        self._pool = ThreadPoolExecutor(
            self.workers, thread_name_prefix="password-check", initializer=_nicer
        )
        #: real checks running or waiting
        self.pending = 0
        #: logins without a usable hash waiting out their time
        self.pretending = 0
        #: real checks done
        self.done = 0
        start = time.perf_counter()
        _dummy()  # the work of one check: its time is the first estimate of a check's
        #: seconds a real check took lately, from asking to answer (a moving average)
        self.took = time.perf_counter() - start

    async def verify(self, password: str, stored: str | None) -> bool:
        """Whether ``password`` is the one ``stored`` hashes, checked in a checking thread;
        without a usable hash, False after about as long. ``Busy`` when too many wait."""
        if not (stored and _usable(stored)):
            return await self._pretend()
        if self.pending >= self.workers + self.queue:
            raise Busy("too many password checks are waiting; retry later")
        self.pending += 1
        start = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, check_password, password, stored)
        finally:
            self.pending -= 1
            self.done += 1
            self.took += (time.perf_counter() - start - self.took) * _WEIGHT

    async def hash(self, password: str) -> str:
        """``password``'s salted hash, made in a checking thread (it costs as much as a
        check); ``Busy`` when too many wait."""
        if self.pending >= self.workers + self.queue:
            raise Busy("too many password checks are waiting; retry later")
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, hash_password, password)
        finally:
            self.pending -= 1

    async def _pretend(self) -> bool:
        """False, after about as long as a real check takes now."""
        if self.pretending >= self.workers + self.queue:
            raise Busy("too many password checks are waiting; retry later")
        self.pretending += 1
        try:
            await asyncio.sleep(self.took * random.uniform(0.9, 1.1))
        finally:
            self.pretending -= 1
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
