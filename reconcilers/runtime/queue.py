"""The work queue of the reconciler runtime.

Owns: which key a worker handles next. Guarantees: a key waits in the queue
at most once (adding it again while queued changes nothing); a key is never
handed to two workers at once (added while being processed, it is queued
again when that worker calls ``done``); per-key exponential backoff with
jitter and a cap, reset by ``forget``; delayed adds on the loop's timers.

Must never: lose a key that was added after its last ``get``, or run
anything itself.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down; workers should return."""


class WorkQueue(Generic[K]):
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 30.0) -> None:
        self._queue: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._shut = False
        self.base_delay = base_delay
        self.max_delay = max_delay

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shut

    def add(self, key: K) -> None:
        if self._shut:
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._processing:
            self._dirty.add(key)
            return
        if key in self._queued:
            return
        self._queued.add(key)
        self._queue.append(key)
        self._wake()

    def add_after(self, key: K, delay: float) -> None:
        """Adds ``key`` after ``delay`` seconds; an earlier pending add wins."""
        if self._shut:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        when = loop.time() + delay
        if existing is not None:
            if existing.when() <= when:
                return
            existing.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def backoff(self, key: K) -> float:
        """The delay the next ``add_rate_limited`` of ``key`` would use (without jitter)."""
        return min(self.base_delay * (2 ** self._failures.get(key, 0)), self.max_delay)

    def add_rate_limited(self, key: K) -> float:
        """Adds ``key`` after its backoff, which doubles each time until ``forget``."""
        delay = self.backoff(key)
        self._failures[key] = self._failures.get(key, 0) + 1
        delay *= random.uniform(0.8, 1.2)
        self.add_after(key, min(delay, self.max_delay))
        return delay

    def discard(self, key: K) -> None:
        """Drops every pending add of ``key`` (queued, delayed, or asked while it is being
        processed); a later ``add`` is taken as usual."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._dirty.discard(key)
        if key in self._queued:
            self._queued.discard(key)
            self._queue.remove(key)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> K:
        """The next key; the caller must call ``done(key)`` when it has handled it."""
        while not self._queue:
            if self._shut:
                raise ShutDown()
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        key = self._queue.popleft()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def _wake(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def shutdown(self) -> None:
        """Stops handing out keys; pending timers are dropped and waiters raise ShutDown."""
        self._shut = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._queue.clear()
        self._queued.clear()
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
