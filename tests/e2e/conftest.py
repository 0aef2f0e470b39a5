"""Fixtures of the end-to-end tests: a ``desired up`` on one simulated host, without the demo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.up_process import Up


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "desired"


@pytest.fixture
def up(data_dir: Path) -> Iterator[Up]:
    """``desired up --simulate 1 --no-demo``, stopped by its PID at the end (modules that
    need another ``up`` define their own)."""
    u = Up(data_dir, "--simulate", "1", "--no-demo")
    try:
        yield u
    finally:
        if u.proc.poll() is None:
            u.stop()
