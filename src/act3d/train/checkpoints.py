"""A training run's checkpoints and its NaN guard.

`last.pt` is written every `checkpoint_every` steps and at the end of every epoch, `best.pt` whenever the
validation metric improves; each is copied to the host at once and written on a background thread while
training goes on. A checkpoint is written only with finite weights, and `last.pt`'s predecessor is kept as
`previous.pt`: when a loss goes non-finite, `last.pt` may hold the very weights that produced it (saved
after the update that ruined them), and `previous.pt` is then the last good one.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from act3d.errors import Act3dError
from act3d.models.checkpoint import (
    BackgroundWriter,
    host_copy,
    load_checkpoint,
    load_state_strict,
    model_payload,
)
from act3d.train.distributed import DistInfo, barrier

log = logging.getLogger(__name__)


class TrainingDiverged(Act3dError):
    """The loss or the weights became NaN or infinite."""


def keep_previous(last: Path, previous: Path) -> None:
    """`previous` becomes a second name of `last`'s current file (a hard link; a copy where links fail)."""
    previous.unlink(missing_ok=True)
    try:
        os.link(last, previous)
    except OSError:
        shutil.copy2(last, previous)


class RunCheckpoints:
    """The checkpoints of one run in `out_dir / "checkpoints"`: what a resume reads and the guard restores.

    Every checkpoint holds the model, step, the run's config and `arch` (`model_payload`), and the training
    state: optimiser, loss scaler, best validation scores, metrics and the torch RNG state.
    """

    def __init__(
        self,
        out_dir: Path,
        kind: str,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        config: dict[str, Any],
        arch: dict[str, Any],
        dist_info: DistInfo,
        steps_per_epoch: int,
    ):
        self.kind, self.module, self.optimizer, self.scaler = kind, module, optimizer, scaler
        self.config, self.arch, self.dist_info, self.steps_per_epoch = (
            config,
            arch,
            dist_info,
            steps_per_epoch,
        )
        self.last = out_dir / "checkpoints" / "last.pt"
        self.previous = out_dir / "checkpoints" / "previous.pt"
        self.best = out_dir / "checkpoints" / "best.pt"
        self.writer = BackgroundWriter()
        self.saved_steps: list[int] = []  # steps of the checkpoints in last.pt's history

    def restore(self) -> tuple[int, dict[str, float] | None]:
        """Load `last.pt` into the model, optimiser, scaler and RNG: `(step, best scores)`; `(0, None)` if
        there is nothing to resume."""
        if not self.last.is_file():
            log.info("nothing to resume in %s; starting fresh", self.last.parent)
            return 0, None
        ckpt = load_checkpoint(self.last, self.kind)
        load_state_strict(self.module, ckpt["model"], str(self.last))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        step = int(ckpt["step"])
        self.saved_steps = [step]
        log.info("resumed from %s at step %d", self.last, step)
        return step, ckpt.get("best")

    def save(self, path: Path, step: int, best: dict[str, float] | None, metrics: dict[str, float]) -> None:
        """Write `path` (`self.last` or `self.best`) in the background; refuses non-finite weights."""
        if not torch.stack([p.detach().isfinite().all() for p in self.module.parameters()]).all():
            raise self.diverged("the weights became non-finite", step)
        if self.dist_info.is_main:
            self.writer.wait()  # the previous write is on disk before last.pt is linked as previous.pt
            if path == self.last and self.last.is_file():
                keep_previous(self.last, self.previous)
            self.writer.submit(  # copied now, written while training goes on
                path,
                host_copy(
                    model_payload(
                        self.kind,
                        self.module.state_dict(),
                        step,
                        self.config,
                        self.arch,
                        optimizer=self.optimizer.state_dict(),
                        scaler=self.scaler.state_dict(),
                        epoch=step / self.steps_per_epoch,
                        best=best,
                        metrics=metrics,
                        rng={"torch": torch.get_rng_state()},
                    )
                ),
            )
        if path == self.last:
            self.saved_steps[:] = [*self.saved_steps[-1:], step]
        barrier(self.dist_info)

    def diverged(self, reason: str, at: int) -> TrainingDiverged:
        """The error to raise when step `at`'s weights gave a non-finite value; `last.pt` is rolled back to
        the last checkpoint with finite weights first."""
        self.writer.wait()
        steps = self.saved_steps
        if self.dist_info.is_main and steps and steps[-1] == at:  # last.pt holds the failing weights
            steps.pop()
            if self.previous.is_file() and steps:
                os.replace(self.previous, self.last)
            else:
                self.last.unlink(missing_ok=True)
                steps.clear()
        kept = (
            f"the last good checkpoint, of step {steps[-1]}, is kept at {self.last}"
            if steps
            else "no checkpoint with finite weights was written"
        )
        return TrainingDiverged(
            f"{reason} at step {at}; {kept} (a lower optim.lr or optim.grad_clip may help)"
        )

    def close(self) -> None:
        """Every checkpoint on disk before `fit` returns or raises."""
        self.writer.close()
