"""schemathesis against ``desired up``'s Compute API, from its OpenAPI document: bodies made
from the request schemas (valid ones and ones that break them) and every route, as an
admin and as a member; no answer may be a server error."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_openstack_cli import ok, openstack, up  # noqa: F401 (the fixture)
from tests.e2e.up_process import BIN, Up


@pytest.mark.parametrize("cloud", ["desired-admin", "desired-demo"])
def test_no_server_errors(up: Up, cloud: str, tmp_path: Path) -> None:  # noqa: F811
    token = json.loads(ok(openstack(up, "token", "issue", "-f", "json", cloud=cloud)))["id"]
    # a server to act on, so that fuzzed actions reach their handlers
    ok(
        openstack(
            up, "server", "create", "--flavor", "m1.tiny", "--image", "tiny", "vm1", cloud=cloud
        )
    )
    res = subprocess.run(
        [
            str(BIN / "st"),
            "run",
            f"{up.url}/compute/openapi.json",
            *("--checks", "not_a_server_error"),
            *("-H", f"X-Auth-Token: {token}"),
            *("-H", "OpenStack-API-Version: compute 2.47"),
            *("--max-examples", "8", "--workers", "2", "--seed", "1"),
            *("--phases", "examples,coverage,fuzzing"),
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-6000:] + res.stderr[-2000:]
