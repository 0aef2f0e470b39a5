"""The etcd client against a real etcd: its gRPC calls, their guards and their errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from fixtures.etcd import EtcdServer
from state.errors import Conflict, Gone, NotFound, Unavailable
from state.etcd import Compare, EtcdClient, Get, Put, absent, mod_revision_is, prefix_end

PREFIX = b"/test/client/"


@pytest.fixture
async def clean(etcd: EtcdClient) -> AsyncIterator[EtcdClient]:
    yield etcd
    await etcd.delete(PREFIX, prefix_end(PREFIX))


async def test_guards_pick_the_branch_and_gets_answer_in_it(clean: EtcdClient) -> None:
    key = PREFIX + b"a"
    created = await clean.txn([absent(key)], [Put(key, b"1")], [Get(key)])
    assert created.succeeded and created.responses == [None]
    again = await clean.txn([absent(key)], [Put(key, b"2")], [Get(key)])
    assert not again.succeeded
    (kv,) = again.responses[0] or []
    assert (kv.value, kv.mod_revision, kv.version) == (b"1", created.revision, 1)
    stale = await clean.txn([mod_revision_is(key, created.revision - 1)], [Put(key, b"3")])
    assert not stale.succeeded
    same = await clean.txn([Compare(key, "VALUE", "EQUAL", b"1")], [Put(key, b"4")])
    assert same.succeeded
    assert (await clean.get(key)).value == b"4"  # type: ignore[union-attr]


async def test_a_range_larger_than_grpcs_default_message_limit_is_read(clean: EtcdClient) -> None:
    """gRPC receives at most 4 MiB by default; a full list of a kind can be larger."""
    blob = b"x" * (100 * 1024)
    for txn in range(5):  # etcd takes at most 1.5 MiB per request
        await clean.txn([], [Put(PREFIX + f"{txn}/{i:02d}".encode(), blob) for i in range(12)])
    res = await clean.range(PREFIX, prefix_end(PREFIX))
    assert len(res.kvs) == 60 and all(kv.value == blob for kv in res.kvs)
    assert (await clean.range(PREFIX, prefix_end(PREFIX), count_only=True)).count == 60


async def test_a_read_at_a_compacted_revision_is_gone(fresh_etcd: EtcdServer) -> None:
    client = fresh_etcd.client()
    try:
        first = await client.put(PREFIX + b"k", b"1")
        latest = await client.put(PREFIX + b"k", b"2")
        await client.compact(latest)
        with pytest.raises(Gone, match="compacted"):
            await client.range(PREFIX + b"k", revision=first)
    finally:
        await client.close()


async def test_too_many_operations_in_one_txn_is_a_conflict(clean: EtcdClient) -> None:
    with pytest.raises(Conflict, match="too many operations"):
        await clean.txn([], [Put(PREFIX + str(i).encode(), b"") for i in range(200)])
    assert (await clean.range(PREFIX, prefix_end(PREFIX), count_only=True)).count == 0


async def test_a_revoked_lease_is_not_found_and_revoking_again_is_fine(etcd: EtcdClient) -> None:
    lease = await etcd.lease_grant(30)
    assert 0 < await etcd.lease_keepalive(lease) <= 30
    await etcd.lease_revoke(lease)
    with pytest.raises(NotFound, match="expired"):
        await etcd.lease_keepalive(lease)
    await etcd.lease_revoke(lease)


def test_one_client_serves_one_event_loop_after_another(etcd_server: EtcdServer) -> None:
    """A gRPC channel belongs to the event loop it was made on: a client used from a
    second loop makes itself a new one."""
    client = etcd_server.client()
    assert asyncio.run(client.put(PREFIX + b"loop", b"1")) > 0
    assert asyncio.run(client.get(PREFIX + b"loop")).value == b"1"  # type: ignore[union-attr]
    asyncio.run(client.delete(PREFIX + b"loop"))
    asyncio.run(client.close())


async def test_calls_fail_while_etcd_is_away_and_work_a_moment_after_it_returns(
    fresh_etcd: EtcdServer,
) -> None:
    client = fresh_etcd.client(timeout=1)
    try:
        await client.put(PREFIX + b"k", b"1")
        fresh_etcd.kill()
        away = time.monotonic()
        # 25 s: gRPC's own backoff would have grown to about 10 s between attempts
        while time.monotonic() - away < 25:
            with pytest.raises(Unavailable, match="retry later"):
                await client.get(PREFIX + b"k")
            await asyncio.sleep(0.5)
        fresh_etcd.start()
        back = time.monotonic()
        while True:
            try:
                assert (await client.get(PREFIX + b"k")).value == b"1"  # type: ignore[union-attr]
                break
            except Unavailable:
                assert time.monotonic() - back < 2, "not reconnected 2 s after etcd returned"
                await asyncio.sleep(0.1)
    finally:
        await client.close()
