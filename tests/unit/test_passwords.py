"""Password checks: the same work with or without a hash, in threads of lower priority."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from state import passwords
from state.passwords import Busy, PasswordChecks, hash_password, verify


def test_verify_hashes_even_without_a_usable_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    stored = hash_password("secret", iterations=1000)
    assert verify("secret", stored) and not verify("wrong", stored)
    checked: list[str] = []
    real = passwords.check_password

    def counting(password: str, against: str) -> bool:
        checked.append(against)
        return real(password, against)

    monkeypatch.setattr(passwords, "check_password", counting)
    for unusable in (None, "", "plain-text", "md5$1$x$y"):
        assert verify("secret", unusable) is False
    assert checked == [passwords._dummy()] * 4
    assert f"${passwords.ITERATIONS}$" in passwords._dummy()


async def test_checks_run_in_their_threads_at_lower_priority() -> None:
    checks = PasswordChecks(workers=1, queue=0)
    try:
        seen = await asyncio.get_running_loop().run_in_executor(
            checks._pool, lambda: (threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0))
        )
        tid, _ = seen
        assert tid != threading.get_native_id()
        assert os.getpriority(os.PRIO_PROCESS, tid) >= os.getpriority(os.PRIO_PROCESS, 0) + 1
        stored = hash_password("x", iterations=200_000)
        results = await asyncio.gather(
            checks.verify("x", stored), checks.verify("y", stored), return_exceptions=True
        )
        assert results[0] is True and isinstance(results[1], Busy)  # 1 worker, no queue
        assert checks.pending == 0 and checks.done == 1
    finally:
        checks.close()


async def test_an_unknown_user_waits_as_long_as_a_check_without_a_cpu() -> None:
    checks = PasswordChecks(workers=1, queue=4)
    try:
        stored = hash_password("x")
        for _ in range(3):
            assert await checks.verify("x", stored)
        real = checks.took
        assert real > 0.001
        wall, cpu = time.perf_counter(), time.process_time()
        answers = await asyncio.gather(*(checks.verify("x", None) for _ in range(5)))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert answers == [False] * 5 and checks.done == 3  # no check ran
        assert 0.8 * real < wall < 3 * real + 0.05  # waited together, about one check long
        assert cpu < real  # and burnt no CPU doing it
        many = [checks.verify("x", None) for _ in range(8)]
        results = await asyncio.gather(*many, return_exceptions=True)
        assert sum(isinstance(r, Busy) for r in results) == 3  # its own bound: 1 + 4
    finally:
        checks.close()
