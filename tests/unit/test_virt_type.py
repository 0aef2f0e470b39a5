"""hostd picks kvm only with both /dev/kvm and VMX/SVM in the CPU flags, and reports CPU traits."""

from __future__ import annotations

import pytest

from hostd.host_traits import cpu_traits
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


def test_cpu_traits() -> None:
    assert cpu_traits("flags\t: fpu sse sse2 sse4_1 avx2 hypervisor\n") == [
        "HW_CPU_X86_AVX2",
        "HW_CPU_X86_SSE",
        "HW_CPU_X86_SSE2",
        "HW_CPU_X86_SSE41",
    ]
    assert cpu_traits("") == []
