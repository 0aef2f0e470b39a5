"""The network namespace guests' networks live in, and how to act inside it.

Owns: finding the namespace (libvirtd's, since its QEMU processes create the
taps there; or one named by path), one worker thread that has entered it
(netlink sockets, iptables and sysctls opened from that thread belong to
it), listening sockets made inside it, and the argv prefix that starts a
program inside it (``nsenter``).

Must never: move the process itself (its etcd and API connections stay where
they are); enter a namespace other than the one it was given.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from hostd.net import NetworkError

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
#: where libvirtd writes its PID when started as root
LIBVIRTD_PIDFILES = (Path("/run/libvirtd.pid"), Path("/var/run/libvirtd.pid"))


class NamespaceError(NetworkError):
    """The namespace cannot be entered; the message says why."""


def _same_as_ours(path: str) -> bool:
    mine, theirs = os.stat("/proc/self/ns/net"), os.stat(path)
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def libvirtd_namespace() -> str | None:
    """The path of libvirtd's network namespace when it is not this process's own."""
    for pidfile in LIBVIRTD_PIDFILES:
        try:
            pid = int(pidfile.read_text().strip())
            path = f"/proc/{pid}/ns/net"
            return None if _same_as_ours(path) else path
        except (OSError, ValueError):
            continue
    return None


class Namespace:
    """A network namespace by path (None: this process's own)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY) if path else -1
        self._thread = ThreadPoolExecutor(max_workers=1, initializer=self._enter)

    def _enter(self) -> None:
        if self._fd < 0:
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(self._fd, CLONE_NEWNET) != 0:
            raise NamespaceError(
                f"cannot enter network namespace {self.path}: {os.strerror(ctypes.get_errno())}"
            )

    @property
    def key(self) -> str:
        """A name of the namespace that stays the same while it exists (its inode)."""
        st = os.stat(self.path or "/proc/self/ns/net")
        return f"net-{st.st_dev}-{st.st_ino}"

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """Runs ``fn(*args)`` inside the namespace and waits for it (from any thread)."""
        return self._thread.submit(fn, *args).result()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Runs ``fn(*args)`` inside the namespace without blocking the loop."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def argv(self, argv: list[str]) -> list[str]:
        """``argv`` started inside the namespace."""
        return ["nsenter", f"--net={self.path}", "--", *argv] if self.path else argv

    def listener(self, address: str, port: int) -> socket.socket:
        """A listening TCP socket bound inside the namespace (it stays there once made)."""

        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, 15, 1)  # IP_FREEBIND: the address may come later
            sock.bind((address, port))
            sock.listen(128)
            sock.setblocking(False)
            return sock

        return self.call(make)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
