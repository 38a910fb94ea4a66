"""What a run's numbers depend on besides its configuration and seeds, recorded beside them.

Every step of act3d is seeded, so a rerun on the same machine kind is identical to the last bit. Another CPU
can differ: PyTorch picks its vectorised kernels by the CPU's instruction set at start (ATen's CPU
capability: AVX2, AVX-512, ...), and MKL and oneDNN pick theirs by the CPU's identity, its instruction-set
extensions and its cache sizes (their blocking), so sums are rounded in another order and training drifts
within its seed-to-seed spread. Two CPUs that both say "AMD EPYC, AVX512" can be two kinds. `environment()`
records what those choices read: the CPU's vendor, family, model and stepping, the extensions the kernels
dispatch on, the cache sizes, and the MKL and oneDNN versions (docs/experiments.md, "What is identical
where").
"""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

# the variables that pin the kernels a CPU run uses (read when torch, MKL and oneDNN load)
KERNEL_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS")
PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "numba", "triton")
# the instruction-set extensions (Linux's /proc/cpuinfo names) that ATen, MKL or oneDNN dispatch on
DISPATCH_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512dq",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vp2intersect",
    "avx_vnni",
    "avx_vnni_int8",
    "avx_ne_convert",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def _cpuinfo() -> dict[str, str]:
    """The first processor's `key: value` lines of Linux's /proc/cpuinfo (empty elsewhere)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else what `platform` says)."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_identity() -> dict[str, Any]:
    """Vendor, family, model and stepping (what MKL and oneDNN read to pick a code path), and the dispatch
    extensions the CPU has (`DISPATCH_FLAGS`)."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    return {
        "vendor": info.get("vendor_id"),
        "family": info.get("cpu family"),
        "model": info.get("model"),
        "stepping": info.get("stepping"),
        "extensions": [f for f in DISPATCH_FLAGS if f in flags],
    }


def cache_sizes() -> dict[str, str]:
    """The first core's cache sizes by level (`L1d`, `L1i`, `L2`, `L3`), as Linux's sysfs reports them: the
    kernels' blocking follows them."""
    sizes = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        sizes[f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")] = size
    return sizes


def kernel_libraries() -> dict[str, str]:
    """The MKL and oneDNN versions PyTorch was built with (from `torch.__config__.show()`)."""
    import torch

    shown = torch.__config__.show()
    found = {
        "mkl": re.search(r"Math Kernel Library Version ([^\s-]+)", shown),
        "onednn": re.search(r"MKL-DNN (v[\d.]+)", shown),
    }
    return {name: m.group(1) for name, m in found.items() if m}


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
        "cpu_id": cpu_identity(),
        "caches": cache_sizes(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "kernel_libraries": kernel_libraries(),
        "threads": torch.get_num_threads(),
        "kernel_variables": {k: os.environ[k] for k in KERNEL_VARIABLES if k in os.environ},
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
