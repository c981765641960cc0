"""The CPU platform that bit-exact pins are keyed by: the CPU vendor and torch's kernel capability.

Kernels of one torch build round differently on different CPU families (AMD EPYC and Intel Xeon, both
AVX512, train tiny-rn to weights that differ in the last bits), so a pin holds for the platform it was
computed on; a test looks up its platform's pin and falls back to the first one pinned.
"""

import platform

import torch


def cpu_vendor() -> str:
    """``vendor_id`` of ``/proc/cpuinfo`` (``AuthenticAMD``, ``GenuineIntel``), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


CAPABILITY = torch.backends.cpu.get_cpu_capability()
PLATFORM = f"{cpu_vendor()} {CAPABILITY}"
