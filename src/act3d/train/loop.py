"""The one training loop every stage uses: each stage supplies a `Task` (its model and its loss).

AdamW with a cosine schedule and warm-up, gradient clipping and accumulation, mixed precision on CUDA,
per-step seeding (so a resumed run draws exactly the random numbers the uninterrupted run would have),
a progress bar, metrics to CSV (and TensorBoard when installed), atomic checkpoints, exact `--resume`,
a NaN guard, and DDP under `torchrun`.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from act3d.data.dataset import DeviceClouds
from act3d.errors import Act3dError, require
from act3d.models.checkpoint import BackgroundWriter, host_copy, load_checkpoint, load_state_strict
from act3d.models.transformer import set_activation_checkpointing
from act3d.train.distributed import (
    DistInfo,
    barrier,
    init_distributed,
    mean_across_ranks,
    synchronise_batchnorm,
)
from act3d.train.schedule import cosine_with_warmup

log = logging.getLogger(__name__)


@dataclass
class OptimConfig:
    epochs: int = 300
    batch_size: int = 32  # global: per optimiser step, over all processes and accumulation steps
    accum_steps: int = 1
    lr: float = 5e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    warmup_epochs: float = 10
    grad_clip: float = 10.0  # 0 disables
    max_steps: int | None = None  # stop after this many optimiser steps (smoke runs)
    # the official segmentation loops (part_segmentation/main.py, semantic_segmentation/main.py l.211-219)
    # step AdamW twice per batch: once on the raw gradient, then, after clipping it, once more
    step_twice: bool = False

    def __post_init__(self) -> None:
        require(self.epochs >= 1, "epochs", "an integer >= 1", self.epochs)
        require(self.batch_size >= 1, "batch_size", "an integer >= 1", self.batch_size)
        require(self.accum_steps >= 1, "accum_steps", "an integer >= 1", self.accum_steps)
        require(self.lr > 0, "lr", "a learning rate > 0", self.lr)
        require(0 <= self.min_lr <= self.lr, "min_lr", f"a value in [0, lr = {self.lr}]", self.min_lr)
        require(self.weight_decay >= 0, "weight_decay", "a value >= 0", self.weight_decay)
        require(self.warmup_epochs >= 0, "warmup_epochs", "a value >= 0", self.warmup_epochs)
        require(self.grad_clip >= 0, "grad_clip", "a value >= 0 (0 disables clipping)", self.grad_clip)
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
    amp: Literal["none", "bf16", "fp16"] = "none"  # mixed precision, CUDA only
    tf32: bool = True
    # bit-identical reruns on CUDA too: PyTorch's deterministic algorithms, no cuDNN autotuning, no TF32
    # (CPU runs are repeatable without it: every step is seeded)
    deterministic: bool = False
    compile: bool = False  # torch.compile the model (opt-in); where compiling fails, training goes on eagerly
    # reduce-overhead: the compiled forward and backward replay as CUDA graphs (static shapes, CUDA only)
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    activation_checkpointing: bool = (
        False  # recompute Transformer blocks in backward (less memory, more time)
    )
    num_workers: int = 0  # DataLoader worker processes (none are needed with data.on_device)
    log_every: int = 10
    checkpoint_every: int = 0  # optimiser steps; 0 = at the end of every epoch
    progress: bool = True

    def __post_init__(self) -> None:
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


Metric = float | torch.Tensor  # a number, or a 0-d tensor still on the device


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


class TrainingDiverged(Act3dError):
    """The loss or the weights became NaN or infinite."""


@dataclass
class FitResult:
    steps: int
    seconds: float
    last_metrics: dict[str, float]
    best: dict[str, float] | None
    checkpoint: Path


class RunExistsError(Act3dError):
    """The output folder already holds a run, and neither resuming nor overwriting was asked for."""


# what a run writes into its folder; `overwrite` removes exactly these
RUN_OUTPUTS = (
    "config.yaml",
    "log.txt",
    "metrics.csv",
    "results.json",
    "checkpoints",
    "tensorboard",
    "done.json",
)


def claim_run_dir(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Make `out_dir` ready for a run without losing one: a folder that holds a started or finished run is
    continued (`resume`), replaced (`overwrite`: its run files and pictures are removed first) or refused.
    Temporary checkpoint files a killed run left behind are removed."""
    held = [name for name in RUN_OUTPUTS if (out_dir / name).exists()]
    if held and not (resume or overwrite):
        raise RunExistsError(
            f"{out_dir} already holds a run ({', '.join(held)}); continue it with --resume, replace "
            "it with --overwrite, or choose another --out"
        )
    if held and overwrite and not resume:
        for name in held:
            path = out_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        for picture in out_dir.glob("*.png"):
            picture.unlink()
    for stale in (out_dir / "checkpoints").glob(".*.tmp*"):  # save_checkpoint's temporary files
        stale.unlink()


