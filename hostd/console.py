"""Console output on request: the tail of a guest's serial console log, published in etcd.

An API server asks by writing ``/desired/v1/console/request/<host>/<uid>``
(on a short lease); the hostd of that host answers under
``/desired/v1/console/output/<uid>`` with the log's last ``MAX_BYTES`` (on a
lease of its own, so that answers do not pile up). One watch serves every
host of a hostd process.

Owns: the watch of requests and the answers.

Must never: answer for a host this process does not run; read beyond an
instance's own console log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from state import keys
from state.errors import DesiredError
from state.etcd import EtcdClient
from state.keywatch import PUT, KeyWatch

log = logging.getLogger(__name__)

#: the most of a console log an answer carries (its end)
MAX_BYTES = 64 * 1024
#: seconds an answer stays in etcd
ANSWER_TTL = 60


def tail(path: str | None, limit: int = MAX_BYTES) -> str:
    """The last ``limit`` bytes of the file at ``path`` as text ("" when there is none)."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _common_start(names: list[str]) -> str:
    """The longest start all ``names`` share (by character: host names, not paths)."""
    first, last = min(names), max(names)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


async def serve_console(etcd: EtcdClient, logs: dict[str, Callable[[str], str | None]]) -> None:
    """Answers console requests for the hosts in ``logs`` (host → the console log path of
    an instance uid, or None) until cancelled, retrying while etcd is away. It watches the
    requests to those hosts alone (their names' common start: its etcd user may read
    no other host's)."""
    hosts = sorted(logs)
    scope = hosts[0] + "/" if len(hosts) == 1 else _common_start(hosts)
    while True:
        try:
            async for ev in KeyWatch(etcd, keys.console_requests_prefix(scope)):
                if ev.type != PUT:
                    continue
                host, uid = ev.key.decode().rsplit("/", 2)[-2:]
                log_of = logs.get(host)
                if log_of is None:
                    continue
                text = await asyncio.to_thread(tail, log_of(uid))
                lease = await etcd.lease_grant(ANSWER_TTL)
                await etcd.put(keys.console_output(uid), text.encode(), lease=lease)
        except DesiredError as exc:
            log.warning("console requests: %s; watching again", exc.message)
            await asyncio.sleep(1.0)
