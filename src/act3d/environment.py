"""What a run's numbers depend on besides its configuration and seeds, recorded beside them.

Every step of act3d is seeded, so a rerun on the same machine kind is identical to the last bit. Another CPU
can differ: PyTorch picks its vectorised kernels by the CPU's instruction set at start (ATen's CPU
capability: AVX2, AVX-512, ...), and MKL and oneDNN pick theirs too, so sums are rounded in another order
and training drifts within its seed-to-seed spread. `environment()` records those choices (docs/experiments.md,
"What is identical where").
"""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

# the variables that pin the kernels a CPU run uses (read when torch, MKL and oneDNN load)
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS")
PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "numba", "triton")


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else what `platform` says)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """The machine and software a run's numbers came from: package versions, the CPU and the kernels
    PyTorch chose on it, threads, the variables that pin kernels, and the GPU where one is used."""
    import torch

    return {
        "python": platform.python_version(),
        "packages": {p: v for p in PACKAGES if (v := _version(p)) is not None},
        "cpu": cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "threads": torch.get_num_threads(),
        "kernel_variables": {k: os.environ[k] for k in KERNEL_VARIABLES if k in os.environ},
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