class RunLockedError(Act3dError):
    """Another process is writing the run folder."""


@contextlib.contextmanager
def run_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder itself while a run writes it (`flock` on the folder: no
    lock file to leave behind). The system drops the lock when the process ends, however it ends (kill -9
    included), so a crashed run never blocks the next one."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform (Windows): runs are not locked
        yield
        return
    fd = os.open(out_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"{out_dir} is being written by another act3d process; wait for it to finish, or choose "
                "another --out"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


# what a resumed run may change: how long and how fast it trains, how it runs and what it reports; anything
# else (models, patches, data, targets, seeds of the data split) would mix two runs in one folder
RESUMABLE = ("optim.epochs", "optim.max_steps", "optim.lr", "optim.min_lr", "optim.weight_decay")
RESUMABLE += ("optim.warmup_epochs", "optim.grad_clip", "optim.accum_steps", "data.root", "data.on_device")
RESUMABLE += (
    "eval_every",
    "votes",
    "report_test_selected",
    "test_selected_vote_rounds",
    "pictures",
    "gallery",
)


def resumable(key: str) -> bool:
    """Whether a resumed run may change this setting (`runtime.seed` also draws the validation split)."""
    return key in RESUMABLE or (key.startswith("runtime.") and key != "runtime.seed")


def changed_settings(
    before: dict[str, Any], after: dict[str, Any], prefix: str = ""
) -> list[tuple[str, Any, Any]]:
    """`(dotted key, old, new)` for every value that differs between two nested config dicts."""
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += changed_settings(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append((f"{prefix}{key}", old, new))
    return changes


def check_resumed_config(out_dir: Path, config: dict[str, Any]) -> None:
    """A resumed run says, in one line, which settings differ from its `config.yaml`, and refuses those that
    cannot change mid-run (`RESUMABLE` lists the ones that can)."""
    from act3d.config import load_yaml

    if not (out_dir / "config.yaml").is_file():
        return
    changes = changed_settings(load_yaml(out_dir / "config.yaml"), config)
    said = ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)
    fixed = [k for k, _, _ in changes if not resumable(k)]
    if fixed:
        raise Act3dError(
            f"cannot resume {out_dir} with changed {', '.join(fixed)} (it was trained with other values: "
            f"{said}); resume with the run's own values or start a new --out"
        )
    if changes:
        log.warning("resuming %s with changed settings: %s", out_dir, said)


@contextlib.contextmanager
def run_files(out_dir: Path, config: Any, resume: bool = False, overwrite: bool = False) -> Iterator[bool]:
    """Prepare a run folder (see `claim_run_dir`), locked for this process (`run_lock`): `config.yaml` and a
    `log.txt` that receives this process's log records. A resumed run's settings are checked against its
    `config.yaml` (`check_resumed_config`). Only rank 0 writes; yields whether this process is the one that
    writes."""
    from act3d.config import save_config, to_dict
    from act3d.train.distributed import is_main_process

    main = is_main_process()
    if not main:
        yield False
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(out_dir):
        claim_run_dir(out_dir, resume, overwrite)
        if resume:
            check_resumed_config(out_dir, to_dict(config))
        save_config(config, out_dir / "config.yaml")
        with _log_file(out_dir / "log.txt"):
            yield True


@contextlib.contextmanager
def _log_file(path: Path) -> Iterator[None]:
    """This process's log records also go to `path` while the context lasts."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(min(previous, logging.INFO) if previous else logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


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


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups as the official `add_weight_decay` (tools/builder.py): no decay for 1-D parameters
    (norms, biases) and learnable tokens (`*token*`: cls, mask and prompt tokens); everything else decays,
    the codebook and the learnable positions (`cls_pos`, prompt positions) included."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if p.requires_grad:
            (no_decay if p.dim() <= 1 or name.endswith(".bias") or "token" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(module: nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW over `param_groups`, fused (one kernel for every parameter: 4 ATen operators per step instead
    of ~10 per parameter) where this torch and device support it, else the default implementation."""
    groups = param_groups(module, optim.weight_decay)
    try:
        return torch.optim.AdamW(groups, lr=optim.lr, fused=True)
    except (RuntimeError, ValueError):  # torch < 2.4 on CPU, or a device without the fused kernel
        # fresh groups: the constructor that refused has already filled its defaults into these
        return torch.optim.AdamW(param_groups(module, optim.weight_decay), lr=optim.lr)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


class MetricsLog:
    """`metrics.csv` (rows kept across resumes, later rows dropped) and TensorBoard when installed."""

    def __init__(self, out_dir: Path, resume_step: int, enabled: bool):
        self.path = out_dir / "metrics.csv"
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self.writer = None
        if not enabled:
            return
        if self.path.is_file() and resume_step > 0:
            with self.path.open() as f:
                self.rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= resume_step]
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=resume_step or None)
        except ImportError:  # TensorBoard is optional
            self.writer = None

    def add(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.rows.append({"step": step, **values})
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


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
    collate: Callable | None = None,
    extra: dict[str, Any] | None = None,
) -> FitResult:
    """Train `task.module` on `dataset`; everything goes to `out_dir` (`checkpoints/`, `metrics.csv`).

    `evaluate(module) -> metrics` (on validation data, names like `val_acc`) runs after every
    `evaluate_every` epochs (0: never); with `best_metric`, the best value so far is kept as
    `checkpoints/best.pt`. `extra` is stored in every checkpoint (`arch`: what the zoo rebuilds the model from).
    """
    out_dir = Path(out_dir)
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
    micro = optim.batch_size // (optim.accum_steps * dist_info.world_size)
    if micro * optim.accum_steps * dist_info.world_size != optim.batch_size:
        raise Act3dError(
            f"batch_size {optim.batch_size} must be divisible by accum_steps {optim.accum_steps} "
            f"x processes {dist_info.world_size}"
        )
    steps_per_epoch = len(dataset) // optim.batch_size
    if steps_per_epoch == 0:
        raise Act3dError(
            f"the dataset has {len(dataset)} samples, fewer than one batch of {optim.batch_size}"
        )
    total = optim.epochs * steps_per_epoch
    if optim.max_steps is not None:
        total = min(total, optim.max_steps)
    warmup = int(optim.warmup_epochs * steps_per_epoch)

    task.to(device)
    if isinstance(dataset, DeviceClouds):
        dataset.to(device)
    module = task.module
    set_activation_checkpointing(module, runtime.activation_checkpointing)
    model: nn.Module = module
    if dist_info.enabled:
        module = synchronise_batchnorm(module, device)
        model = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )
    eager_model = model
    if runtime.compile:
        model = torch.compile(model, mode=runtime.compile_mode)
    optimizer = make_optimizer(module, optim)
    use_amp = runtime.amp != "none" and device.type == "cuda"
    amp_dtype = torch.bfloat16 if runtime.amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and runtime.amp == "fp16")
    if optim.step_twice and scaler.is_enabled():
        raise Act3dError("optim.step_twice needs runtime.amp bf16 or none: fp16 loss scaling steps once")

    ckpt_dir = out_dir / "checkpoints"
    last_path = ckpt_dir / "last.pt"
    step, best = 0, None
    if resume and last_path.is_file():
        ckpt = load_checkpoint(last_path, task.kind)
        load_state_strict(module, ckpt["model"], str(last_path))
        optimizer.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        step, best = int(ckpt["step"]), ckpt.get("best")
        torch.set_rng_state(ckpt["rng"]["torch"])
        log.info("resumed from %s at step %d", last_path, step)
    elif resume:
        log.info("nothing to resume in %s; starting fresh", ckpt_dir)

    # The NaN guard. A checkpoint is written only with finite weights; last.pt's predecessor is kept as
    # previous.pt, because when a loss goes non-finite, last.pt may hold the very weights that produced it
    # (saved after the update that ruined them), and then previous.pt is the last good one.
    previous_path = ckpt_dir / "previous.pt"
    writer = BackgroundWriter()
    saved_steps = (
        [step] if last_path.is_file() and resume else []
    )  # steps of the checkpoints in last.pt's history

    def diverged(reason: str, at: int) -> TrainingDiverged:
        """`at`: the step whose weights gave the non-finite value."""
        writer.wait()
        if dist_info.is_main and saved_steps and saved_steps[-1] == at:  # last.pt holds the failing weights
            saved_steps.pop()
            if previous_path.is_file() and saved_steps:
                os.replace(previous_path, last_path)
            else:
                last_path.unlink(missing_ok=True)
                saved_steps.clear()
        kept = (
            f"the last good checkpoint, of step {saved_steps[-1]}, is kept at {last_path}"
            if saved_steps
            else "no checkpoint with finite weights was written"
        )
        return TrainingDiverged(
            f"{reason} at step {at}; {kept} (a lower optim.lr or optim.grad_clip may help)"
        )

    def save(path: Path, metrics: dict[str, float]) -> None:
        if not torch.stack([p.detach().isfinite().all() for p in module.parameters()]).all():
            raise diverged("the weights became non-finite", step)
        if dist_info.is_main:
            writer.wait()  # the previous write is on disk before last.pt is linked as previous.pt
            if path == last_path and last_path.is_file():
                keep_previous(last_path, previous_path)
            writer.submit(  # copied now, written while training goes on
                path,
                host_copy(
                    {
                        "kind": task.kind,
                        "model": module.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scaler": scaler.state_dict(),
                        "step": step,
                        "epoch": step / steps_per_epoch,
                        "best": best,
                        "metrics": metrics,
                        "config": config,
                        "rng": {"torch": torch.get_rng_state()},
                        **(extra or {}),
                    }
                ),
            )
        if path == last_path:
            saved_steps[:] = [*saved_steps[-1:], step]
        barrier(dist_info)

    metrics_log = MetricsLog(out_dir, step, dist_info.is_main)
    progress = None
    if runtime.progress and dist_info.is_main:
        from tqdm.auto import tqdm

        progress = tqdm(
            total=total, initial=step, desc=task.kind.removeprefix("act3d-"), unit="step", dynamic_ncols=True
        )

    try:
        loader_iter: Iterator | None = None
        last_metrics: dict[str, float] = {}
        # (step, {name: its values over the micro-batches}) since the last flush, read from the device in one go
        window: list[tuple[int, dict[str, list[Metric]]]] = []
        started, window_start, window_samples = time.perf_counter(), time.perf_counter(), 0
        module.train()
        while step < total:
            epoch, within = divmod(step, steps_per_epoch)
            if loader_iter is None or within == 0:
                sampler = EpochSampler(len(dataset), optim.batch_size, runtime.seed, epoch, within, dist_info)
                # DeviceClouds: the epoch's order is copied to the device once, then batches are indexed there
                if isinstance(dataset, DeviceClouds):
                    loader_iter = map(dataset.take, torch.tensor(sampler.indices, device=device).split(micro))
                else:
                    if hasattr(dataset, "set_epoch"):
                        dataset.set_epoch(epoch)
                    loader_iter = iter(
                        DataLoader(
                            dataset,
                            batch_size=micro,
                            sampler=sampler,
                            num_workers=runtime.num_workers,
                            collate_fn=collate,
                            drop_last=True,
                            persistent_workers=False,
                            pin_memory=device.type == "cuda",
                        )
                    )
            lr = cosine_with_warmup(step, total, warmup, optim.lr, optim.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            torch.manual_seed(_step_seed(runtime.seed, step, dist_info.rank))
            optimizer.zero_grad(set_to_none=True)
            values: dict[str, list[Metric]] = {"loss": []}
            for m in range(optim.accum_steps):
                batch = _to_device(next(loader_iter), device)
                sync = (
                    contextlib.nullcontext()
                    if (m == optim.accum_steps - 1 or not dist_info.enabled)
                    else model.no_sync()
                )
                with sync, torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    try:
                        loss, metrics = task.step(model, batch, step)
                    except Exception as err:  # torch.compile compiles at the first calls; it can fail there
                        if model is eager_model:
                            raise
                        log.warning(
                            "torch.compile failed (%s: %s); training goes on without it",
                            type(err).__name__,
                            str(err).splitlines()[0] if str(err) else "",
                        )
                        model = eager_model
                        loss, metrics = task.step(model, batch, step)
                scaler.scale(loss / optim.accum_steps).backward()
                for k, v in {"loss": loss.detach(), **metrics}.items():
                    values.setdefault(k, []).append(v)
            scaler.unscale_(optimizer)
            if optim.step_twice:
                optimizer.step()
            if optim.grad_clip > 0:
                values["grad_norm"] = [nn.utils.clip_grad_norm_(module.parameters(), optim.grad_clip)]
            scaler.step(optimizer)
            scaler.update()
            window.append((step, values))
            step += 1
            window_samples += optim.batch_size
            if progress is not None:
                progress.update(1)
            at_epoch_end = step % steps_per_epoch == 0 or step == total
            saving = bool(runtime.checkpoint_every and step % runtime.checkpoint_every == 0) or at_epoch_end
            if step % runtime.log_every == 0 or saving:  # also before every checkpoint: it must hold no NaN
                rows = _read_window(window)
                for at, row in rows:
                    if not math.isfinite(row["loss"]):
                        raise diverged(f"the loss became {row['loss']}", at)
                averaged = {k: sum(r[k] for _, r in rows) / len(rows) for k in rows[0][1]}
                averaged = mean_across_ranks(averaged, dist_info)
                elapsed = time.perf_counter() - window_start
                last_metrics = {**averaged, "lr": lr, "samples_per_s": window_samples / max(elapsed, 1e-9)}
                metrics_log.add(step, {"epoch": round(step / steps_per_epoch, 4), **last_metrics})
                if progress is not None:
                    progress.set_postfix(
                        loss=f"{averaged['loss']:.4f}", sps=f"{last_metrics['samples_per_s']:.1f}"
                    )
                window, window_start, window_samples = [], time.perf_counter(), 0
            epochs_done = math.ceil(step / steps_per_epoch)
            if at_epoch_end and evaluate is not None and evaluate_every and epochs_done % evaluate_every == 0:
                module.eval()
                scores = mean_across_ranks(evaluate(module), dist_info)
                module.train()
                metrics_log.add(step, scores)
                if best_metric is not None and (best is None or scores[best_metric] > best[best_metric]):
                    best = {**scores, "step": step}
                    save(ckpt_dir / "best.pt", scores)
            if saving:
                save(last_path, last_metrics)
        if progress is not None:
            progress.close()
        metrics_log.close()
        if not last_path.is_file():  # resumed a finished run: nothing was trained, nothing saved yet
            save(last_path, last_metrics)
    finally:
        writer.close()  # every checkpoint on disk before fit returns or raises
    return FitResult(step, time.perf_counter() - started, last_metrics, best, last_path)


def _read_window(window: list[tuple[int, dict[str, list[Metric]]]]) -> list[tuple[int, dict[str, float]]]:
    """The window's values as numbers, with one device-to-host copy: per step, each name's mean over
    its micro-batches (summed as `value / count`, the order of a per-step loop)."""
    tensors = [v for _, values in window for vs in values.values() for v in vs if isinstance(v, torch.Tensor)]
    on_host = iter(torch.stack([t.float().reshape(()) for t in tensors]).tolist() if tensors else [])
    rows = []
    for at, values in window:
        row = {}
        for k, vs in values.items():
            numbers = [next(on_host) if isinstance(v, torch.Tensor) else v for v in vs]
            row[k] = sum(x / len(numbers) for x in numbers)
        rows.append((at, row))
    return rows


def keep_previous(last: Path, previous: Path) -> None:
    """`previous` becomes a second name of `last`'s current file (a hard link; a copy where links fail)."""
    previous.unlink(missing_ok=True)
    try:
        os.link(last, previous)
    except OSError:
        shutil.copy2(last, previous)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch
