"""The traits a real host reports: its CPU features in placement's names.

Owns: turning ``/proc/cpuinfo`` flags into standard traits
(``HW_CPU_X86_AVX2``, ...) that flavors and images ask for with
``trait:<NAME>=required``.

Must never: report a trait the CPU does not show.
"""

from __future__ import annotations

from pathlib import Path

#: cpuinfo flag -> trait
_CPU_TRAITS = {
    "sse": "HW_CPU_X86_SSE",
    "sse2": "HW_CPU_X86_SSE2",
    "ssse3": "HW_CPU_X86_SSSE3",
    "sse4_1": "HW_CPU_X86_SSE41",
    "sse4_2": "HW_CPU_X86_SSE42",
    "avx": "HW_CPU_X86_AVX",
    "avx2": "HW_CPU_X86_AVX2",
    "aes": "HW_CPU_X86_AESNI",
    "vmx": "HW_CPU_X86_VMX",
    "svm": "HW_CPU_X86_SVM",
}


def cpu_traits(cpuinfo: str) -> list[str]:
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return sorted(trait for flag, trait in _CPU_TRAITS.items() if flag in flags)


def this_host() -> list[str]:
    path = Path("/proc/cpuinfo")
    return cpu_traits(path.read_text()) if path.exists() else []
