"""Where and how a run computes: the device (one GPU per process under torchrun), TF32 and determinism,
and mixed precision (autocast and, for fp16, loss scaling)."""

from __future__ import annotations

import os

import torch

from act3d.errors import Act3dError
from act3d.train.distributed import DistInfo, init_distributed
from act3d.train.options import RuntimeConfig


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The device a run trains on, always with an index for CUDA (`torch.cuda.set_device` needs one).

    `name` is `auto`, `cpu`, `cuda` or `cuda:N`. Under torchrun (`local_rank` given) a CUDA run uses
    `cuda:<local_rank>`, one GPU per process; otherwise a bare `cuda` means the current device.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise Act3dError(
            f"runtime.device: {name!r} is not a device; expected auto, cpu, cuda or cuda:N"
        ) from None
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise Act3dError(
            f"runtime.device: {name!r} asks for a GPU but PyTorch sees none (CPU build, or no driver); "
            "use runtime.device=cpu"
        )
    index = local_rank if local_rank is not None else device.index
    if index is None:
        index = torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise Act3dError(
            f"runtime.device: cuda:{index} does not exist; this machine has "
            f"{torch.cuda.device_count()} GPU(s)"
        )
    return torch.device("cuda", index)


def setup_device(runtime: RuntimeConfig) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group (if any) and set up this process's device."""
    dist_info = init_distributed(resolve_device(runtime.device))
    device = resolve_device(runtime.device, dist_info.local_rank if dist_info.enabled else None)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = runtime.tf32 and not runtime.deterministic
        torch.backends.cudnn.allow_tf32 = runtime.tf32 and not runtime.deterministic
    if runtime.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    return dist_info, device


class MixedPrecision:
    """Mixed precision on CUDA (`runtime.precision`): the autocast context of a forward pass and the loss scaler
    (active for fp16 only; bf16 and float32 need none)."""

    def __init__(self, precision: str, device: torch.device):
        self.enabled = precision in ("bf16", "fp16") and device.type == "cuda"
        self.device_type = device.type
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.enabled and precision == "fp16")

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)
