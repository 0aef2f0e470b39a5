"""etcd is the root of trust, and ``desired up`` keeps it: TLS to its own CA, a user per part.

A local user who is not the cloud's owner (``nobody``, through ``setpriv``) reaches
neither etcd nor any file of the data directory; a hostd joined through the API with
its host's credential converges its own instances and is refused every other host's
assignments, the identity keys and any spec (etcd's "permission denied").
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cli.up_etcd import pki_dir
from fixtures.keystone import password_login
from hostd.run import host_name
from state import etcd_roles, keys
from state.config import load
from state.errors import DesiredError, Forbidden
from state.etcd import EtcdClient, prefix_end
from state.etcd_tls import Authority, Credentials
from state.private_files import write_private
from tests.e2e.up_process import BIN, Up, ctl

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)

#: what ``nobody`` runs: connect to etcd without a client certificate, and over plain HTTP;
#: open every file below the data directory. Prints what it reached, as JSON.
NOBODY = r"""
import json, os, ssl, sys, urllib.request
etcd, data = sys.argv[1], sys.argv[2]
reached = []
plain = ssl.create_default_context(); plain.check_hostname = False
plain.verify_mode = ssl.CERT_NONE
for url, ctx in ((etcd, plain), (etcd.replace("https:", "http:"), None)):
    try:
        req = urllib.request.Request(url + "/v3/kv/range", data=b'{"key": "AA=="}')
        with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:
            if b"header" in resp.read():
                reached.append(url)
    except Exception:
        pass
for top, dirs, files in os.walk(data):
    for name in files:
        try:
            with open(os.path.join(top, name), "rb") as f:
                f.read(1)
            reached.append(os.path.join(top, name))
        except OSError:
            pass
