"""The manager: informers and controllers of one process, optionally leader-elected.

Owns: starting every informer (always: a standby keeps its cache warm) and
every controller (only while this replica leads, when an elector is given),
and stopping them in order: controllers drain, then informers stop.

Must never: run a controller while another replica leads, or go on with an
informer that stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from reconcilers.runtime.controller import Controller
from reconcilers.runtime.leader import LeaderElector


class Runnable(Protocol):
    """An informer or any other cache that runs until cancelled."""

    async def run(self) -> None: ...


class Manager:
    def __init__(
        self,
        informers: list[Runnable],
        controllers: list[Controller],
        *,
        elector: LeaderElector | None = None,
        drain_timeout: float = 10.0,
        streams: list[Callable[[], Coroutine[Any, Any, None]]] | None = None,
    ) -> None:
        """``streams``: coroutines (stream projectors) that run, like controllers, only while leading."""
        self.informers = informers
        self.controllers = controllers
        self.streams = streams or []
        self.elector = elector
        self.drain_timeout = drain_timeout

    async def _run_controllers(self) -> None:
        tasks = [asyncio.create_task(c.run()) for c in self.controllers]
        streams = [asyncio.create_task(s()) for s in self.streams]
        try:
            # wait, unlike gather, leaves the controllers running when this is cancelled,
            # so that they can drain below
            done, _ = await asyncio.wait(tasks + streams, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            for t in streams:
                t.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            for c in self.controllers:
                c.stop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(asyncio.gather(*tasks, return_exceptions=True)),
                    self.drain_timeout,
                )
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self) -> None:
        """Runs until cancelled; on cancellation drains controllers, then stops informers.
        An informer that ends (it never does on its own) ends the manager with its error,
        rather than leave controllers reading a cache that no longer follows etcd."""
        informers = [asyncio.create_task(i.run()) for i in self.informers]
        main = asyncio.create_task(
            self._run_controllers()
            if self.elector is None
            else self.elector.run(self._run_controllers)
        )
        try:
            done, _ = await asyncio.wait([main, *informers], return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
            if main not in done:
                raise RuntimeError("an informer stopped")
        finally:
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
            for t in informers:
                t.cancel()
            await asyncio.gather(*informers, return_exceptions=True)
