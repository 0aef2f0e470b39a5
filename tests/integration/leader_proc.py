"""A replica for the leader failover test: campaigns and prints LEADER/FOLLOWER lines."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from reconcilers.runtime.leader import LeaderElector
from state.etcd import EtcdClient
from state.etcd_tls import Credentials


async def main(url: str, identity: str, ttl: int) -> None:
    creds = os.environ.get("DESIRED_ETCD_CREDENTIALS")
    etcd = EtcdClient(url, timeout=2, credentials=Credentials.read(Path(creds)) if creds else None)

    def changed(leading: bool) -> None:
        print(("LEADER " if leading else "FOLLOWER ") + identity, flush=True)

    elector = LeaderElector(etcd, "failover-test", identity, ttl=ttl, on_change=changed)
    task = asyncio.create_task(elector.run(asyncio.Event().wait))
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    print("STARTED " + identity, flush=True)
    try:
        await task
    except asyncio.CancelledError:
        pass
    await etcd.close()
    print("STOPPED " + identity, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
