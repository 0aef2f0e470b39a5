"""``desired up``'s supervision of its parts: a part that dies is started again, with backoff.

Owns: the ``Part`` protocol (wait until it dies, start it again, stop it) and
its three kinds in ``up``: a child process (the conductor's ``desired
reconcilers``), etcd as a child (``fixtures.etcd.EtcdServer``, restarted on
the same data dir and ports) and an in-process task (the other reconcilers,
hostd); and ``supervise``, which restarts a part that died after 1 s, each
further wait twice the last up to 30 s (back to 1 s once it ran a minute),
saying on stderr what died, how, and when it restarts, in one line, and again
once it runs.

Must never: restart a part after ``up`` was asked to stop (cancelling
``supervise`` stops its part), stop a process it did not start, or end
``up`` because a part died.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from fixtures.etcd import EtcdServer

#: the first and the longest wait before a part that died is started again
FIRST_DELAY = 1.0
LONGEST_DELAY = 30.0
#: a part that ran this long before it died is started again after FIRST_DELAY
HEALTHY_AFTER = 60.0
#: how often etcd's process is looked at
_ETCD_POLL = 0.2


def say(line: str) -> None:
    print(f"desired up: {line}", file=sys.stderr, flush=True)


class Part(Protocol):
    #: what the part is, for the lines on stderr ("the conductor's process")
    what: str

    async def wait(self) -> str:
        """Returns (or raises) when the part is not running: how it ended."""
        ...

    async def restart(self) -> str:
        """Starts the part again: what it is now ("pid 123")."""
        ...

    async def stop(self) -> None: ...


async def supervise(part: Part) -> None:
    """Keeps ``part`` running until cancelled, then stops it."""
    delay = FIRST_DELAY
    try:
        while True:
            started = time.monotonic()
            try:
                how = await part.wait()
            except Exception as exc:
                how = f"failed: {type(exc).__name__}: {exc}"
            if time.monotonic() - started >= HEALTHY_AFTER:
                delay = FIRST_DELAY
            say(f"{part.what} {how}; restarting it in {delay:g} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, LONGEST_DELAY)
            try:
                say(f"{part.what} restarted ({await part.restart()})")
            except Exception as exc:  # wait() returns at once: the next try comes later
                say(f"{part.what} did not start: {type(exc).__name__}: {exc}")
    finally:
        await asyncio.shield(part.stop())


class ChildProcess:
    """A child process ``start`` makes; stopped with SIGTERM, then SIGKILL after 20 s."""

    def __init__(
        self,
        what: str,
        start: Callable[[], Awaitable[asyncio.subprocess.Process]],
        child: asyncio.subprocess.Process,
    ) -> None:
        self.what = what
        self._start = start
        self.child: asyncio.subprocess.Process | None = child

    async def wait(self) -> str:
        if self.child is None:
            return "is not running"
        code = await self.child.wait()
        return f"(pid {self.child.pid}) exited with status {code}"

    async def restart(self) -> str:
        self.child = None
        self.child = await self._start()
        return f"pid {self.child.pid}"

    async def stop(self) -> None:
        child = self.child
        if child is None or child.returncode is not None:
            return
        child.terminate()
        try:
            await asyncio.wait_for(child.wait(), 20)
        except TimeoutError:
            child.kill()
            await child.wait()


class EtcdChild:
    """``up``'s etcd: started again on the same data dir and ports."""

    what = "etcd"

    def __init__(self, server: EtcdServer) -> None:
        self.server = server

    async def wait(self) -> str:
        proc = self.server.process
        if proc is None:
            return "is not running"
        # a Popen has no awaitable exit; polling keeps no thread blocked in wait()
        while proc.poll() is None:  # noqa: ASYNC110
            await asyncio.sleep(_ETCD_POLL)
        return f"(pid {proc.pid}) exited with status {proc.returncode}"

    async def restart(self) -> str:
        await self.server.restart()
        return f"pid {self.server.pid}, {self.server.url}"

    async def stop(self) -> None:
        pass  # up stops etcd last, whatever else failed


class InProcess:
    """A part of ``up``'s own process: a task made anew by ``run`` at each start."""

    def __init__(self, what: str, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.what = what
        self._run = run
        self.task: asyncio.Task[None] = asyncio.create_task(run())

    async def wait(self) -> str:
        await self.task  # raises what ended it
        return "returned"

    async def restart(self) -> str:
        self.task = asyncio.create_task(self._run())
        return "in this process"

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
