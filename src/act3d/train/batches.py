"""Batches in the order every process and every resumed run agree on: a seeded permutation per epoch,
split across processes; drawn on the device from `DeviceClouds`, or read by a DataLoader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from act3d.data.dataset import DeviceClouds
from act3d.train.distributed import DistInfo
from act3d.train.options import RuntimeConfig


class EpochSampler(Sampler[int]):
    """This process's sample order for one epoch, from global batch `start_batch` on.

    The epoch's permutation depends only on (seed, epoch), so every process and every resumed run agree;
    each global batch is split across processes by striding.
    """

    def __init__(
        self, size: int, batch_size: int, seed: int, epoch: int, start_batch: int, dist_info: DistInfo
    ):
        g = torch.Generator().manual_seed(seed * 10007 + epoch)
        order = torch.randperm(size, generator=g)
        batches = order[: (size // batch_size) * batch_size].reshape(-1, batch_size)[start_batch:]
        self.indices = batches[:, dist_info.rank :: dist_info.world_size].reshape(-1).tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def epoch_batches(
    dataset: Dataset | DeviceClouds,
    sampler: EpochSampler,
    epoch: int,
    micro: int,
    runtime: RuntimeConfig,
    device: torch.device,
) -> Iterator[Any]:
    """One epoch's micro-batches of `micro` samples, in the sampler's order. `DeviceClouds`: the order is
    copied to the device once and every batch is indexed there; otherwise a DataLoader reads the samples."""
    if isinstance(dataset, DeviceClouds):
        return map(dataset.take, torch.tensor(sampler.indices, device=device).split(micro))
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    loader = DataLoader(
        dataset,
        batch_size=micro,
        sampler=sampler,
        num_workers=runtime.num_workers,
        drop_last=True,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )
    # the iterator now, not at the first batch: creating it draws DataLoader's base seed from torch's RNG,
    # which must happen before the loop seeds the step
    batches = iter(loader)
    return (to_device(batch, device) for batch in batches)


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors (also inside lists, tuples and dicts) moved to `device`; anything else as it is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
