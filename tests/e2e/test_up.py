"""End to end: ``desired up`` as a user runs it, driven with ``desiredctl``.

Starts the real ``desired up`` (its own etcd child, SQLite, API server,
reconcilers) in a temporary data dir, applies a multi-document spec file,
reads it back, sees a watch event, prunes, stops it with SIGTERM, starts it
again and finds the state intact.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from state.sql.projection import Projection
from tests.conftest import proc_stat
from tests.e2e.up_process import BIN, Up, ctl, ctl_env

SPEC = """
apiVersion: desired/v1
kind: Flavor
metadata: {name: m1.tiny, labels: {stack: demo}}
spec: {vcpus: 1, ramMiB: 512, diskGiB: 1}
---
apiVersion: desired/v1
kind: Flavor
metadata: {name: m1.small, labels: {stack: demo}}
spec: {vcpus: 2, ramMiB: 2048, diskGiB: 20}
---
apiVersion: desired/v1
kind: KeyPair
metadata: {name: mykey, project: demo, labels: {stack: demo}}
spec: {publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh5 demo@desired"}
"""


def test_up_apply_watch_prune_restart(up: Up, data_dir: Path, tmp_path: Path) -> None:
    assert (data_dir / "env").stat().st_mode & 0o077 == 0
    spec = tmp_path / "stack.yaml"
    spec.write_text(SPEC)
    res = ctl(up, "apply", "-f", str(spec))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        "flavor/m1.tiny created",
        "flavor/m1.small created",
        "keypair/mykey created",
    ]
    res = ctl(up, "get", "flavors", "-o", "json")
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)
    items = listed["items"] if isinstance(listed, dict) else listed
    assert sorted(o["metadata"]["name"] for o in items) == ["m1.small", "m1.tiny"]

    watcher = subprocess.Popen(
        [str(BIN / "desiredctl"), "watch", "flavors"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(ctl_env(up)),
    )
    try:
        assert watcher.stdout is not None
        seen = [watcher.stdout.readline().strip() for _ in range(2)]
        assert sorted(seen) == ["ADDED flavor/m1.small", "ADDED flavor/m1.tiny"]
        # drop m1.small from the file and prune what the label selects
        spec.write_text(SPEC.replace("m1.small", "m1.medium"))
        res = ctl(up, "apply", "-f", str(spec), "--prune", "-l", "stack=demo")
        assert res.returncode == 0, res.stderr
        assert "flavor/m1.medium created" in res.stdout
        assert "flavor/m1.small pruned" in res.stdout
        events = {watcher.stdout.readline().strip() for _ in range(2)}
        assert events == {"ADDED flavor/m1.medium", "DELETED flavor/m1.small"}
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(10)

    assert up.stop() == 0
    again = Up(data_dir, "--simulate", "1", "--no-demo")
    try:
        res = ctl(again, "get", "flavors", "-o", "name")
        assert res.returncode == 0, res.stderr
        assert sorted(res.stdout.split()) == ["flavor/m1.medium", "flavor/m1.tiny"]
        res = ctl(again, "apply", "-f", str(spec))
        assert all(line.endswith("unchanged") for line in res.stdout.splitlines()), res.stdout
    finally:
        assert again.stop() == 0


def test_desiredctl_finds_up_without_environment(up: Up, data_dir: Path) -> None:
    res = ctl(up, "get", "flavors", env_file=False)
    assert res.returncode == 0, res.stderr


def test_up_elects_its_reconcilers_and_serves_their_metrics(up: Up) -> None:
    """To admins alone: the bootstrap token, as the banner says."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(up.url + "/metrics", timeout=5)
    assert refused.value.code == 401
    assert any("/metrics (admin role" in line for line in up.output), up.output
    token = (up.data_dir / "admin-token").read_text().strip()
    scrape = urllib.request.Request(
        up.url + "/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + 20
    while True:
        text = urllib.request.urlopen(scrape, timeout=5).read().decode()
        if 'desired_leader{election="reconcilers-scheduler-gitsync-network"} 1.0' in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    assert "desired_reconcile_seconds" in text


def test_up_runs_the_conductor_in_a_child_process_at_its_priority(up: Up) -> None:
    pid = up.conductor_pid()
    deadline = time.monotonic() + 30
    while True:  # the child sets its priority once it has read its config
        fields = proc_stat(pid)
        assert int(fields[1]) == up.proc.pid  # its parent is up
        if int(fields[16]) == -10:  # reconcilers.conductor_nice
            break
        assert time.monotonic() < deadline, f"nice {fields[16]}"
        time.sleep(0.1)
    up.stop()
    assert not Path(f"/proc/{pid}").exists()  # stopped with up


def test_up_runs_an_instance_on_its_simulated_host(up: Up, tmp_path: Path) -> None:
    spec = tmp_path / "vm.yaml"
    spec.write_text(
        """
kind: Flavor
metadata: {name: m1.tiny}
spec: {vcpus: 1, ramMiB: 128, diskGiB: 1}
---
kind: Image
metadata: {name: tiny}
spec: {visibility: public}
---
kind: Instance
metadata: {name: vm1, project: demo}
spec: {flavor: m1.tiny, image: tiny}
"""
    )
    res = ctl(up, "apply", "-f", str(spec))
    assert res.returncode == 0, res.stderr
    res = ctl(
        up, "wait", "instance", "vm1", "-p", "demo", "--for=condition=Ready", "--timeout", "30s"
    )
    assert res.returncode == 0, res.stderr
    listed = ctl(up, "get", "instances", "-p", "demo").stdout.splitlines()
    assert listed[0].split() == ["NAME", "READY", "AGE", "STATUS", "HOST"]
    assert listed[1].split()[3] == "ACTIVE" and listed[1].split()[4].endswith("-sim-0")
    vm = json.loads(ctl(up, "get", "instance", "vm1", "-p", "demo", "-o", "json").stdout)
    assert vm["status"]["domainState"] == "running"
    assert vm["status"]["host"].endswith("-sim-0")
    # the conductor projected it into the SQLite database of the data dir
    view = Projection(f"sqlite:///{up.data_dir / 'desired.sqlite'}")
    deadline = time.monotonic() + 10
    while True:
        rows = {r.uid: r for r in view.rows("Instance", "demo")}
        row = rows.get(vm["metadata"]["uid"])
        if row is not None and row.status.get("domainState") == "running":
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    view.close()
    res = ctl(up, "delete", "instance", "vm1", "-p", "demo", "--wait", "--timeout", "30s")
    assert (res.returncode, res.stdout) == (0, "instance/vm1 deleted\n"), res.stderr


def test_up_makes_users_whose_clouds_yaml_logs_in(up: Up) -> None:
    clouds = yaml.safe_load((up.data_dir / "clouds.yaml").read_text())["clouds"]
    assert set(clouds) == {"desired-admin", "desired-demo"}
    for name, project in (("desired-demo", "demo"), ("desired-admin", "admin")):
        auth = clouds[name]["auth"]
        sess = ks_session.Session(auth=v3.Password(**auth))
        access = sess.auth.get_access(sess)
        assert access.project_name == project
        assert sess.get_endpoint(service_type="compute", interface="public") == (
            f"{up.url}/compute/v2.1"
        )
    assert (up.data_dir / "passwords.yaml").stat().st_mode & 0o777 == 0o600


def _children(pid: int) -> dict[int, str]:
    """The live processes whose parent is ``pid``, with their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = proc_stat(int(entry.name))
                cmdline = (entry / "cmdline").read_text().replace("\0", " ")
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                found[int(entry.name)] = cmdline
    return found


def _gone(pid: int) -> bool:
    try:
        return proc_stat(pid)[0] == "Z"
    except OSError:
        return True


def test_an_up_killed_with_sigkill_leaves_neither_etcd_nor_its_conductor(up: Up) -> None:
    children = _children(up.proc.pid)
    assert any("etcd" in c for c in children.values()), children
    assert any("reconcilers" in c for c in children.values()), children
    up.proc.kill()
    up.proc.wait()
    deadline = time.monotonic() + 20
    while not all(_gone(pid) for pid in children):
        assert time.monotonic() < deadline, {p: c for p, c in children.items() if not _gone(p)}
        time.sleep(0.1)


def test_up_keeps_its_secrets_to_its_owner(up: Up, data_dir: Path) -> None:
    """etcd's data (the token key among it), SQLite (password hashes) and the credential
    files are readable by their owner alone."""
    private = [
        data_dir / "etcd",
        data_dir / "desired.sqlite",
        data_dir / "env",
        data_dir / "clouds.yaml",
        data_dir / "desiredctl.yaml",
    ]
    for path in private:
        assert path.exists(), path
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
