"""The one training loop every stage uses: each stage supplies a `Task` (its model and its loss).

AdamW with a cosine schedule and warm-up, gradient clipping and accumulation, mixed precision on CUDA,
per-step seeding (so a resumed run draws exactly the random numbers the uninterrupted run would have),
a progress bar, metrics to CSV (and TensorBoard when installed), atomic checkpoints, exact `--resume`,
a NaN guard, and DDP under `torchrun`. The pieces live beside it: `options` (the configs), `device`,
`batches`, `optimizer`, `schedule`, `checkpoints` (and the NaN guard), `metrics_log`, `run_folder`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from act3d.data.dataset import DeviceClouds
from act3d.errors import ConfigError
from act3d.models.transformer import set_activation_checkpointing
from act3d.train.batches import EpochSampler, epoch_batches
from act3d.train.checkpoints import RunCheckpoints
from act3d.train.device import MixedPrecision, setup_device
from act3d.train.distributed import DistInfo, mean_across_ranks, synchronise_batchnorm
from act3d.train.metrics_log import Metric, MetricsLog, StepWindow
from act3d.train.optimizer import make_optimizer
from act3d.train.options import OptimConfig, RuntimeConfig
from act3d.train.schedule import cosine_with_warmup, detr_lr, timm_cosine_per_epoch

log = logging.getLogger(__name__)


class Task(Protocol):
    """What a stage gives the loop."""

    kind: str  # checkpoint kind, e.g. "act3d-student"
    module: nn.Module  # the model whose trainable parameters are optimised

    def to(self, device: torch.device) -> None:
        """Move `module`, and whatever else the loss needs (a frozen teacher), to the training device."""
        ...

    def step(self, model: nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, Metric]]:
        """Loss and metrics of one (micro-)batch; `model` is `module`, possibly DDP-wrapped. Metrics may be
        detached tensors: the loop reads them from the device every `log_every` steps, not every step."""
        ...


@dataclass
class FitResult:
    steps: int
    seconds: float
    history: list[dict[str, float]]  # the rows of metrics.csv: training log points and evaluations (rank 0)
    best: dict[str, float] | None  # the validation scores of best.pt and its step
    checkpoint: Path


@dataclass
class StepPlan:
    """How `fit` cuts the data into steps."""

    micro: int  # samples per process and micro-batch
    steps_per_epoch: int
    total: int  # optimiser steps of the whole run
    warmup: int  # warm-up steps

    @staticmethod
    def of(size: int, optim: OptimConfig, world_size: int) -> StepPlan:
        micro = optim.batch_size // (optim.accum_steps * world_size)
        if micro * optim.accum_steps * world_size != optim.batch_size:
            raise ConfigError(
                f"batch_size {optim.batch_size} must be divisible by accum_steps {optim.accum_steps} "
                f"x processes {world_size}"
            )
        steps_per_epoch = size // optim.batch_size
        if steps_per_epoch == 0:
            raise ConfigError(f"the dataset has {size} samples, fewer than one batch of {optim.batch_size}")
        total = optim.epochs * steps_per_epoch
        total = min(total, optim.max_steps) if optim.max_steps is not None else total
        return StepPlan(micro, steps_per_epoch, total, int(optim.warmup_epochs * steps_per_epoch))


def learning_rate(optim: OptimConfig, plan: StepPlan, step: int) -> float:
    """The learning rate of optimiser step `step` under `optim.schedule`."""
    if optim.schedule == "epochs":
        cosine = optim.cosine_epochs or optim.epochs
        epoch = step // plan.steps_per_epoch
        return timm_cosine_per_epoch(
            epoch, cosine, optim.warmup_epochs, optim.lr, optim.min_lr, optim.warmup_lr
        )
    if optim.schedule == "3detr":
        epochs = plan.total / plan.steps_per_epoch
        return detr_lr(step, plan.total, epochs, optim.warmup_epochs, optim.lr, optim.min_lr, optim.warmup_lr)
    return cosine_with_warmup(step, plan.total, plan.warmup, optim.lr, optim.min_lr)


class WrappedModule:
    """`task.module` as a training step calls it (`current`): DDP-wrapped under torchrun, compiled with
    `runtime.compile`; `module` is the network itself (BatchNorm synchronised under torchrun). Where
    compiling fails at a call (no compiler, an unsupported op, a capture that is not possible), training goes
    on with the eager model and one warning."""

    def __init__(self, module: nn.Module, runtime: RuntimeConfig, dist_info: DistInfo, device: torch.device):
        set_activation_checkpointing(module, runtime.activation_checkpointing)
        self.module, self.eager = module, module
        if dist_info.enabled:
            self.module = synchronise_batchnorm(module, device)
            self.eager = nn.parallel.DistributedDataParallel(
                self.module, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.current = torch.compile(self.eager, mode=runtime.compile_mode) if runtime.compile else self.eager

    def step(self, task: Task, batch: Any, step: int) -> tuple[torch.Tensor, dict[str, Metric]]:
        try:
            return task.step(self.current, batch, step)
        except Exception as err:  # torch.compile compiles at the first calls; it can fail there
            if self.current is self.eager:
                raise
            log.warning(
                "torch.compile failed (%s: %s); training goes on without it",
                type(err).__name__,
                str(err).splitlines()[0] if str(err) else "",
            )
            self.current = self.eager
            return task.step(self.current, batch, step)


def train_step(
    task: Task,
    model: WrappedModule,
    batches: Iterator[Any],
    optimizer: torch.optim.Optimizer,
    precision: MixedPrecision,
    optim: OptimConfig,
    dist_info: DistInfo,
    step: int,
) -> dict[str, list[Metric]]:
    """One optimiser step over `optim.accum_steps` micro-batches; their losses and metrics, on the device."""
    model.module.zero_grad(set_to_none=True)  # every gradient, the optimiser's and those it leaves alone
    values: dict[str, list[Metric]] = {"loss": []}
    for m in range(optim.accum_steps):
        batch = next(batches)
        last = m == optim.accum_steps - 1 or not dist_info.enabled
        with contextlib.nullcontext() if last else model.current.no_sync(), precision.autocast():
            loss, metrics = model.step(task, batch, step)
        precision.scaler.scale(loss / optim.accum_steps).backward()
        for k, v in {"loss": loss.detach(), **metrics}.items():
            values.setdefault(k, []).append(v)
    precision.scaler.unscale_(optimizer)
    if optim.step_twice:
        optimizer.step()
    if optim.grad_clip > 0:
        values["grad_norm"] = [nn.utils.clip_grad_norm_(model.module.parameters(), optim.grad_clip)]
    precision.scaler.step(optimizer)
    precision.scaler.update()
    return values


def fit(
    task: Task,
    dataset: Dataset | DeviceClouds,
    optim: OptimConfig,
    runtime: RuntimeConfig,
    out_dir: str | Path,
    config: dict[str, Any],
    resume: bool = False,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    best_metric: str | None = None,
    evaluate_every: int = 1,
    arch: dict[str, Any] | None = None,
) -> FitResult:
    """Train `task.module` on `dataset`; everything goes to `out_dir` (`checkpoints/`, `metrics.csv`).

    `evaluate(module) -> metrics` (on validation data, names like `val_acc`) runs after every
    `evaluate_every` epochs (0: never); with `best_metric`, the best value so far is kept as
    `checkpoints/best.pt`. `arch` (what the zoo rebuilds the model from) is stored in every checkpoint.
    """
    dist_info, device = setup_device(runtime)
    plan = StepPlan.of(len(dataset), optim, dist_info.world_size)
    task.to(device)
    if isinstance(dataset, DeviceClouds):
        dataset.to(device)
    model = WrappedModule(task.module, runtime, dist_info, device)
    module, optimizer, precision = (
        model.module,
        make_optimizer(model.module, optim),
        MixedPrecision(runtime.precision, device),
    )
    if optim.step_twice and precision.scaler.is_enabled():
        raise ConfigError(
            "optim.step_twice needs runtime.precision bf16 or float32: fp16 loss scaling steps once"
        )
    ckpts = RunCheckpoints(
        Path(out_dir),
        task.kind,
        module,
        optimizer,
        precision.scaler,
        config,
        arch or {},
        dist_info,
        plan.steps_per_epoch,
    )
    step, best = ckpts.restore() if resume else (0, None)
    metrics_log = MetricsLog(Path(out_dir), step, dist_info.is_main)
    progress = _progress_bar(runtime, dist_info, plan.total, step, task.kind)
    try:
        batches: Iterator[Any] | None = None
        last_metrics: dict[str, float] = {}
        window, started = StepWindow(optim.batch_size), time.perf_counter()
        module.train()
        while step < plan.total:
            epoch, within = divmod(step, plan.steps_per_epoch)
            if batches is None or within == 0:
                sampler = EpochSampler(len(dataset), optim.batch_size, runtime.seed, epoch, within, dist_info)
                batches = epoch_batches(dataset, sampler, epoch, plan.micro, runtime, device)
            lr = learning_rate(optim, plan, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            torch.manual_seed(_step_seed(runtime.seed, step, dist_info.rank))
            window.add(step, train_step(task, model, batches, optimizer, precision, optim, dist_info, step))
            step += 1
            if progress is not None:
                progress.update(1)
            at_epoch_end = step % plan.steps_per_epoch == 0 or step == plan.total
            saving = bool(runtime.checkpoint_every and step % runtime.checkpoint_every == 0) or at_epoch_end
            if step % runtime.log_every == 0 or saving:  # also before every checkpoint: it must hold no NaN
                means, per_s, bad = window.flush()
                if bad is not None:
                    raise ckpts.diverged(f"the loss became {bad[1]}", bad[0])
                last_metrics = {**mean_across_ranks(means, dist_info), "lr": lr, "samples_per_s": per_s}
                metrics_log.add(step, {"epoch": round(step / plan.steps_per_epoch, 4), **last_metrics})
                if progress is not None:
                    progress.set_postfix(loss=f"{last_metrics['loss']:.4f}", sps=f"{per_s:.1f}")
            epochs_done = math.ceil(step / plan.steps_per_epoch)
            if at_epoch_end and evaluate is not None and evaluate_every and epochs_done % evaluate_every == 0:
                module.eval()
                scores = mean_across_ranks(evaluate(module), dist_info)
                module.train()
                metrics_log.add(step, scores)
                if best_metric is not None and (best is None or scores[best_metric] > best[best_metric]):
                    best = {**scores, "step": step}
                    ckpts.save(ckpts.best, step, best, scores)
            if saving:
                ckpts.save(ckpts.last, step, best, last_metrics)
        if progress is not None:
            progress.close()
        metrics_log.close()
        if not ckpts.last.is_file():  # resumed a finished run: nothing was trained, nothing saved yet
            ckpts.save(ckpts.last, step, best, last_metrics)
    finally:
        ckpts.close()  # every checkpoint on disk before fit returns or raises
    return FitResult(step, time.perf_counter() - started, metrics_log.history(), best, ckpts.last)


def _progress_bar(runtime: RuntimeConfig, dist_info: DistInfo, total: int, step: int, kind: str):
    """A tqdm bar of the run's steps on rank 0 (None elsewhere, or with `runtime.progress` off)."""
    if not (runtime.progress and dist_info.is_main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=step, desc=kind.removeprefix("act3d-"), unit="step", dynamic_ncols=True)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)
