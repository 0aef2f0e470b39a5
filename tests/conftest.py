"""Fixtures every test layer shares: a real etcd, clients on it, ``eventually``."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from aiohttp import web
from hypothesis import HealthCheck, settings

from fixtures.etcd import EtcdServer
from fixtures.postgres import PostgresServer
from state.etcd import EtcdClient
from state.store import Store

T = TypeVar("T")

# 2 cores shared with etcd and PostgreSQL: time limits would make failures random.
settings.register_profile("desired", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("desired")


def proc_stat(pid: int, tid: int | None = None) -> list[str]:
    """A process's (or one of its threads') fields of /proc stat after its name: [0] is
    proc(5)'s field 3 (state), [1] field 4 (parent's PID), [16] field 19 (nice)."""
    text = Path(f"/proc/{pid}/task/{tid or pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def secured_etcd(top: Path) -> EtcdServer:
    """An etcd as desired runs its own: TLS to its CA alone, authentication on (tests
    reach it as its root: ``client()``, ``env()``)."""
    return EtcdServer(top / "etcd", pki=top / "pki", auth=True)


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd for the session; tests isolate themselves by clearing keys."""
    with secured_etcd(tmp_path_factory.mktemp("etcd")) as server:
        yield server


@pytest.fixture
def fresh_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd of this test's own, for tests that kill, restart or compact it."""
    with secured_etcd(tmp_path) as server:
        yield server


@pytest.fixture
async def etcd(etcd_server: EtcdServer) -> AsyncIterator[EtcdClient]:
    client = etcd_server.client()
    await client.delete(b"\0", b"\0")  # every key: each test starts empty
    yield client
    await client.close()


@pytest.fixture
async def store(etcd: EtcdClient) -> Store:
    return Store(etcd)


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02
) -> T:
    """Awaits ``probe`` until it returns a truthy value or stops raising AssertionError.

    Raises the last AssertionError (or a new one) at the deadline.
    """
    deadline = time.monotonic() + timeout
    last: AssertionError | None = None
    while time.monotonic() < deadline:
        try:
            result = await probe()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(interval)
    if last is not None:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend: SQLite in a temp dir, a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'desired.sqlite'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"t{uuid.uuid4().hex[:12]}"
    server.create_database(name)
    yield server.url.rsplit("/", 1)[0] + "/" + name


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on a free loopback port: its base URL, until the block ends."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
