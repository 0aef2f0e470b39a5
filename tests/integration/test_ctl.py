"""desiredctl as a shell script sees it: real executable, real API server process, real etcd."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.apiserver import ApiServerProcess
from fixtures.etcd import EtcdServer
from state.envelope import Ref, set_condition
from state.store import Store

BIN = Path(sys.executable).parent
TOKEN = "ctl-test-token"


@pytest.fixture(scope="module")
def api_url(etcd_server: EtcdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ApiServerProcess(
        etcd_server.url, tmp_path_factory.mktemp("api"), TOKEN, etcd_server.env()
    ) as api:
        yield api.url


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def ctl(api_url: str, store: Store):  # type: ignore[no-untyped-def]
    """Runs desiredctl without blocking the loop (the store fixture empties etcd first)."""

    async def run(
        *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        base = {k: v for k, v in os.environ.items() if not k.startswith("DESIRED_")}
        base.update(DESIRED_URL=api_url, DESIRED_TOKEN=TOKEN, HOME="/nonexistent")
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "desiredctl"),
            *args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env if env is not None else base,
        )
        out, err = await proc.communicate(stdin.encode() if stdin else None)
        assert proc.returncode is not None
        return Result(proc.returncode, out.decode(), err.decode())

    return run


STACK = """
apiVersion: desired/v1
kind: Flavor
metadata: {name: m1.tiny, labels: {stack: a}}
spec: {vcpus: 1, ramMiB: 512, diskGiB: 1}
---
kind: keypair
metadata: {name: k1, labels: {stack: a}}
spec: {publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 k1@x"}
"""


async def test_apply_created_unchanged_configured(ctl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "stack.yaml"
    f.write_text(STACK)
    r = await ctl("apply", "-f", str(f), "-p", "demo")
    assert (r.code, r.out, r.err) == (0, "flavor/m1.tiny created\nkeypair/k1 created\n", "")
    r = await ctl("apply", "-f", str(f), "-p", "demo")
    assert r.out == "flavor/m1.tiny unchanged\nkeypair/k1 unchanged\n"
    f.write_text(STACK.replace("vcpus: 1", "vcpus: 2"))
    r = await ctl("apply", "-f", str(f), "-p", "demo", "--dry-run")
    assert r.out.splitlines()[0] == "flavor/m1.tiny configured (dry run)"
    r = await ctl("get", "flavor", "m1.tiny", "-o", "json")
    assert json.loads(r.out)["spec"]["vcpus"] == 1  # the dry run changed nothing
    r = await ctl("diff", "-f", str(f), "-p", "demo")
    assert r.code == 1 and "-  vcpus: 1" in r.out and "+  vcpus: 2" in r.out
    r = await ctl("apply", "-f", str(f), "-p", "demo")
    assert r.out.splitlines()[0] == "flavor/m1.tiny configured"
    assert (await ctl("diff", "-f", str(f), "-p", "demo")).code == 0


async def test_apply_directory_and_stdin(ctl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "a.yaml").write_text(STACK.split("---")[0])
    (d / "sub" / "b.yml").write_text(STACK.split("---")[1])
    (d / "notes.txt").write_text("ignored")
    r = await ctl("apply", "-f", str(d), "-p", "demo")
    assert r.out == "flavor/m1.tiny created\nkeypair/k1 created\n"
    r = await ctl("apply", "-f", "-", stdin=STACK.replace("m1.tiny", "m1.other"), env=None)
    assert r.code == 1  # keypair k1 has no project here: nothing is applied
    assert r.out == ""
    assert r.err == (
        "desiredctl: <stdin>: document 2 (line 8): metadata.project: is required: "
        "KeyPair is project-scoped\n"
    )
    assert "m1.other" not in (await ctl("get", "flavors", "-o", "name")).out


async def test_broken_yaml_names_file_and_line_and_applies_nothing(ctl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "broken.yaml"
    f.write_text(STACK + "---\nkind: Flavor\nmetadata: {name: x\nspec: {}\n")
    r = await ctl("apply", "-f", str(f), "-p", "demo")
    assert r.code == 1
    # the unclosed mapping (line 12) is noticed on line 13
    assert r.err.startswith(f"desiredctl: {f}: document 3 (line 13): "), r.err
    assert (await ctl("get", "flavors", "-o", "name")).out == ""


async def test_schema_violation_shows_field_path(ctl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "bad.yaml"
    f.write_text(
        "kind: Flavor\nmetadata: {name: bad}\nspec: {vcpus: many, ramMiB: 1, diskGiB: 1}\n"
    )
    r = await ctl("apply", "-f", str(f))
    assert r.code == 1
    assert r.err.startswith(
        f"desiredctl: {f}: document 1 (line 3): spec.vcpus: expected integer"
    ), r.err


BROKEN_THIRD = (
    STACK
    + """---
apiVersion: v2
kind: Flavor
metadata: {name: m1.third}
spec: {vcpus: 1, ramMiB: 512, diskGiB: 1}
"""
)


async def test_a_wrong_third_document_applies_nothing(ctl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "spec.yaml"
    f.write_text(BROKEN_THIRD)
    for extra in ([], ["--dry-run"]):
        r = await ctl("apply", "-f", str(f), "-p", "demo", *extra)
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            f"desiredctl: {f}: document 3 (line 11): unknown apiVersion 'v2'; "
            "desired serves desired/v1\n"
        )
    assert (await ctl("get", "flavors", "-o", "name")).out == ""
    assert (await ctl("get", "keypairs", "-p", "demo", "-o", "name")).out == ""


async def test_every_problem_of_every_file_is_reported_at_once(ctl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "specs"
    d.mkdir()
    (d / "a.yaml").write_text(STACK)  # fine
    (d / "b.yaml").write_text(
        "kind: Flavor\n"
        "metadata: {name: twice}\n"
        "spec:\n"
        "  vcpus: 1\n"
        "  ramMiB: 512\n"
        "  vcpus: 8\n"
        "  diskGiB: 1\n"
        "---\n"
        "kind: Volume\n"
        "metadata: {name: v}\n"
        "---\n"
        "kind: Flavor\n"
        "metadata: {name: f}\n"
        "spec:\n"
        "  vcpus: 1\n"
        "  ramMiB: lots\n"
        "  diskGiB: 1\n"
    )
    r = await ctl("apply", "-f", str(d), "-p", "demo")
    assert (r.code, r.out) == (1, "")
    b = d / "b.yaml"
    assert r.err.splitlines() == [
        f"desiredctl: {b}: document 1 (line 6): duplicate key 'vcpus' (first given on line 4)",
        f"desiredctl: {b}: document 2 (line 9): unknown kind 'Volume'; known kinds: "
        "Aggregate, Flavor, FloatingIP, GitSource, Host, Image, Instance, KeyPair, "
        "MetadefNamespace, Network, Project, Quota, QuotaClass, Role, SecurityGroup, "
        "ServerGroup, User",
        f'desiredctl: {b}: document 3 (line 16): spec.ramMiB: expected integer, got string "lots"',
    ]
    assert (await ctl("get", "flavors", "-o", "name")).out == ""


async def test_a_refusal_by_the_server_applies_nothing(ctl, store: Store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What only the server can check (a network overlapping one it has) is asked of every
    document first: one refusal and none is written."""
    await store.create(
        {
            "kind": "Network",
            "metadata": {"name": "old", "project": "demo"},
            "spec": {"cidr": "10.9.0.0/24"},
        }
    )
    f = tmp_path / "net.yaml"
    f.write_text(STACK + "---\nkind: Network\nmetadata: {name: new}\nspec: {cidr: 10.9.0.0/25}\n")
    r = await ctl("apply", "-f", str(f), "-p", "demo")
    assert (r.code, r.out) == (1, "")
    lines = r.err.splitlines()
    assert lines[0].startswith(f"desiredctl: {f}: document 3 (line 13): network/new: spec.cidr")
    assert lines[-1] == "desiredctl: nothing applied: the server refused 1 of 3 objects"
    assert (await ctl("get", "flavors", "-o", "name")).out == ""


async def test_unknown_kind_lists_known_ones(ctl) -> None:  # type: ignore[no-untyped-def]
    r = await ctl("get", "volumes")
    assert r.code == 1 and "known kinds:" in r.err and "Flavor" in r.err


async def test_missing_config_is_a_usage_error(ctl) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESIRED_")}
    env["HOME"] = "/nonexistent"
    env["XDG_DATA_HOME"] = "/nonexistent"
    r = await ctl("get", "flavors", env=env)
    assert r.code == 2 and "DESIRED_URL" in r.err


async def test_get_formats_delete_and_prune(ctl, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "stack.yaml"
    f.write_text(STACK)
    await ctl("apply", "-f", str(f), "-p", "demo")
    unlabelled = tmp_path / "other.yaml"
    unlabelled.write_text(
        "kind: Flavor\nmetadata: {name: other}\nspec: {vcpus: 1, ramMiB: 1, diskGiB: 1}\n"
    )
    await ctl("apply", "-f", str(unlabelled))
    assert (await ctl("get", "flavors", "-o", "name")).out == "flavor/m1.tiny\nflavor/other\n"
    table = (await ctl("get", "keypairs", "-p", "demo")).out.splitlines()
    assert table[0].split() == ["NAME", "READY", "AGE"] and table[1].startswith("k1")
    flavors = (await ctl("get", "flavors")).out.splitlines()
    assert flavors[0].split() == ["NAME", "READY", "AGE", "VCPUS", "RAM"]
    assert flavors[2].split()[0] == "other" and flavors[2].split()[-2:] == ["1", "1"]
    assert "project: demo" in (await ctl("get", "keypair", "k1", "-p", "demo", "-o", "yaml")).out
    f.write_text(STACK.split("---")[1])  # the flavor leaves the file
    r = await ctl("apply", "-f", str(f), "-p", "demo", "--prune", "-l", "stack=a")
    assert r.out == "keypair/k1 unchanged\nflavor/m1.tiny pruned\n"
    assert (await ctl("get", "flavors", "-o", "name")).out == "flavor/other\n"
    r = await ctl("delete", "flavor", "other")
    assert (r.code, r.out) == (0, "flavor/other deleted\n")
    r = await ctl("delete", "flavor", "other")
    assert r.code == 1 and "not found" in r.err


async def test_watch_prints_events_and_wait_for_condition(
    ctl, store: Store, api_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "f.yaml"
    f.write_text(STACK.split("---")[0])
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESIRED_")}
    env.update(DESIRED_URL=api_url, DESIRED_TOKEN=TOKEN)
    watcher = await asyncio.create_subprocess_exec(
        str(BIN / "desiredctl"), "watch", "flavors", stdout=subprocess.PIPE, env=env
    )
    try:
        await asyncio.sleep(0.5)
        await ctl("apply", "-f", str(f))
        assert watcher.stdout is not None
        line = await asyncio.wait_for(watcher.stdout.readline(), 10)
        assert line.decode().strip() == "ADDED flavor/m1.tiny"
        r = await ctl("wait", "flavor", "m1.tiny", "--for=condition=Ready", "--timeout", "500ms")
        assert r.code == 1 and "timed out waiting for condition Ready on flavor/m1.tiny" in r.err
        waiter = asyncio.create_task(
            ctl("wait", "flavor", "m1.tiny", "--for=condition=Ready", "--timeout", "10s")
        )
        await asyncio.sleep(0.5)
        await store.patch_status(
            Ref("Flavor", None, "m1.tiny"), lambda s: set_condition(s, "Ready", True, "Tested")
        )
        r = await waiter
        assert (r.code, r.out) == (0, "flavor/m1.tiny condition met: Ready\n"), r.err
        line = await asyncio.wait_for(watcher.stdout.readline(), 10)
        assert line.decode().strip() == "MODIFIED flavor/m1.tiny"
    finally:
        watcher.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(watcher.wait(), 10) == 0


async def test_explain_describes_fields(ctl) -> None:  # type: ignore[no-untyped-def]
    r = await ctl("explain", "instance.powerState")
    assert r.code == 0 and "Instance.spec.powerState" in r.out and "running" in r.out
    r = await ctl("explain", "flavor.nope")
    assert r.code == 1 and "vcpus" in r.err
