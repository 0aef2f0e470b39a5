"""Controllers: the one reconcile shape, driven by a work queue.

Owns: the ``Reconciler`` protocol (``async def reconcile(key) -> Requeue |
None``), ``Requeue``, and ``Controller``, which turns informer changes into
keys (never events), runs workers that call ``reconcile``, resyncs every
cached key periodically, and retries: ``Conflict`` at once, any other error
with per-key backoff; ``Requeue(after)`` as asked; ``None`` forgets the key.

Must never: let a worker die, run one key in two workers, or start before
its informers are synced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from reconcilers.runtime.metrics import Metrics
from reconcilers.runtime.queue import ShutDown, WorkQueue
from state.envelope import ref
from state.errors import Conflict

log = logging.getLogger(__name__)

#: conflicts in a row on one key before it is retried with backoff instead of at once
_CONFLICTS_AT_ONCE = 3


@dataclass(frozen=True)
class Requeue:
    """Asks for another look at the key after ``after`` seconds."""

    after: float = 0.0


K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class Reconciler(Protocol[K_contra]):
    name: str

    async def reconcile(self, key: K_contra) -> Requeue | None: ...


class Source(Protocol):
    """What a controller watches: an informer, or hostd's assignments."""

    synced: asyncio.Event

    def add_handler(self, handler: Callable[[str, Any], None]) -> None: ...

    def list(self) -> list[Any]: ...


class Controller(Generic[K]):
    def __init__(
        self,
        reconciler: Reconciler[K],
        informers: list[Source],
        *,
        workers: int = 4,
        resync: float = 300.0,
        key_of: Callable[[Any], K | None] = ref,  # type: ignore[assignment]
        metrics: Metrics | None = None,
        queue: WorkQueue[K] | None = None,
    ) -> None:
        self.reconciler = reconciler
        self.name = reconciler.name
        self.informers = informers
        self.workers = workers
        self.resync = resync
        self.key_of = key_of
        self.metrics = metrics or Metrics()
        self.queue: WorkQueue[K] = queue or WorkQueue()
        self._conflicts: dict[K, int] = {}
        for inf in informers:
            inf.add_handler(self._on_change)

    def _on_change(self, event_type: str, obj: Any) -> None:
        key = self.key_of(obj)
        if key is not None:
            self.queue.add(key)

    async def run(self) -> None:
        """Runs the workers and the resync until ``stop`` (workers drain) or cancellation."""
        for inf in self.informers:
            await inf.synced.wait()
        workers = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        resync = asyncio.create_task(self._resync_loop())
        try:
            await asyncio.gather(*workers)
        finally:
            resync.cancel()
            self.queue.shutdown()
            for w in workers:
                w.cancel()
            await asyncio.gather(resync, *workers, return_exceptions=True)

    def stop(self) -> None:
        """Stops handing out keys; ``run`` returns once the reconciles in hand finish."""
        self.queue.shutdown()

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            for inf in self.informers:
                for obj in inf.list():
                    self._on_change("RESYNC", obj)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            self.metrics.depth.labels(self.name).set(len(self.queue))
            try:
                await self._handle(key)
            except Exception:  # a bug in the runtime itself: keep the worker, retry the key
                log.exception("worker error", extra={"controller": self.name, "object": str(key)})
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    async def _handle(self, key: K) -> None:
        start = time.perf_counter()
        try:
            result = await self.reconciler.reconcile(key)
        except Conflict:
            self.metrics.errors.labels(self.name, "conflict").inc()
            count = self._conflicts.get(key, 0) + 1
            self._conflicts[key] = count
            if count <= _CONFLICTS_AT_ONCE:
                self.queue.add(key)
            else:
                # a conflict that keeps coming back is a bug or a hot spot: say so
                delay = self.queue.add_rate_limited(key)
                log.warning(
                    "reconcile conflicted %d times in a row, retrying in %.3fs",
                    count,
                    delay,
                    extra={"controller": self.name, "object": str(key)},
                )
            return
        except Exception as exc:
            self.metrics.errors.labels(self.name, type(exc).__name__).inc()
            delay = self.queue.add_rate_limited(key)
            log.warning(
                "reconcile failed, retrying in %.3fs: %s",
                delay,
                exc,
                extra={"controller": self.name, "object": str(key)},
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            return
        finally:
            self.metrics.latency.labels(self.name).observe(time.perf_counter() - start)
        self._conflicts.pop(key, None)
        self.queue.forget(key)
        if result is not None:
            self.metrics.requeues.labels(self.name).inc()
            self.queue.add_after(key, result.after)
