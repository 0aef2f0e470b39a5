"""Password logins: checked off the event loop, as dearly for unknown users, with lockout.

API servers on loopback against a real etcd; users' hashes at the full
``ITERATIONS`` where the cost of a check matters. Timing assertions are
loose on purpose (2 cores shared with etcd and other tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from apiserver.app import make_app
from apiserver.identity import IDENTITY
from fixtures.keystone import password_login
from state import keys
from state.config import IdentityConfig
from state.etcd import EtcdClient
from state.passwords import ITERATIONS, hash_password
from state.sql.migrate import upgrade
from state.store import Store
from tests.conftest import eventually, serving


async def _user(store: Store, name: str, iterations: int = ITERATIONS, **spec: Any) -> str:
    """A user with password ``<name>-secret``; its Keystone id."""
    obj = await store.create(
        {
            "kind": "User",
            "metadata": {"name": name},
            "spec": {
                "passwordHash": hash_password(f"{name}-secret", iterations=iterations),
                "roles": [],
                **spec,
            },
        }
    )
    return str(obj["metadata"]["uid"]).replace("-", "")


@contextlib.asynccontextmanager
async def _api(store: Store, tmp_path: Path, cfg: IdentityConfig) -> AsyncIterator[Any]:
    """An API server with this identity config: its base URL and its ``Identity``."""
    sql_url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    await asyncio.to_thread(upgrade, sql_url)
    app = make_app(
        EtcdClient(store.etcd.url, credentials=store.etcd.credentials),
        "t",
        sql_url=sql_url,
        identity_config=cfg,
    )
    async with serving(app) as base:
        yield base, app[IDENTITY]


async def _login(http: aiohttp.ClientSession, base: str, user: str, password: str) -> Any:
    body = password_login(user, password)
    async with http.post(f"{base}/identity/v3/auth/tokens", json=body) as resp:
        return resp.status, await resp.json()


async def test_lockout_after_failures_then_success_after_duration(
    store: Store, tmp_path: Path
) -> None:
    uid = await _user(store, "alice", iterations=1000)
    cfg = IdentityConfig(lockout_failure_attempts=3, lockout_duration=1.5)
    async with _api(store, tmp_path, cfg) as (base, _), aiohttp.ClientSession() as http:
        for _ in range(2):
            code, body = await _login(http, base, "alice", "wrong")
            assert code == 401, body
            assert body["error"]["message"] == "The request you have made requires authentication."
        # a success clears the count: two more failures do not lock
        assert (await _login(http, base, "alice", "alice-secret"))[0] == 201
        for _ in range(2):
            assert (await _login(http, base, "alice", "wrong"))[0] == 401
        assert (await _login(http, base, "alice", "alice-secret"))[0] == 201
        # three in a row do: then even the right password is refused, as Keystone says
        for _ in range(3):
            assert (await _login(http, base, "alice", "wrong"))[0] == 401
        code, body = await _login(http, base, "alice", "alice-secret")
        assert code == 401
        assert body["error"] == {
            "code": 401,
            "message": f"The account is locked for user: {uid}.",
            "title": "Unauthorized",
        }
        # a wrong password while locked: the same answer (no hash, not counted)
        locked_at = time.monotonic()
        code, body = await _login(http, base, "alice", "wrong")
        assert body["error"]["message"] == f"The account is locked for user: {uid}."
        await asyncio.sleep(max(0.0, 1.6 - (time.monotonic() - locked_at)))
        assert (await _login(http, base, "alice", "alice-secret"))[0] == 201


async def test_a_user_that_ignores_lockout_is_never_locked(store: Store, tmp_path: Path) -> None:
    """Keystone's ignore_lockout_failure_attempts: for daemons such as hostd."""
    await _user(store, "daemon", iterations=1000, ignoreLockoutFailureAttempts=True)
    cfg = IdentityConfig(lockout_failure_attempts=2, lockout_duration=60)
    async with _api(store, tmp_path, cfg) as (base, _), aiohttp.ClientSession() as http:
        for _ in range(4):
            code, body = await _login(http, base, "daemon", "wrong")
            assert (code, body["error"]["message"]) == (
                401,
                "The request you have made requires authentication.",
            )
        assert (await _login(http, base, "daemon", "daemon-secret"))[0] == 201


