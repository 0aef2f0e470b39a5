"""One etcd watch over every object key per client, shared by that client's object watches.

Owns: a single stream of etcd's spec and status keys for one ``EtcdClient``,
started by its first subscriber and stopped with its last; handing each
subscriber, in revision order, every change of its kind made after it
subscribed, and etcd's progress notices; resuming from the last revision after
the stream breaks; telling every subscriber to re-list when the revisions it
needed were compacted meanwhile.

Must never: drop or reorder a change for a subscriber, or make one wait for
another (each has its own queue; subscribers are in-process caches that drain
them at once).

Why: etcd sends every change once per watch and the JSON gateway encodes it
once per watch. A process whose ten informers each watched the object range
had etcd encode, and itself decode, every change ten times.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass

from state import keys
from state.errors import Gone, Transient
from state.etcd import EtcdClient, KeyValue, WatchBatch, prefix_end

log = logging.getLogger(__name__)

#: every spec and status key: the two prefixes sit next to each other
RANGE_START = f"{keys.ROOT}/spec/".encode()
RANGE_END = prefix_end(f"{keys.ROOT}/status/".encode())

Ident = tuple[str, str | None, str]


@dataclass(frozen=True, slots=True)
class KeyChange:
    """One change of a spec or status key, its key already parsed."""

    part: str  # "spec" or "status"
    ident: Ident  # (kind, project, name)
    kv: KeyValue
    deleted: bool


@dataclass(frozen=True, slots=True)
class FeedBatch:
    """What a subscriber receives: changes up to ``revision``, a progress notice (no
    changes, ``progress``), or word that it must re-list (``relist``)."""

    revision: int
    changes: list[KeyChange]
    progress: bool = False
    relist: bool = False


def key_changes(batch: WatchBatch) -> list[KeyChange]:
    """The object key changes of a watch batch (keys that are not an object's are left out)."""
    out = []
    for ev in batch.events:
        try:
            part, kind, project, name = keys.parse_object_key(ev.kv.key)
        except ValueError:
            continue
        out.append(KeyChange(part, (kind, project, name), ev.kv, ev.deleted))
    return out


class Subscription:
    """A subscriber's place in the feed; ``close`` it when done."""

    def __init__(self, feed: ObjectFeed, kind: str | None) -> None:
        self.kind = kind
        self._feed = feed
        self._queue: asyncio.Queue[FeedBatch | BaseException] = asyncio.Queue()

    def put(self, item: FeedBatch | BaseException) -> None:
        self._queue.put_nowait(item)

    async def next(self) -> FeedBatch:
        """The next batch; raises what stopped the feed, if it stopped."""
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._feed.unsubscribe(self)


_FEEDS: weakref.WeakKeyDictionary[EtcdClient, ObjectFeed] = weakref.WeakKeyDictionary()


class ObjectFeed:
    def __init__(
        self, etcd: EtcdClient, *, retry_delay: float = 0.2, max_retry_delay: float = 5.0
    ) -> None:
        self.etcd = etcd
        #: every change up to this revision has been handed out
        self.revision = 0
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()

    @classmethod
    def of(
        cls, etcd: EtcdClient, *, retry_delay: float = 0.2, max_retry_delay: float = 5.0
    ) -> ObjectFeed:
        """The feed of this client: one per client, made (with these delays between
        attempts to resume) on first use."""
        feed = _FEEDS.get(etcd)
        if feed is None:
            feed = _FEEDS[etcd] = cls(
                etcd, retry_delay=retry_delay, max_retry_delay=max_retry_delay
            )
        return feed

    async def subscribe(self, kind: str | None = None) -> Subscription:
        """A subscription to every change after this call of ``kind`` (all kinds if None).

        Changes made before it may arrive too: a subscriber lists after subscribing and
        skips what its list already holds."""
        async with self._starting:
            if self._task is None or self._task.done():
                self.revision = await self.etcd.revision(keys.root())
                self._task = asyncio.create_task(self._run(), name="object-feed")
            sub = Subscription(self, kind)
            self._subscribers.add(sub)
            return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        delay = self._retry_delay
        compacted = False
        try:
            while True:
                try:
                    if compacted:
                        self.revision = await self.etcd.revision(keys.root())
                        for sub in list(self._subscribers):
                            sub.put(FeedBatch(self.revision, [], relist=True))
                        compacted = False
                    async for batch in self.etcd.watch(RANGE_START, RANGE_END, self.revision + 1):
                        delay = self._retry_delay
                        self._hand_out(batch)
                except Gone:
                    log.info(
                        "object feed compacted, subscribers re-list",
                        extra={"revision": self.revision},
                    )
                    compacted = True
                except Transient as exc:
                    log.warning(
                        "object feed broke, resuming: %s", exc, extra={"revision": self.revision}
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._max_retry_delay)
        except Exception as exc:  # not to be retried: every subscriber hears of it
            for sub in list(self._subscribers):
                sub.put(exc)
            raise

    def _hand_out(self, batch: WatchBatch) -> None:
        if not batch.events:
            if batch.revision <= self.revision:
                return
            self.revision = batch.revision
            for sub in list(self._subscribers):
                sub.put(FeedBatch(self.revision, [], progress=True))
            return
        changes = key_changes(batch)
        self.revision = max(self.revision, batch.revision)
        by_kind: dict[str | None, list[KeyChange]] = {None: changes}
        for sub in list(self._subscribers):
            mine = by_kind.get(sub.kind)
            if mine is None:
                mine = by_kind[sub.kind] = [c for c in changes if c.ident[0] == sub.kind]
            if mine:
                sub.put(FeedBatch(self.revision, mine))
