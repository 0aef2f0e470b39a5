"""Request bodies that stall: every listener of a real ``desired apiserver`` answers 408 and
closes, instead of holding the connection (and a handler) for as long as the client likes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from fixtures.apiserver import ApiServerProcess
from fixtures.etcd import EtcdServer
from state import instance_signature

TOKEN = "stall-test-token"
#: the process's body timeout (seconds without a byte of the body)
STALL = 1.0


@pytest.fixture(scope="module")
def api(
    etcd_server: EtcdServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServerProcess]:
    env = {"DESIRED_API_BODY_TIMEOUT": str(STALL)}
    with ApiServerProcess(
        etcd_server.url, tmp_path_factory.mktemp("api"), TOKEN, {**etcd_server.env(), **env}
    ) as proc:
        yield proc


async def exchange(
    url: str, head: str, parts: list[bytes], pause: float = 0.0
) -> tuple[bytes, float, float]:
    """Sends ``head`` and then ``parts`` (``pause`` seconds apart), and reads until the server
    closes: what it answered, the seconds until it answered and until it closed."""
    host, port = url.removeprefix("http://").split(":")
    start = time.monotonic()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause)
        first = await asyncio.wait_for(reader.readline(), 20)
        answered = time.monotonic() - start
        rest = await asyncio.wait_for(reader.read(), 20)
        return first + rest, answered, time.monotonic() - start
    finally:
        writer.close()


def post(path: str, length: int, **headers: str) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("path", ["/apis/v1/apply", "/identity/v3/auth/tokens"])
async def test_a_body_shorter_than_declared_is_408_and_closed(
    api: ApiServerProcess, path: str
) -> None:
    head = post(path, 1000, Authorization=f"Bearer {TOKEN}", Content_Type="application/json")
    answer, answered, closed = await exchange(api.url, head, [b'{"kind": "Fla'])
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"stalled" in answer
    assert STALL <= answered < STALL + 4 and closed < STALL + 4


@pytest.mark.parametrize("path", ["/compute/v2.1/servers", "/image/v2/images"])
async def test_apis_that_answer_before_reading_a_stalled_body_close_soon(
    api: ApiServerProcess, path: str
) -> None:
    """Without a token these answer 401 at once; the connection is not held open either
    (what the handler left unread is drained no longer than a stall may last)."""
    answer, answered, closed = await exchange(api.url, post(path, 1000), [b"{"])
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert answered < 4 and closed < STALL + 4


async def test_the_metadata_listener_drops_a_stalled_body_too(api: ApiServerProcess) -> None:
    secret = (api.data_dir / "metadata-secret").read_text().strip()
    uid = "00000000-0000-0000-0000-000000000001"
    head = post(
        "/openstack/latest/password",
        100,
        X_Instance_ID=uid,
        X_Instance_ID_Signature=instance_signature.sign(secret, uid),
    )
    answer, answered, closed = await exchange(api.metadata_url, head, [b"half a pass"])
    assert answer.startswith(b"HTTP/1.1 "), answer
    assert answered < STALL + 4 and closed < STALL + 4


async def test_a_slow_body_that_keeps_coming_is_not_cut(api: ApiServerProcess) -> None:
    body = b'{"kind": "Flavor", "metadata": {"name": "slow"}, "spec": {"vcpus": 1, "ramMiB": 64, "diskGiB": 1}}'
    parts = [body[i : i + 10] for i in range(0, len(body), 10)]
    head = post(
        "/apis/v1/apply",
        len(body),
        Authorization=f"Bearer {TOKEN}",
        Content_Type="application/json",
        Connection="close",
    )
    answer, answered, _ = await exchange(api.url, head, parts, pause=STALL / 3)
    assert answered > STALL * 2  # longer than the timeout in all
    assert answer.startswith(b"HTTP/1.1 201") or answer.startswith(b"HTTP/1.1 200"), answer[:300]
