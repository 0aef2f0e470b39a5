"""Leader election on an etcd lease.

Owns: campaigning for ``keys.leader(name)`` (a put guarded by "absent",
bound to this replica's lease), keeping the lease alive every TTL/3, and
noticing loss at once: a failed keepalive, or etcd unreachable for longer
than the lease could still be valid, ends leadership. A clean stop revokes
the lease so a standby takes over at once.

Must never: report leadership it cannot prove: a replica stops acting no
later than its lease could have expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from state import keys
from state.errors import DesiredError, NotFound
from state.etcd import EtcdClient, Put, absent

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self,
        etcd: EtcdClient,
        name: str,
        identity: str,
        *,
        ttl: int = 10,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self.etcd = etcd
        self.name = name
        self.identity = identity
        self.ttl = ttl
        self.key = keys.leader(name)
        self.on_change = on_change
        self.leading = False
        self._lease = 0

    async def _campaign(self) -> None:
        """Returns once this replica holds the leader key."""
        poll = max(self.ttl / 10, 0.05)
        while True:
            try:
                lease = await self.etcd.lease_grant(self.ttl)
                res = await self.etcd.txn(
                    [absent(self.key)], [Put(self.key, self.identity.encode(), lease=lease)]
                )
                if res.succeeded:
                    self._lease = lease
                    return
                await self.etcd.lease_revoke(lease)
            except DesiredError as exc:
                log.info("campaign failed, retrying: %s", exc, extra={"election": self.name})
            await asyncio.sleep(poll)

    async def _hold(self) -> None:
        """Keeps the lease alive; returns when leadership is lost."""
        valid_until = time.monotonic() + self.ttl
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                ttl = await asyncio.wait_for(
                    self.etcd.lease_keepalive(self._lease),
                    max(valid_until - time.monotonic(), 0.01),
                )
                valid_until = time.monotonic() + ttl
            except NotFound:
                return
            except (DesiredError, TimeoutError) as exc:
                if time.monotonic() >= valid_until:
                    log.warning("lease may have expired: %s", exc, extra={"election": self.name})
                    return

    def _set(self, leading: bool) -> None:
        self.leading = leading
        self.on_change(leading)

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Runs ``lead`` while leader, cancels it on loss, campaigns again; until cancelled."""
        try:
            while True:
                await self._campaign()
                log.info("became leader", extra={"election": self.name, "identity": self.identity})
                self._set(True)
                leading = asyncio.create_task(lead())
                holding = asyncio.create_task(self._hold())
                try:
                    done, _ = await asyncio.wait(
                        {leading, holding}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    self._set(False)
                    for t in (leading, holding):
                        t.cancel()
                    await asyncio.gather(leading, holding, return_exceptions=True)
                if leading in done and not leading.cancelled() and leading.exception():
                    raise leading.exception()  # type: ignore[misc]
                log.warning("lost leadership", extra={"election": self.name})
        finally:
            await self.resign()

    async def resign(self) -> None:
        """Gives up leadership at once (revokes the lease)."""
        lease, self._lease = self._lease, 0
        if lease:
            with contextlib.suppress(DesiredError):
                await asyncio.shield(self.etcd.lease_revoke(lease))
