"""Which domain type real guests get: ``kvm`` only where hardware virtualisation works.

Owns: the detection behind ``hostd.virt_type: auto``. ``/dev/kvm`` alone is
not enough: inside a VM without nested virtualisation it exists and opens,
but guests never boot; the CPU must also show VMX (Intel) or SVM (AMD).

Must never: guess ``kvm`` without both signs.
"""

from __future__ import annotations

from pathlib import Path

from state.errors import BadRequest

VIRT_TYPES = ("kvm", "qemu")


def detect(cpuinfo: str, kvm_device: bool) -> str:
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return "kvm" if kvm_device and flags & {"vmx", "svm"} else "qemu"


def resolve(setting: str) -> str:
    """The virt type to use for ``hostd.virt_type``."""
    if setting in VIRT_TYPES:
        return setting
    if setting != "auto":
        raise BadRequest(f"hostd.virt_type must be auto, kvm or qemu (got {setting!r})")
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return detect(cpuinfo, Path("/dev/kvm").exists())
