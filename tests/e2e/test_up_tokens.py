"""End to end: ``desired up``'s declarative API as its demo member sees it (through the
clouds.yaml ``up`` writes) and its bootstrap token rotated while it runs and after a
restart."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.up_process import BIN, Up, ctl, ctl_env

KEYPAIR = """
kind: KeyPair
metadata: {name: mine}
spec: {publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh5 demo@desired"}
"""


def _status(up: Up, token: str) -> int:
    request = urllib.request.Request(
        up.url + "/apis/v1/flavors", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        return int(urllib.request.urlopen(request, timeout=10).status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_demo_member_uses_desiredctl_through_clouds_yaml(up: Up, tmp_path: Path) -> None:
    spec = tmp_path / "key.yaml"
    spec.write_text(KEYPAIR)
    res = ctl(up, "--os-cloud", "desired-demo", "apply", "-f", str(spec))
    assert (res.returncode, res.stdout) == (0, "keypair/mine created\n"), res.stderr
    res = ctl(up, "--os-cloud", "desired-demo", "get", "keypairs", "-o", "name")
    assert (res.returncode, res.stdout) == (0, "keypair/mine\n"), res.stderr
    res = ctl(up, "get", "keypair", "mine", "-p", "demo", "-o", "name")  # the admin token's
    assert (res.returncode, res.stdout) == (0, "keypair/mine\n"), res.stderr
    res = ctl(up, "--os-cloud", "desired-demo", "get", "keypairs", "-p", "admin")
    assert res.returncode == 1
    assert "may not read keypairs in project 'admin'" in res.stderr, res.stderr
    res = ctl(up, "--os-cloud", "desired-demo", "apply", "-f", str(spec), "-p", "admin")
    assert res.returncode == 1 and "may not write keypairs in project 'admin'" in res.stderr


def test_rotation_while_up_runs_and_after_its_restart(up: Up, data_dir: Path) -> None:
    old = (data_dir / "admin-token").read_text().strip()
    assert _status(up, old) == 200
    rotated = subprocess.run(
        [str(BIN / "desired"), "rotate-admin-token", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=ctl_env(up, env_file=False),
        timeout=60,
    )
    assert rotated.returncode == 0, rotated.stderr
    new = (data_dir / "admin-token").read_text().strip()
    assert new != old and _status(up, new) == 200
    deadline = time.monotonic() + 2  # as soon as the API server's watch sees the record
    while _status(up, old) != 401:
        assert time.monotonic() < deadline, "the old token is still taken"
        time.sleep(0.05)
    # the env and desiredctl.yaml `up` wrote now hold the new token
    assert ctl(up, "get", "flavors").returncode == 0
    assert ctl(up, "get", "flavors", env_file=False).returncode == 0

    assert up.stop() == 0
    again = Up(data_dir, "--simulate", "1", "--no-demo")
    try:
        assert _status(again, new) == 200 and _status(again, old) == 401
        res = ctl(again, "get", "flavors")
        assert res.returncode == 0, res.stderr
    finally:
        assert again.stop() == 0
