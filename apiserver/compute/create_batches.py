"""Server creates of one project committed together (group commit).

Every create changes its project's usage key, so creates of one project
racing through separate transactions fail each other's compare and retry;
with 50 clients most of them ran out of tries. Here the creates of a project
that arrive while its previous batch is being written wait for the next
batch, and each batch is one transaction (``quota.create_charged``): its
objects and the usage they charge.

Owns: the per-project queues, batches of at most ``BATCH`` creates, and
answering each create with its own result: the stored object, or its
QuotaExceeded, AlreadyExists or Conflict.

Must never: let one create's taken name fail the others (a batch whose
transaction found a name taken is retried one create at a time).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from state import quota
from state.envelope import Obj
from state.errors import AlreadyExists, Conflict, DesiredError
from state.store import Store

#: creates in one transaction (etcd allows 128 operations in a transaction by default)
BATCH = 100
#: tries of a batch whose usage another change moved meanwhile
RETRIES = 10


@dataclass
class _Create:
    obj: Obj
    size: dict[str, int]
    done: asyncio.Future[Obj] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class CreateBatches:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: dict[str, list[_Create]] = {}
        #: the task writing each project's batches, while there are any
        self._writing: dict[str, asyncio.Task[None]] = {}

    async def create(self, project: str, obj: Obj, size: dict[str, int]) -> Obj:
        """Creates ``obj`` in ``project``, charging ``size``; raises what the create met."""
        item = _Create(obj, size)
        self._waiting.setdefault(project, []).append(item)
        if project not in self._writing:
            self._writing[project] = asyncio.create_task(self._drain(project))
        return await item.done

    async def _drain(self, project: str) -> None:
        try:
            while self._waiting.get(project):
                batch = self._waiting[project][:BATCH]
                del self._waiting[project][:BATCH]
                try:
                    results: list[Obj | Exception] = list(await self._commit(project, batch))
                except Exception as exc:  # etcd away, or a bug: every create of it answers so
                    results = [exc] * len(batch)
                for item, result in zip(batch, results, strict=True):
                    if isinstance(result, Exception):
                        item.done.set_exception(result)
                    else:
                        item.done.set_result(result)
        finally:
            del self._writing[project]
            if not self._waiting.get(project):
                self._waiting.pop(project, None)

    async def _commit(self, project: str, batch: list[_Create]) -> list[Obj | DesiredError]:
        items = [(c.obj, c.size) for c in batch]
        for _ in range(RETRIES):
            try:
                return list(await quota.create_charged(self.store, project, items))
            except Conflict:
                continue  # a delete, resize or another API server moved the usage
            except AlreadyExists as exc:
                if len(batch) == 1:
                    return [exc]
                return [r for c in batch for r in await self._commit(project, [c])]
        return [Conflict("Too many concurrent changes of this project's usage; retry")] * len(batch)
