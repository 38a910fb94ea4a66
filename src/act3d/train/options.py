"""How a run trains (`OptimConfig`: optimiser, schedule, batch) and how it runs (`RuntimeConfig`: device,
precision, seeds, logging, checkpoints); both are sections of every stage's config."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from act3d.errors import require


@dataclass
class OptimConfig:
    # act3d's fallbacks for what a preset or file leaves out; the paper's recipes (which differ per stage:
    # min_lr 1e-7 or 1e-6, grad_clip 10 or 0) live in the paper presets alone, each stating every value
    # (tests/test_presets.py::test_the_paper_recipes_live_in_the_presets_alone)
    epochs: int = 300
    batch_size: int = 32  # global: per optimiser step, over all processes and accumulation steps
    accum_steps: int = 1
    lr: float = 5e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    warmup_epochs: float = 10
    grad_clip: float = 10.0  # 0 disables
    # `steps`: act3d's cosine, updated every optimiser step after a linear warm-up to lr; `epochs`: the
    # official runners' timm CosineLRScheduler, updated once per epoch (`schedule.timm_cosine_per_epoch`):
    # from warmup_lr, a cosine of cosine_epochs epochs (default: epochs) that starts below lr; `3detr`:
    # 3DETR's per-step schedule (`schedule.detr_lr`): linear from warmup_lr, then one cosine over the run
    schedule: Literal["steps", "epochs", "3detr"] = "steps"
    warmup_lr: float = 1e-6  # `epochs`: timm's warmup_lr_init; `3detr`: its warm_lr
    cosine_epochs: int | None = None  # `epochs` only: timm's t_initial (the official runners train one more)
    max_steps: int | None = None  # stop after this many optimiser steps (smoke runs)
    # the official segmentation loops (part_segmentation/main.py, semantic_segmentation/main.py l.211-219)
    # step AdamW twice per batch: once on the raw gradient, then, after clipping it, once more
    step_twice: bool = False
    # weight decay on `official`: the ACT runners' groups (no decay for norms, biases, tokens); `all`: every
    # parameter, as 3DETR's optimizer.py without --filter_biases_wd (l.5-25)
    decay: Literal["official", "all"] = "official"

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", "an integer >= 1", self.epochs)
        require(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        require(self.accum_steps >= 1, "accum_steps", "an integer >= 1", self.accum_steps)
        require(self.lr > 0, "lr", "a learning rate > 0", self.lr)
        require(0 <= self.min_lr <= self.lr, "min_lr", f"a value in [0, lr = {self.lr}]", self.min_lr)
        require(self.weight_decay >= 0, "weight_decay", "a value >= 0", self.weight_decay)
        require(self.warmup_epochs >= 0, "warmup_epochs", "a value >= 0", self.warmup_epochs)
        require(self.grad_clip >= 0, "grad_clip", "a value >= 0 (0 disables clipping)", self.grad_clip)
        require(self.warmup_lr >= 0, "warmup_lr", "a value >= 0", self.warmup_lr)
        require(
            self.cosine_epochs is None or self.cosine_epochs >= 1,
            "cosine_epochs",
            "null or an integer >= 1",
            self.cosine_epochs,
        )
        require(
            self.max_steps is None or self.max_steps >= 1,
            "max_steps",
            "null or an integer >= 1",
            self.max_steps,
        )


@dataclass
class RuntimeConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # the number format of training: float32, or bf16 / fp16 autocast (mixed precision, CUDA only). The words
    # are inference's (`--precision`, act3d.models.precision); `none`, the earlier word for float32, is read
    # as float32
    precision: Literal["float32", "bf16", "fp16", "none"] = "float32"
    tf32: bool = True
    # bit-identical reruns on CUDA too: PyTorch's deterministic algorithms, no cuDNN autotuning, no TF32
    # (CPU runs are repeatable without it: every step is seeded)
    deterministic: bool = False
    compile: bool = False  # torch.compile the model (opt-in); where compiling fails, training goes on eagerly
    # reduce-overhead: the compiled forward and backward replay as CUDA graphs (static shapes, CUDA only)
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    # recompute Transformer blocks in backward (less memory, more time)
    activation_checkpointing: bool = False
    num_workers: int = 0  # DataLoader worker processes (none are needed with data.on_device)
    log_every: int = 10
    checkpoint_every: int = 0  # optimiser steps; 0 = at the end of every epoch
    progress: bool = True

    def __post_init__(self) -> None:
        if self.precision == "none":
            self.precision = "float32"
        require(
            re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device) is not None,
            "device",
            "auto, cpu, cuda or cuda:N",
            self.device,
        )
        require(self.num_workers >= 0, "num_workers", "an integer >= 0", self.num_workers)
        require(self.log_every >= 1, "log_every", "an integer >= 1", self.log_every)
        require(
            self.checkpoint_every >= 0,
            "checkpoint_every",
            "an integer >= 0 (0: every epoch)",
            self.checkpoint_every,
        )
