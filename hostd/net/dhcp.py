"""DHCP for desired's networks on one host: one dnsmasq per network, by PID.

Owns: each network's dnsmasq (DHCP only, bound to the network's bridge,
static leases: a port's MAC gets the port's address and its instance's host
name, from a hosts file), its files under ``/run/desired/dhcp/<namespace>/``, rewriting
the hosts file and signalling dnsmasq (SIGHUP) when ports come and go,
restarting it when its settings change or it died, adopting one a previous
hostd started (its PID file and command line say so), and stopping, by PID,
the ones of networks no port here uses.

Must never: signal a process it did not start (a PID whose command line is
not this network's dnsmasq is left alone); hand out an address to a MAC that
is not a port's.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hostd.net import NetworkError
from hostd.net.netns import Namespace


@dataclass(frozen=True)
class DhcpNetwork:
    bridge: str
    cidr: str
    gateway: str
    dns_servers: tuple[str, ...]
    #: (mac, address, host name) of every port on the network here
    hosts: tuple[tuple[str, str, str], ...]


#: where dnsmasq's files live: dnsmasq reads its hosts file as user nobody, so the
#: path must be open to everyone (a private state directory is not)
RUN_DIR = Path("/run/desired/dhcp")


class Dnsmasq:
    def __init__(self, ns: Namespace, binary: str = "dnsmasq") -> None:
        self.ns = ns
        self.dir = RUN_DIR / ns.key
        self.binary = binary
        #: bridge -> (pid, the argv it runs with)
        self._running: dict[str, tuple[int, list[str]]] = {}

    def _argv(self, n: DhcpNetwork) -> list[str]:
        net = ipaddress.IPv4Network(n.cidr, strict=False)
        argv = [
            self.binary,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--bind-interfaces",
            f"--interface={n.bridge}",
            "--except-interface=lo",
            f"--dhcp-range={net.network_address},static,{net.netmask},1h",
            f"--dhcp-hostsfile={self.dir / (n.bridge + '.hosts')}",
            f"--dhcp-option=option:router,{n.gateway}",
            "--dhcp-authoritative",
            "--leasefile-ro",
            "--log-facility=-",
            "--log-dhcp",
        ]
        if n.dns_servers:
            argv.append(f"--dhcp-option=option:dns-server,{','.join(n.dns_servers)}")
        return argv

    def _alive(self, bridge: str, pid: int) -> bool:
        """Whether ``pid`` is this bridge's dnsmasq (not a reused PID)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        try:
            os.waitpid(pid, os.WNOHANG)  # reaps it if it is a dead child of ours
        except ChildProcessError:
            pass
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return False
        return f"--interface={bridge}".encode() in cmdline

    def _adopt(self, bridge: str) -> tuple[int, list[str]] | None:
        pidfile = self.dir / f"{bridge}.pid"
        try:
            pid = int(pidfile.read_text())
            argv = pidfile.with_suffix(".argv").read_text().split("\0")
        except (OSError, ValueError):
            return None
        return (pid, argv) if self._alive(bridge, pid) else None

    def _start(self, n: DhcpNetwork, argv: list[str]) -> None:
        log = open(self.dir / f"{n.bridge}.log", "ab")
        with log:
            try:
                proc = subprocess.Popen(
                    self.ns.argv(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise NetworkError(f"cannot start dnsmasq for {n.bridge}: {exc}") from None
        (self.dir / f"{n.bridge}.argv").write_text("\0".join(argv))
        (self.dir / f"{n.bridge}.pid").write_text(str(proc.pid))
        self._running[n.bridge] = (proc.pid, argv)

    def _stop(self, bridge: str, pid: int) -> None:
        if self._alive(bridge, pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while self._alive(bridge, pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        for suffix in (".pid", ".argv", ".hosts", ".log"):
            (self.dir / f"{bridge}{suffix}").unlink(missing_ok=True)
        self._running.pop(bridge, None)

    def converge(self, wanted: list[DhcpNetwork]) -> list[tuple[str, str]]:
        """Runs exactly the dnsmasqs ``wanted`` asks for; says what drift it repaired
        (bridge, what)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for d in (self.dir, *list(self.dir.parents)[: len(RUN_DIR.parts) - 1]):
            d.chmod(0o755)
        changes: list[tuple[str, str]] = []
        names = {n.bridge for n in wanted}
        for stale in sorted({p.stem for p in self.dir.glob("*.pid")} - names):
            found = self._adopt(stale)
            self._stop(stale, found[0] if found else -1)
        for n in wanted:
            hosts = self.dir / f"{n.bridge}.hosts"
            text = "".join(f"{mac},{ip},{name}\n" for mac, ip, name in sorted(n.hosts))
            hosts_changed = not hosts.exists() or hosts.read_text() != text
            if hosts_changed:
                tmp = hosts.with_suffix(".tmp")
                tmp.write_text(text)
                os.replace(tmp, hosts)
            argv = self._argv(n)
            running = self._running.get(n.bridge) or self._adopt(n.bridge)
            if running is not None and not self._alive(n.bridge, running[0]):
                changes.append((n.bridge, f"dnsmasq of {n.bridge} was not running; restarted"))
                running = None
            if running is not None and running[1] != argv:
                self._stop(n.bridge, running[0])
                hosts.write_text(text)
                running = None
            if running is None:
                self._start(n, argv)
            else:
                self._running[n.bridge] = running
                if hosts_changed:
                    os.kill(running[0], signal.SIGHUP)  # dnsmasq reads its hosts file again
        return changes

    def stop_all(self) -> None:
        """Stops every dnsmasq of the namespace and removes its directory."""
        self.converge([])
        if self.dir.exists():
            for leftover in self.dir.iterdir():
                leftover.unlink()
            self.dir.rmdir()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
