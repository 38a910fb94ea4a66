"""Learning-rate and annealing schedules, as pure functions of the step."""

from __future__ import annotations

import math


def cosine_with_warmup(step: int, total: int, warmup: int, base: float, final: float = 1e-6) -> float:
    """Linear warm-up to `base` over `warmup` steps, then cosine decay to `final` at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * progress))


def timm_cosine_per_epoch(
    epoch: int, cosine_epochs: int, warmup: float, base: float, final: float, warmup_init: float
) -> float:
    """The learning rate of `epoch` (0-based) in the official runners: timm's `CosineLRScheduler(t_initial=
    cosine_epochs, lr_min=final, warmup_lr_init=warmup_init, warmup_t=warmup, cycle_limit=1,
    t_in_epochs=True)` (tools/builder.py l.70-81; part_segmentation/main.py l.167-175 and
    semantic_segmentation/main.py l.165-173 with lr_min 1e-6), set to `warmup_init` when built and stepped
    with `scheduler.step(epoch)` after each epoch (runner_finetune.py l.202-206, part_segmentation/main.py
    l.223-227). So epoch 0 trains at `warmup_init` (at `base` without warm-up) and epoch e at the schedule's
    value for t = e - 1: linear from `warmup_init` by (base - warmup_init) / warmup per epoch while
    t < warmup, then the cosine counted from t = 0, so it never reaches `base` after a warm-up (S3DIS's 10
    of 60 epochs peak at 0.933 x base), and `final` from t = cosine_epochs on."""
    if epoch == 0:
        return warmup_init if warmup > 0 else base
    t = epoch - 1
    if t < warmup:
        return warmup_init + t * (base - warmup_init) / warmup
    if t >= cosine_epochs:
        return final
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * t / cosine_epochs))


def cosine_anneal(step: int, steps: int, start: float, end: float) -> float:
    """From `start` at step 0 to `end` at `steps` along a half cosine, then held (Gumbel tau, KL weight)."""
    progress = min(1.0, step / max(1, steps))
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * progress))


def detr_lr(
    step: int, total: int, epochs: int, warmup_epochs: float, base: float, final: float, warm: float
) -> float:
    """3DETR's `compute_learning_rate` (engine.py l.21-35) at `step / total` of the run: while that fraction
    is at most `warmup_epochs / epochs`, linear from `warm` (reaching `base` there); after it, the cosine from
    `base` to `final` over the whole run, warm-up included."""
    t = step / total
    if warmup_epochs > 0 and t <= warmup_epochs / epochs:
        return warm + t * epochs * ((base - warm) / warmup_epochs)
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * t))
