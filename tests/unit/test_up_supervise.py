"""desired up's supervision: a part that dies is said on stderr and started again with a
doubling wait; cancelling the supervision stops the part and restarts nothing more."""

from __future__ import annotations

import asyncio

import pytest

from cli import up_supervise
from cli.up_supervise import InProcess, supervise


async def test_a_dying_task_is_restarted_with_backoff(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(up_supervise, "FIRST_DELAY", 0.05)
    starts = 0
    running = asyncio.Event()

    async def run() -> None:
        nonlocal starts
        starts += 1
        if starts < 4:
            raise RuntimeError(f"crash {starts}")
        running.set()
        await asyncio.sleep(3600)

    part = InProcess("the thing", run)
    task = asyncio.create_task(supervise(part))
    await asyncio.wait_for(running.wait(), 5)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "desired up: the thing failed: RuntimeError: crash 1; restarting it in 0.05 s",
        "desired up: the thing restarted (in this process)",
        "desired up: the thing failed: RuntimeError: crash 2; restarting it in 0.1 s",
        "desired up: the thing restarted (in this process)",
        "desired up: the thing failed: RuntimeError: crash 3; restarting it in 0.2 s",
        "desired up: the thing restarted (in this process)",
    ]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert part.task.cancelled()  # stopped with its supervision
    await asyncio.sleep(0.1)
    assert starts == 4 and capsys.readouterr().err == ""
