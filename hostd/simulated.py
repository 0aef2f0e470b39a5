"""Simulated hosts: libvirt's test driver with a node of a chosen size.

Owns: writing the node description libvirt's ``test:///<file>`` driver
reads, so that every simulated host has its own in-memory hypervisor (each
connection to a custom file is private) with the CPUs and memory asked for.

Must never: be used for real guests.
"""

from __future__ import annotations

from pathlib import Path

_NODE = """<node>
  <cpu>
    <mhz>2000</mhz>
    <model>x86_64</model>
    <active>{vcpus}</active>
    <total>{vcpus}</total>
    <nodes>1</nodes>
    <sockets>1</sockets>
    <cores>{vcpus}</cores>
    <threads>1</threads>
  </cpu>
  <memory>{ram_kib}</memory>
</node>
"""


def simulated_uri(directory: Path, name: str, vcpus: int = 16, ram_mib: int = 65536) -> str:
    """The libvirt URI of a simulated host; writes its node file under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / f"{name}.xml").resolve()
    path.write_text(_NODE.format(vcpus=vcpus, ram_kib=ram_mib * 1024))
    return f"test://{path}"
