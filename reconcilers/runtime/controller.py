"""Controllers: the one reconcile shape, driven by a work queue.

Owns: the ``Reconciler`` protocol (``async def reconcile(key) -> Requeue |
None``), ``Requeue``, and ``Controller``, which turns informer changes into
keys (never events), runs workers that call ``reconcile``, resyncs every
cached key periodically, and retries: ``Conflict`` at once, ``Terminal``
never (it is logged, recorded as an event on its object, and the key waits
until it changes: a resync does not bring it back), any other error with
per-key backoff, recorded on its object as a ``ReconcileFailed`` event from
its ``FAILURES_BEFORE_EVENT``-th failure in a row on (again when its message
changes, else at most every ``FAILURE_EVENT_EVERY`` seconds), so that users
see why their object does not converge; ``Requeue(after)`` as asked; ``None``
forgets the key. Every
failure counts in ``desired_reconcile_errors_total{controller,reason}``
(reason: the error's class). One key's failure is that key's alone: the other
keys go on.

Must never: let a worker die (whatever a reconcile raises, even a
CancelledError that is not the worker's own cancellation), run one key in two
workers, or start before its informers are synced.
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
from state.errors import Conflict, Terminal

log = logging.getLogger(__name__)

#: conflicts in a row on one key before it is retried with backoff instead of at once
_CONFLICTS_AT_ONCE = 3
#: failures in a row on one key before they are recorded on its object (fewer are blips)
FAILURES_BEFORE_EVENT = 3
#: seconds between two events about the same failure of one key
FAILURE_EVENT_EVERY = 60.0


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


class EventRecorder(Protocol):
    """Where a controller records what users should read about an object (``Store``)."""

    async def record_event(self, obj: Any, type_: str, reason: str, message: str) -> None: ...


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
        events: EventRecorder | None = None,
        obj_of: Callable[[K], Any] | None = None,
    ) -> None:
        """``events``: where failures are recorded on their objects (None: only logged);
        ``obj_of``: a key's object for those events, when the informers' entries are not
        objects themselves (hostd's assignments)."""
        self.reconciler = reconciler
        self.events = events
        self.obj_of = obj_of
        self.name = reconciler.name
        self.informers = informers
        self.workers = workers
        self.resync = resync
        self.key_of = key_of
        self.metrics = metrics or Metrics()
        self.queue: WorkQueue[K] = queue or WorkQueue()
        self._conflicts: dict[K, int] = {}
        #: key -> (failures in a row, the last recorded message, when it was recorded)
        self._failures: dict[K, tuple[int, str, float]] = {}
        #: keys whose last reconcile failed terminally: a resync leaves them alone
        self._terminal: set[K] = set()
        #: keys an informer reported changed since their reconcile began
        self._changed: set[K] = set()
        for inf in informers:
            inf.add_handler(self._on_change)

    def _on_change(self, event_type: str, obj: Any) -> None:
        key = self.key_of(obj)
        if key is None:
            return
        if event_type == "RESYNC":
            if key in self._terminal:
                return  # nothing changed: retrying cannot help
        else:
            self._terminal.discard(key)
            self._changed.add(key)
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
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the worker itself is being stopped
                self._worker_error(key)  # a reconcile's own cancellation, not the worker's
            except Exception:  # a bug in the runtime itself: keep the worker, retry the key
                self._worker_error(key)
            finally:
                self.queue.done(key)

    def _worker_error(self, key: K) -> None:
        self.metrics.errors.labels(self.name, "WorkerError").inc()
        log.exception("worker error", extra={"controller": self.name, "object": str(key)})
        self.queue.add_rate_limited(key)

    async def _handle(self, key: K) -> None:
        start = time.perf_counter()
        self._changed.discard(key)
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
        except Terminal as exc:
            self._conflicts.pop(key, None)
            self._failures.pop(key, None)
            self.queue.forget(key)
            self._terminal.add(key)
            if key not in self._changed:
                self.queue.discard(key)  # adds meanwhile were resyncs or requeues: no change
            self.metrics.errors.labels(self.name, type(exc).__name__).inc()
            log.warning(
                "reconcile failed terminally, not retried until the object changes: %s",
                exc,
                extra={"controller": self.name, "object": str(key)},
            )
            await self._record(key, exc)
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
            await self._record_retry(key, exc, delay)
            return
        finally:
            self.metrics.latency.labels(self.name).observe(time.perf_counter() - start)
        self._conflicts.pop(key, None)
        self._failures.pop(key, None)
        self._terminal.discard(key)
        self.queue.forget(key)
        if result is not None:
            self.metrics.requeues.labels(self.name).inc()
            self.queue.add_after(key, result.after)

    async def _record(self, key: K, exc: Terminal) -> None:
        """The terminal failure as a Warning event on its object, when there is one."""
        await self._event(key, exc.obj, exc.reason, exc.message)

    async def _record_retry(self, key: K, exc: Exception, delay: float) -> None:
        """A failure that keeps coming back, as a ``ReconcileFailed`` event on its object:
        from the ``FAILURES_BEFORE_EVENT``-th in a row, then when its message changes or
        ``FAILURE_EVENT_EVERY`` seconds after the last event."""
        message = str(exc) or type(exc).__name__
        count, said, at = self._failures.get(key, (0, "", 0.0))
        count += 1
        clock = time.monotonic()
        due = count >= FAILURES_BEFORE_EVENT and (
            message != said or clock - at >= FAILURE_EVENT_EVERY
        )
        self._failures[key] = (count, message, clock) if due else (count, said, at)
        if due:
            await self._event(
                key,
                getattr(exc, "obj", None),
                "ReconcileFailed",
                f"{self.name}: {message} ({count} failures in a row; retrying in {delay:.0f} s)",
            )

    async def _event(self, key: K, obj: Any, reason: str, message: str) -> None:
        if obj is None and self.obj_of is not None:
            obj = self.obj_of(key)
        for inf in self.informers if obj is None else ():
            found = getattr(inf, "get", lambda _k: None)(key)
            if isinstance(found, dict) and "kind" in found and "metadata" in found:
                obj = found
                break
        if obj is None or self.events is None:
            return
        try:
            await self.events.record_event(obj, "Warning", reason, message)
        except Exception as err:  # the failure is logged above; the event is a courtesy
            log.warning(
                "cannot record an event: %s",
                err,
                extra={"controller": self.name, "object": str(key)},
            )
