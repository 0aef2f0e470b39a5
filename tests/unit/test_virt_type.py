"""hostd picks kvm only with both /dev/kvm and VMX/SVM in the CPU flags."""

from __future__ import annotations

import pytest

from hostd.virt_type import detect, resolve
from state.errors import BadRequest


def test_detect() -> None:
    assert detect("flags\t: fpu vme vmx sse2\n", kvm_device=True) == "kvm"
    assert detect("flags\t: fpu svm\n", kvm_device=True) == "kvm"
    assert detect("flags\t: fpu hypervisor sse2\n", kvm_device=True) == "qemu"
    assert detect("flags\t: fpu vmx\n", kvm_device=False) == "qemu"


def test_resolve_settings() -> None:
    assert resolve("qemu") == "qemu"
    assert resolve("auto") in ("kvm", "qemu")
    with pytest.raises(BadRequest, match="auto, kvm or qemu"):
        resolve("xen")
