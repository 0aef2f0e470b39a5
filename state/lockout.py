"""Keystone's account lockout: a user whose password checks keep failing is refused a while.

Owns: each user's failed-login record in etcd (``keys.login_failures``: the
count and the time of the last failure, shared by every API server), and
what it means: a user with ``attempts`` failures in a row, the last less than
``duration`` seconds ago, is locked; a failure more than ``duration`` after
the previous one starts the count again; a successful login clears it.
A failure is written after the login is answered (``failed_soon``): a wrong
password for an existing user then takes no longer than for an unknown one
(an etcd write waits for a disk sync); the next login of that user at this
API server waits until it has landed (``read``).

Must never: record users that do not exist (their names would fill etcd);
decide whether a password is right (``state.passwords``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from state import keys
from state.errors import DesiredError
from state.etcd import EtcdClient, KeyValue, Put, absent, mod_revision_is

#: compare-and-put rounds one failure is given against concurrent ones
_TRIES = 5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockoutPolicy:
    #: failed password logins in a row that lock a user; 0: never locked
    attempts: int = 5
    #: seconds a user stays locked after the last failure that counted
    duration: float = 300.0


@dataclass(frozen=True)
class Failures:
    """A user's record as read: how many failures, when the last was, its etcd revision."""

    count: int = 0
    last: float = 0.0
    revision: int = 0


class Lockouts:
    def __init__(
        self,
        etcd: EtcdClient,
        policy: LockoutPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.etcd = etcd
        self.policy = policy
        self.clock = clock
        #: per user uid: the failures this process is still writing
        self._writes: dict[str, set[asyncio.Task[None]]] = {}

    @property
    def enabled(self) -> bool:
        return self.policy.attempts > 0

    async def read(self, uid: str) -> Failures:
        """The user's record (an empty one with lockout off), once this process's failures
        of the user still being written have landed."""
        if not self.enabled:
            return Failures()
        await self._landed(uid)
        return _parse(await self.etcd.get(keys.login_failures(uid)))

    async def _landed(self, uid: str) -> bool:
        """Waits for this process's writes of the user's failures; whether there were."""
        pending = list(self._writes.get(uid, ()))
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return bool(pending)

    def locked(self, record: Failures) -> bool:
        return (
            self.enabled
            and record.count >= self.policy.attempts
            and self.clock() < record.last + self.policy.duration
        )

    def failed_soon(self, uid: str, record: Failures) -> None:
        """Counts one more failure at once here, and in etcd in the background."""
        if not self.enabled:
            return
        task = asyncio.create_task(self._write_failure(uid, record))
        self._writes.setdefault(uid, set()).add(task)

        def done(_: asyncio.Task[None]) -> None:
            tasks = self._writes.get(uid, set())
            tasks.discard(task)
            if not tasks:
                self._writes.pop(uid, None)

        task.add_done_callback(done)

    async def _write_failure(self, uid: str, record: Failures) -> None:
        try:
            await self.failed(uid, record)
        except DesiredError as exc:  # the login is answered: nobody else to tell
            log.warning("a failed login was not recorded", extra={"uid": uid, "error": str(exc)})

    async def settle(self) -> None:
        """Waits for the failures still being written."""
        tasks = [t for ts in self._writes.values() for t in ts]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def failed(self, uid: str, record: Failures) -> None:
        """Counts one more failure (from ``record``, re-read while another API server's
        failure lands between)."""
        if not self.enabled:
            return
        key = keys.login_failures(uid)
        for _ in range(_TRIES):
            now = self.clock()
            recent = record.revision and now < record.last + self.policy.duration
            value = json.dumps({"count": record.count + 1 if recent else 1, "last": now})
            compare = mod_revision_is(key, record.revision) if record.revision else absent(key)
            if (await self.etcd.txn([compare], [Put(key, value.encode())])).succeeded:
                return
            record = _parse(await self.etcd.get(key))

    async def succeeded(self, uid: str, record: Failures) -> None:
        """Clears the user's failures, once this process's last ones have landed (no write
        when there were none)."""
        if await self._landed(uid) or record.revision:
            await self.etcd.delete(keys.login_failures(uid))


def _parse(kv: KeyValue | None) -> Failures:
    if kv is None:
        return Failures()
    try:
        data = json.loads(kv.value)
        return Failures(int(data["count"]), float(data["last"]), kv.mod_revision)
    except (ValueError, KeyError, TypeError):
        return Failures(0, 0.0, kv.mod_revision)