print(json.dumps(reached))
"""

SPEC = """
kind: Flavor
metadata: {name: m1.tiny}
spec: {vcpus: 1, ramMiB: 128, diskGiB: 1}
---
kind: Image
metadata: {name: tiny}
spec: {visibility: public}
---
kind: Instance
metadata: {name: far-away, project: demo}
spec: {flavor: m1.tiny, image: tiny, availabilityZone: farzone}
"""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter (as /var/lib is), so that only the modes of what
    ``desired up`` makes inside keep ``nobody`` out."""
    top = Path(tempfile.mkdtemp(prefix="desired-open-", dir="/tmp"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def open_up(open_dir: Path) -> Iterator[Up]:
    u = Up(open_dir / "desired", "--simulate", "1", "--no-demo")
    try:
        yield u
    finally:
        if u.proc.poll() is None:
            u.stop()


def test_nobody_reaches_neither_etcd_nor_the_data_directory(open_up: Up) -> None:
    ran = subprocess.run(
        [
            *("setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"),
            *("/usr/bin/python3", "-c", NOBODY, open_up.etcd_url(), str(open_up.data_dir)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == []
    # the owner does reach it, with a credential: the probe above could have succeeded
    names = asyncio.run(_count(open_up.etcd(), keys.spec_prefix("User")))
    assert names >= 2  # admin and demo


async def _count(etcd: EtcdClient, prefix: bytes) -> int:
    try:
        return (await etcd.range(prefix, prefix_end(prefix), count_only=True)).count
    finally:
        await etcd.close()


def _login(up: Up, user: str, password: str) -> str:
    body = json.dumps(password_login(user, password, "demo")).encode()
    req = urllib.request.Request(
        up.url + "/identity/v3/auth/tokens", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.headers["X-Subject-Token"])


def _post(url: str, token: str) -> int:
    req = urllib.request.Request(url, method="POST", data=b"", headers={"X-Auth-Token": token})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _hostd(up: Up, creds: Path, data: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESIRED_")}
    env.update(
        DESIRED_ETCD_URL=up.etcd_url(),
        DESIRED_ETCD_CREDENTIALS=str(creds),
        DESIRED_HOSTD_NAME="far",
        DESIRED_HOSTD_ZONE="farzone",
        DESIRED_DATA_DIR=str(data),
    )
    return subprocess.Popen(
        [str(BIN / "desired"), "hostd", "--simulate", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(data.with_suffix(".log"), "wb"),
        stdin=subprocess.DEVNULL,
    )


async def _refused(etcd: EtcdClient, near_host: str) -> list[str]:
    """What the far host's credential was refused, of what it must never do."""
    refused = []
    tries = {
        "another host's assignments": etcd.range(
            keys.assign_prefix(near_host), prefix_end(keys.assign_prefix(near_host))
        ),
        "the token key": etcd.get(keys.token_key()),
        "a spec": etcd.put(keys.spec("Flavor", None, "evil"), b"{}"),
        "users": etcd.range(keys.spec_prefix("User"), prefix_end(keys.spec_prefix("User"))),
    }
    for what, call in tries.items():
        try:
            await call
        except Forbidden:
            refused.append(what)
    try:
        async for _ in etcd.watch(
            keys.assign_prefix(near_host), prefix_end(keys.assign_prefix(near_host)), 1
        ):
            break
    except Forbidden:
        refused.append("a watch of another host's assignments")
    own = keys.assign_prefix("far-sim-0")
    assert (await etcd.range(own, prefix_end(own))).kvs  # its own assignment it reads
    await etcd.close()
    return refused


def test_a_joined_hostd_converges_its_own_and_is_refused_the_rest(up: Up, tmp_path: Path) -> None:
    token = yaml.safe_load((up.data_dir / "desiredctl.yaml").read_text())["token"]
    demo = yaml.safe_load((up.data_dir / "clouds.yaml").read_text())["clouds"]["desired-demo"]
    member = _login(up, demo["auth"]["username"], demo["auth"]["password"])
    assert _post(f"{up.url}/apis/v1/hosts/far/credentials", member) == 403
    assert _post(f"{up.url}/apis/v1/hosts/x-sim-1/credentials", token) == 400
    creds = tmp_path / "far-credential"
    joined = subprocess.run(
        [
            *(str(BIN / "desired"), "join", "--url", up.url, "--token", token),
            *("--host", "far", "--into", str(creds)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert joined.returncode == 0, joined.stderr
    assert f"DESIRED_ETCD_CREDENTIALS={creds}" in joined.stdout
    assert token not in joined.stdout and "PRIVATE KEY" not in joined.stdout
    for f in creds.iterdir():
        assert f.stat().st_mode & 0o077 == 0, f
    far = _hostd(up, creds, tmp_path / "far-data")
    try:
        spec = tmp_path / "far.yaml"
        spec.write_text(SPEC)
        res = ctl(up, "apply", "-f", str(spec))
        assert res.returncode == 0, res.stderr
        res = ctl(up, "wait", "instance", "far-away", "-p", "demo", "--for=condition=Ready")
        log = (tmp_path / "far-data.log").read_text(errors="replace")
        assert res.returncode == 0, res.stderr + log
        got = ctl(up, "get", "instance", "far-away", "-p", "demo").stdout.splitlines()
        assert got[1].split()[4] == "far-sim-0", got
        near = host_name(load(None)) + "-sim-0"  # up's own simulated host
        etcd = EtcdClient(up.etcd_url(), credentials=Credentials.read(creds))
        refused = asyncio.run(_refused(etcd, near))
        assert refused == [
            "another host's assignments",
            "the token key",
            "a spec",
            "users",
            "a watch of another host's assignments",
        ]
        assert far.poll() is None  # refusals are answers, not a crash
    finally:
        far.terminate()
        try:
            far.wait(20)
        except subprocess.TimeoutExpired:
            far.kill()
            far.wait()


def _stranger(up: Up, tmp_path: Path, which: str) -> Credentials:
    """Credentials trusting up's CA (so the server is checked) with a certificate etcd
    must refuse: one of another CA, or one of up's own CA that has expired."""
    mine = up.etcd().credentials
    assert mine is not None
    if which == "another CA":
        made = Authority(tmp_path / "other-ca").credential_dir(tmp_path / "stranger", "root")
        cert, key = made.cert_file, made.key_file
    else:
        ours = Authority(pki_dir(up.data_dir))
        gone = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
        pem, private = ours.issue(etcd_roles.APISERVER, not_before=gone, days=1)
        cert, key = tmp_path / "expired.pem", tmp_path / "expired-key.pem"
        write_private(cert, pem)
        write_private(key, private)
    return Credentials(mine.ca_file, cert, key, mine.user, mine.password)


@pytest.mark.parametrize("which", ["another CA", "expired"])
def test_a_certificate_etcd_does_not_trust_is_refused(up: Up, tmp_path: Path, which: str) -> None:
    """Even with a right user and password: no trusted, current certificate, no etcd."""
    stranger = EtcdClient(up.etcd_url(), timeout=3, credentials=_stranger(up, tmp_path, which))

    async def attempt() -> str:
        try:
            await stranger.get(keys.token_key())
            return "read"
        except DesiredError as exc:
            return type(exc).__name__
        finally:
            await stranger.close()

    assert asyncio.run(attempt()) == "Unavailable"
