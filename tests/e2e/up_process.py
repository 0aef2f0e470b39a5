"""A ``desired up`` process as a user starts it, and ``desiredctl`` run against it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from cli.up_etcd import credentials_of
from state.etcd import EtcdClient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Up:
    """One ``desired up`` process; stopped by its PID."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [str(BIN / "desired"), "up", "--data-dir", str(data_dir), "--port", "0", *args],
            # the metadata service on a free port, so that clouds of tests run side by side
            env={**os.environ, "DESIRED_METADATA_PORT": "0", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        self.output: list[str] = []
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        """Reads ``up``'s banner up to its last line; a thread then keeps draining its output."""
        deadline = time.monotonic() + 120
        assert self.proc.stdout is not None
        url = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("desired up exited:\n" + "".join(self.output))
            self.output.append(line)
            m = re.search(r"declarative API\s+(http://\S+)/apis/v1/", line)
            if m:
                url = m.group(1)
            if "use it:" in line and url:
                threading.Thread(target=self._drain, daemon=True).start()
                return url
        raise AssertionError("desired up printed no banner:\n" + "".join(self.output))

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def etcd_url(self) -> str:
        """up's etcd, as its banner gives it (it may move only when restarted)."""
        found = [re.search(r"etcd\s+(https://\S+)", x) for x in self.output]
        urls = [m.group(1) for m in found if m]
        assert urls, "".join(self.output)
        return urls[-1]

    def etcd(self, user: str = "root") -> EtcdClient:
        """A client of up's etcd as its etcd user ``user`` (root: every key)."""
        return EtcdClient(self.etcd_url(), credentials=credentials_of(self.data_dir, user))

    def conductor_pid(self) -> int:
        """The PID of the conductor's child process, as ``up``'s banner gives it."""
        (line,) = [x for x in self.output if x.strip().startswith("conductor ")]
        found = re.search(r"process (\d+)", line)
        assert found is not None, line
        return int(found.group(1))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def ctl_env(up: Up, env_file: bool = True) -> dict[str, str]:
    """A user's shell: `desired up`'s env file sourced, or nothing but the data dir's parent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESIRED_")}
    env["XDG_DATA_HOME"] = str(up.data_dir.parent)  # desiredctl finds <data>/desiredctl.yaml
    if env_file:
        for line in (up.data_dir / "env").read_text().splitlines():
            m = re.match(r"export (\w+)=(.*)", line)
            if m:
                env[m.group(1)] = m.group(2).strip("'")
    return env


def ctl(up: Up, *args: str, env_file: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "desiredctl"), *args],
        capture_output=True,
        text=True,
        env=ctl_env(up, env_file),
        timeout=60,
    )