async def test_failures_are_shared_by_api_servers(store: Store, tmp_path: Path) -> None:
    """The count is in etcd: failures at two API servers add up."""
    uid = await _user(store, "bob", iterations=1000)
    cfg = IdentityConfig(lockout_failure_attempts=4, lockout_duration=60)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with (
        _api(store, tmp_path / "a", cfg) as (one, _),
        _api(store, tmp_path / "b", cfg) as (two, _),
        aiohttp.ClientSession() as http,
    ):
        for base in (one, two, one, two):
            assert (await _login(http, base, "bob", "wrong"))[0] == 401

        async def counted() -> bool:  # (written after each answer)
            kv = await store.etcd.get(keys.login_failures(str(uuid.UUID(uid))))
            return kv is not None and json.loads(kv.value)["count"] == 4

        await eventually(counted)
        for base in (one, two):
            code, body = await _login(http, base, "bob", "bob-secret")
            assert (code, body["error"]["message"]) == (
                401,
                f"The account is locked for user: {uid}.",
            )


async def test_unknown_users_answer_as_slowly_as_known_ones(store: Store, tmp_path: Path) -> None:
    await _user(store, "carol")
    cfg = IdentityConfig(lockout_failure_attempts=0)  # every try checks the password
    async with _api(store, tmp_path, cfg) as (base, identity), aiohttp.ClientSession() as http:
        for _ in range(3):  # warm up, and let the estimate of a check's time settle
            await _login(http, base, "carol", "wrong")

        async def timed(user: str, n: int = 6) -> float:
            took = []
            for _ in range(n):
                t0 = time.perf_counter()
                code, _ = await _login(http, base, user, "wrong")
                took.append(time.perf_counter() - t0)
                assert code == 401
            return statistics.median(took)

        before = identity.checks.done
        unknown = await timed("nobody")
        assert identity.checks.done == before  # no hash checked: the time waited out
        known = await timed("carol")
        # the same work: within a factor of 3 either way (a hash is tens of ms; an
        # unknown user without one answered in 2 ms against 38 ms)
        assert known / 3 < unknown < known * 3, (known, unknown)


async def test_a_flood_of_wrong_logins_leaves_the_loop_free(store: Store, tmp_path: Path) -> None:
    """100 wrong logins a second from 20 clients (unknown users: no lockout stops them)
    while another client times the version document."""
    await _user(store, "dave")
    async with (
        _api(store, tmp_path, IdentityConfig()) as (base, _),
        aiohttp.ClientSession() as http,
    ):
        answers: dict[int, int] = {}
        stop = asyncio.Event()

        async def one(i: int) -> None:
            code, _ = await _login(http, base, f"nobody-{i}", "wrong")
            answers[code] = answers.get(code, 0) + 1

        async def client(c: int) -> None:
            tries: list[asyncio.Task[None]] = []
            i = 0
            while not stop.is_set():  # 5 a second each, whether answered or not
                tries.append(asyncio.create_task(one(c * 10_000 + i)))
                i += 1
                await asyncio.sleep(0.2)
            await asyncio.gather(*tries)

        clients = [asyncio.create_task(client(c)) for c in range(20)]
        await asyncio.sleep(1.0)
        took: list[float] = []
        rightful: list[int] = []

        async def dave() -> None:  # the real user logs in meanwhile, twice a second
            while not stop.is_set():
                rightful.append((await _login(http, base, "dave", "dave-secret"))[0])
                await asyncio.sleep(0.5)

        logging_in = asyncio.create_task(dave())
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            async with http.get(f"{base}/compute/v2.1/") as resp:
                assert resp.status == 200
                await resp.read()
            took.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.01)
        stop.set()
        await logging_in
        assert rightful and set(rightful) == {201}, rightful  # never crowded out
        await asyncio.gather(*clients)
        p99 = statistics.quantiles(took, n=100)[98]
        assert p99 < 200, (p99, answers)
        # refused: wrong (401) or, past the queue, busy (503); never anything else
        assert set(answers) <= {401, 503} and answers.get(401, 0) > 0, answers


async def test_busy_checks_are_503_in_keystone_form(store: Store, tmp_path: Path) -> None:
    await _user(store, "erin")
    cfg = IdentityConfig(lockout_failure_attempts=0, password_check_queue=0)
    async with _api(store, tmp_path, cfg) as (base, _), aiohttp.ClientSession() as http:
        results = await asyncio.gather(*(_login(http, base, "erin", "wrong") for _ in range(6)))
        codes = sorted(code for code, _ in results)
        assert 401 in codes and 503 in codes, codes
        busy = next(body for code, body in results if code == 503)
        assert busy["error"]["code"] == 503
        assert busy["error"]["title"] == "Service Unavailable"
