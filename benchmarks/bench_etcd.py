"""The etcd a benchmark runs against: plain, or secured as ``desired up`` secures its own.

Secured: TLS to a CA of its own, authentication on, and the users and roles of
``cli.up_etcd`` (the API server's, the reconcilers', hostd's for host ``bench``
and its simulated hosts); each process of the benchmark gets its part's
credentials, as under ``desired up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cli.up_etcd import UpCredentials, secure
from fixtures.etcd import EtcdServer
from state.etcd import EtcdClient

#: the host name the benchmarks' hostd runs as (its simulated hosts: bench-sim-<n>)
HOST = "bench"


@dataclass
class BenchEtcd:
    server: EtcdServer
    creds: UpCredentials | None

    @property
    def url(self) -> str:
        return self.server.url

    def env(self, part: str) -> dict[str, str]:
        """The environment of a ``desired`` process that is ``part`` (apiserver,
        reconcilers or hostd)."""
        env = {"DESIRED_ETCD_URL": self.url}
        if self.creds is not None:
            env["DESIRED_ETCD_CREDENTIALS"] = str(getattr(self.creds, part).ca_file.parent)
        return env

    def client(self, part: str = "apiserver", timeout: float = 10.0) -> EtcdClient:
        creds = getattr(self.creds, part) if self.creds is not None else None
        return EtcdClient(self.url, timeout=timeout, credentials=creds)


@contextlib.contextmanager
def bench_etcd(secured: bool) -> Iterator[BenchEtcd]:
    with tempfile.TemporaryDirectory(prefix="desired-bench-etcd-") as d:
        top = Path(d)
        server = EtcdServer(top / "etcd", pki=top / "pki" if secured else None).start()
        try:
            creds = asyncio.run(secure(server, HOST, 10.0)) if secured else None
            yield BenchEtcd(server, creds)
        finally:
            server.cleanup()
