"""Distributed data parallel through PyTorch's own engine: works unchanged under `torchrun`."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def is_main_process() -> bool:
    """True on rank 0 (and when not distributed); usable before the process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that `torchrun` describes in the environment (no-op for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def mean_across_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average scalar metrics over all processes."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist())}


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over all processes: every process's output is the sum of all inputs, so each
    input's gradient is the sum of all outputs' gradients (one more all-reduce in backward)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class AllReduceBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose batch statistics are computed over all processes, on any device (PyTorch's
    `SyncBatchNorm` runs on GPUs only). Input `(N, C)`; the reduction is differentiable, one all-reduce of
    (sum, sum of squares, count) with nothing read back to the host."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        c = x.shape[1]
        count = x.new_full((1,), float(x.shape[0]))
        total = _AllReduceSum.apply(torch.cat([x.sum(0), (x * x).sum(0), count]))
        n = total[2 * c :].detach()
        mean, mean_sq = (total[: 2 * c] / n).split(c)
        var = (mean_sq - mean * mean).clamp_min(0)
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), self.momentum)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def synchronise_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch statistics over all processes: `SyncBatchNorm` on CUDA, `AllReduceBatchNorm` elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            synced = AllReduceBatchNorm(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            synced.load_state_dict(child.state_dict())
            setattr(module, name, synced.to(child.weight.device))
        else:
            synchronise_batchnorm(child, device)
    return module
