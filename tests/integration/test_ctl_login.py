"""desiredctl as a project's member, logged in from clouds.yaml, and `desired
rotate-admin-token`: real executables, a real API server process, a real etcd."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from cli.up_files import write_client_files
from fixtures.apiserver import ApiServerProcess
from fixtures.etcd import EtcdServer
from state.envelope import Ref
from state.store import Store
from tests.conftest import eventually
from tests.integration.test_ctl import Result
from tests.integration.test_identity import make_user

BIN = Path(sys.executable).parent
TOKEN = "ctl-login-bootstrap-token"


@pytest.fixture(scope="module")
def api_url(etcd_server: EtcdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ApiServerProcess(
        etcd_server.url, tmp_path_factory.mktemp("api"), TOKEN, etcd_server.env()
    ) as api:
        yield api.url


def clouds_yaml(path: Path, api_url: str) -> Path:
    """Clouds demo, viewer, other (their users in their projects, as `desired up` writes
    them) and wrong (demo with a wrong password)."""

    def cloud(user: str, project: str, password: str) -> dict[str, object]:
        return {
            "auth_type": "password",
            "auth": {
                "auth_url": f"{api_url}/identity",
                "username": user,
                "password": password,
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "identity_api_version": 3,
        }

    clouds = {
        "demo": cloud("demo", "demo", "demo-secret"),
        "viewer": cloud("viewer", "demo", "viewer-secret"),
        "other": cloud("other", "other", "other-secret"),
        "wrong": cloud("demo", "demo", "not-the-password"),
    }
    path.write_text(yaml.safe_dump({"clouds": clouds}))
    return path


@pytest.fixture
async def clouds(store: Store, api_url: str, tmp_path: Path) -> Path:
    """clouds.yaml for users demo (member of demo), viewer (reader of demo) and other
    (member of other), made in a freshly emptied etcd."""
    for name in ("demo", "other"):
        await store.create({"kind": "Project", "metadata": {"name": name}, "spec": {}})
    await make_user(store, "demo", [{"role": "member", "project": "demo"}])
    await make_user(store, "viewer", [{"role": "reader", "project": "demo"}])
    await make_user(store, "other", [{"role": "member", "project": "other"}])
    return clouds_yaml(tmp_path / "clouds.yaml", api_url)


def _env(**more: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DESIRED_", "OS_"))  # nothing of the caller's clouds or tokens
    }
    env.update(HOME="/nonexistent", **more)
    return env


async def run(*args: str, env: dict[str, str], stdin: str | None = None) -> Result:
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate(stdin.encode() if stdin else None)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def keypairs(project: str | None, *names: str) -> str:
    meta = f", project: {project}" if project else ""
    return "".join(
        f"---\nkind: KeyPair\nmetadata: {{name: {n}{meta}}}\n"
        f'spec: {{publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1 {n}@x"}}\n'
        for n in names
    )


FLAVOR = "kind: Flavor\nmetadata: {name: m1.mine}\nspec: {vcpus: 1, ramMiB: 64, diskGiB: 1}\n"


async def test_a_member_works_on_its_project_through_clouds_yaml(
    clouds: Path, store: Store
) -> None:
    env = _env(OS_CLIENT_CONFIG_FILE=str(clouds))
    ctl = str(BIN / "desiredctl")
    # the cloud's project is the default -p
    r = await run(
        ctl, "--os-cloud", "demo", "apply", "-f", "-", env=env, stdin=keypairs(None, "k1")
    )
    assert (r.code, r.out, r.err) == (0, "keypair/k1 created\n", "")
    r = await run(ctl, "--os-cloud", "demo", "get", "keypairs", "-o", "name", env=env)
    assert (r.code, r.out) == (0, "keypair/k1\n"), r.err
    # OS_CLOUD does what --os-cloud does
    r = await run(ctl, "get", "keypair", "k1", "-o", "name", env={**env, "OS_CLOUD": "demo"})
    assert (r.code, r.out) == (0, "keypair/k1\n"), r.err

    # another project's objects: 403, one line, nothing written
    other = await run(
        ctl, "--os-cloud", "other", "apply", "-f", "-", env=env, stdin=keypairs(None, "theirs")
    )
    assert other.code == 0, other.err
    r = await run(ctl, "--os-cloud", "demo", "get", "keypairs", "-p", "other", env=env)
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("desiredctl: user 'demo' (token scoped to project 'demo'"), r.err
    assert "may not read keypairs in project 'other'" in r.err and r.err.count("\n") == 1
    r = await run(
        ctl, "--os-cloud", "demo", "apply", "-f", "-", env=env, stdin=keypairs("other", "k2")
    )
    assert r.code == 1 and "may not write keypairs in project 'other'" in r.err, r.err
    assert "nothing applied: the server refused 1 of 1 objects" in r.err
    assert await store.get_or_none(Ref("KeyPair", "other", "k2")) is None
    r = await run(ctl, "--os-cloud", "demo", "delete", "keypair", "theirs", "-p", "other", env=env)
    assert r.code == 1 and "may not write keypairs in project 'other'" in r.err
    assert await store.get_or_none(Ref("KeyPair", "other", "theirs")) is not None
    r = await run(ctl, "--os-cloud", "demo", "get", "keypairs", "-A", env=env)
    assert r.code == 1 and "keypairs of every project" in r.err

    # flavors: read, not written
    await store.create(yaml.safe_load(FLAVOR))
    r = await run(ctl, "--os-cloud", "demo", "get", "flavors", "-o", "name", env=env)
    assert (r.code, r.out) == (0, "flavor/m1.mine\n"), r.err
    r = await run(
        ctl,
        "--os-cloud",
        "demo",
        "apply",
        "-f",
        "-",
        env=env,
        stdin=FLAVOR.replace("m1.mine", "m1.more"),
    )
    assert r.code == 1 and "may not write cluster-scoped flavors" in r.err, r.err
    assert await store.get_or_none(Ref("Flavor", None, "m1.more")) is None


async def test_a_reader_reads_and_cannot_write(clouds: Path, store: Store) -> None:
    env = _env(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="viewer")
    ctl = str(BIN / "desiredctl")
    await store.create(yaml.safe_load(keypairs("demo", "k1")))
    r = await run(ctl, "get", "keypairs", "-o", "name", env=env)
    assert (r.code, r.out) == (0, "keypair/k1\n"), r.err
    r = await run(ctl, "apply", "-f", "-", env=env, stdin=keypairs(None, "k2"))
    assert r.code == 1 and "may not write keypairs in project 'demo'" in r.err, r.err
    r = await run(ctl, "delete", "keypair", "k1", env=env)
    assert r.code == 1 and await store.get_or_none(Ref("KeyPair", "demo", "k1")) is not None


async def test_a_members_watch_shows_its_project_and_is_refused_elsewhere(
    clouds: Path, store: Store
) -> None:
    env = _env(OS_CLIENT_CONFIG_FILE=str(clouds))
    ctl = str(BIN / "desiredctl")
    r = await run(ctl, "--os-cloud", "demo", "watch", "keypairs", "-p", "other", env=env)
    assert r.code == 1 and "may not read keypairs in project 'other'" in r.err, r.err
    watcher = await asyncio.create_subprocess_exec(
        ctl, "--os-cloud", "demo", "watch", "keypairs", stdout=subprocess.PIPE, env=env
    )
    try:
        assert watcher.stdout is not None
        await asyncio.sleep(1.0)  # logged in and watching
        await store.create(yaml.safe_load(keypairs("other", "theirs")))
        await store.create(yaml.safe_load(keypairs("demo", "mine")))
        line = await asyncio.wait_for(watcher.stdout.readline(), 10)
        assert line.decode() == "ADDED keypair/mine\n"
    finally:
        watcher.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(watcher.wait(), 10) == 0
    assert watcher.stdout is not None
    assert await watcher.stdout.read() == b""  # never "theirs"


async def test_bad_credentials_are_one_line_and_a_failure(clouds: Path) -> None:
    env = _env(OS_CLIENT_CONFIG_FILE=str(clouds))
    ctl = str(BIN / "desiredctl")
    r = await run(ctl, "--os-cloud", "wrong", "get", "keypairs", env=env)
    assert r.code == 1 and r.out == ""
    assert r.err.startswith("desiredctl: cloud 'wrong' (") and r.err.count("\n") == 1, r.err
    assert "login refused" in r.err and "401" in r.err and "not-the-password" not in r.err
    r = await run(ctl, "--os-cloud", "nope", "get", "keypairs", env=env)
    assert r.code == 2 and r.err.startswith(f"desiredctl: {clouds} has no cloud 'nope'"), r.err


async def _status(url: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{url}/apis/v1/flavors", headers={"Authorization": f"Bearer {token}"}) as resp,
    ):
        return resp.status


async def test_rotate_admin_token(etcd_server: EtcdServer, store: Store, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with ApiServerProcess(
        etcd_server.url, tmp_path / "api", "first-token", etcd_server.env()
    ) as api:
        write_client_files(data_dir, api.url, "first-token", {})
        assert await _status(api.url, "first-token") == 200
        env = _env(**etcd_server.env(), DESIRED_DATA_DIR=str(data_dir))
        r = await run(str(BIN / "desired"), "rotate-admin-token", env=env)
        assert r.code == 0, r.err
        assert f"a new admin token is in {data_dir / 'admin-token'}" in r.out
        new = (data_dir / "admin-token").read_text().strip()
        assert new and new != "first-token" and new not in r.out + r.err
        assert (data_dir / "admin-token").stat().st_mode & 0o077 == 0
        # the API server took the new one (as its watch sees it) and refuses the old one

        async def old_refused() -> bool:
            return await _status(api.url, "first-token") == 401

        await eventually(old_refused, timeout=2)
        assert await _status(api.url, new) == 200
        # the client files `desired up` wrote hold the new token: desiredctl works with them
        assert yaml.safe_load((data_dir / "desiredctl.yaml").read_text())["token"] == new
        assert f"DESIRED_TOKEN={new}" in (data_dir / "env").read_text()
        r = await run(
            str(BIN / "desiredctl"),
            "--config",
            str(data_dir / "desiredctl.yaml"),
            "get",
            "flavors",
            env=_env(),
        )
        assert r.code == 0, r.err


async def test_rotate_without_etcd_says_so(tmp_path: Path) -> None:
    env = _env(DESIRED_DATA_DIR=str(tmp_path))
    r = await run(str(BIN / "desired"), "rotate-admin-token", env=env)
    assert r.code == 1 and r.err.startswith("desired: no etcd to rotate the token in"), r.err
    assert not (tmp_path / "admin-token").exists()
