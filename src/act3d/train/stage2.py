"""Stage II: masked point modelling of the 3D student, distilled from the Stage I teacher (ACT), or with a
Point-MAE target, or not at all (scratch)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch
from torch import nn

from act3d.config import to_dict
from act3d.data.dataset import (
    DataConfig,
    DeviceClouds,
    PointClouds,
    check_points_per_cloud,
)
from act3d.data.transforms import scale_and_translate
from act3d.errors import Act3dError, require
from act3d.models import zoo
from act3d.models.autoencoder import CrossModalAutoencoder
from act3d.models.checkpoint import model_payload, save_checkpoint
from act3d.models.student import (
    MaskedPointModel,
    StudentConfig,
    act_loss,
    center_features,
    mae_loss,
    masked_count,
    select_patches,
)
from act3d.ops.grouping import PatchConfig
from act3d.ops.indexing import gather_points
from act3d.train.metrics_log import Metric
from act3d.train.options import OptimConfig, RuntimeConfig
from act3d.train.run_folder import refuse_held_run, run_files
from act3d.train.stage import StageResult, pretraining_clouds, train

log = logging.getLogger(__name__)
KIND = zoo.STUDENT


@dataclass
class PretrainRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    patching: PatchConfig = field(default_factory=PatchConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    teacher_checkpoint: str | None = None  # Stage I checkpoint; required for the act target
    # The teacher's mode while it makes targets. `train` is what the official code does (it never calls
    # eval() on its dvae_tokenizer): batch statistics in the mini-PointNet's batch norm, prompt dropout on.
    # `eval` gives each cloud a target that depends on that cloud alone (running statistics, no dropout).
    teacher_mode: Literal["train", "eval"] = "train"
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=1e-3, weight_decay=0.05, batch_size=128)
    )
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    gallery: int = 4

    # what a resumed run may change besides optim and runtime (act3d.train.run_folder.resumable)
    RESUMABLE: ClassVar[tuple[str, ...]] = ("gallery",)

    def __post_init__(self) -> None:
        check_points_per_cloud(self.data, self.patching)
        require(
            masked_count(self.student.mask_ratio, self.patching.num_groups) >= 1
            or self.student.target == "none",
            "student.mask_ratio",
            f"a ratio that masks at least one of {self.patching.num_groups} patches",
            self.student.mask_ratio,
        )


class PretrainTask:
    kind = KIND

    def __init__(
        self, model: MaskedPointModel, teacher: CrossModalAutoencoder | None, cfg: PretrainRunConfig
    ):
        self.module, self.teacher, self.cfg = model, teacher, cfg

    def to(self, device: torch.device) -> None:
        self.module.to(device)
        if self.teacher is not None:
            self.teacher.to(device)

    def step(self, model: nn.Module, batch, step: int) -> tuple[torch.Tensor, dict[str, Metric]]:
        points, _ = batch
        patches = self.cfg.patching.group(scale_and_translate(points))
        mask = self.module.make_mask(patches.center)
        pred, masked = model(patches, mask)
        if self.cfg.student.target == "mae":
            return mae_loss(pred, select_patches(patches.neighborhood, masked)), {}
        target = self.teacher.teacher_features(patches)
        if self.cfg.student.center_target:
            target = center_features(target)
        return act_loss(pred, gather_points(target, masked)), {}


def pretrain_task(cfg: PretrainRunConfig, teacher: CrossModalAutoencoder | None) -> PretrainTask:
    """Stage II's task: a fresh student whose head predicts `teacher`'s features (no teacher: the mae and
    none targets), and the loss against them."""
    target_dim = teacher.feature_dim if teacher else None
    return PretrainTask(MaskedPointModel(cfg.student, cfg.patching, target_dim), teacher, cfg)


def pretrain(
    cfg: PretrainRunConfig, out_dir: str | Path, resume: bool = False, overwrite: bool = False
) -> StageResult:
    """Run Stage II; its result names the student checkpoint. The `none` target writes the untrained
    student (0 steps)."""
    out_dir = Path(out_dir)
    refuse_held_run(out_dir, resume, overwrite)
    # the teacher and the data are read before the run folder is touched: a run refused for them leaves
    # nothing behind (and --overwrite has removed nothing)
    torch.manual_seed(cfg.runtime.seed)
    teacher = None
    if cfg.student.target == "act":
        if cfg.teacher_checkpoint is None:
            raise Act3dError(
                "the act target needs teacher_checkpoint: a Stage I checkpoint from `act3d train-teacher`"
            )
        teacher = zoo.load_teacher(cfg.teacher_checkpoint).train(cfg.teacher_mode == "train")
        if teacher.patching.group_size != cfg.patching.group_size:
            raise Act3dError(
                f"{cfg.teacher_checkpoint}: the teacher was trained on patches of "
                f"{teacher.patching.group_size} points, this run uses {cfg.patching.group_size}"
            )
    task = pretrain_task(cfg, teacher)
    model = task.module
    target_dim = teacher.feature_dim if teacher else None
    arch = zoo.student_arch(cfg.student, cfg.patching, target_dim, cfg.data.num_points)
    data = pretraining_clouds(cfg) if cfg.student.target != "none" else None
    with run_files(out_dir, cfg, resume, overwrite) as main:
        log.info(
            "Stage II: target %s, student %.2fM parameters, mask %s %.2f",
            cfg.student.target,
            sum(p.numel() for p in model.encoder.parameters()) / 1e6,
            cfg.student.mask_type,
            cfg.student.mask_ratio,
        )
        if data is None:  # the `none` target: the untrained student
            path = out_dir / "checkpoints" / "last.pt"
            if main:
                save_checkpoint(path, model_payload(KIND, model.state_dict(), 0, to_dict(cfg), arch))
            return StageResult(path, 0, 0.0)
        fitted = train(task, data, cfg, out_dir, resume, arch)
        if main:
            render_masked_inputs(model, data, cfg, out_dir / "masked_inputs.png")
    return StageResult.of(fitted)


@torch.no_grad()
def render_masked_inputs(
    model: MaskedPointModel, data: PointClouds | DeviceClouds, cfg: PretrainRunConfig, path: Path
) -> Path:
    """Input clouds beside their visible patches (what the student sees); for the mae target, also the
    reconstruction of the masked patches."""
    from act3d.viz import render_clouds

    model.eval()
    device = next(model.parameters()).device
    n = min(cfg.gallery, len(data))
    points = torch.stack([data[i * len(data) // n][0] for i in range(n)]).to(device)
    patches = cfg.patching.group(points)
    mask = model.make_mask(patches.center)
    absolute = patches.neighborhood + patches.center.unsqueeze(2)
    predicted = model(patches, mask)[0] if cfg.student.target == "mae" else None  # (n, M, 3K)
    clouds, titles = [], []
    for i in range(n):
        clouds += [points[i].cpu().numpy(), absolute[i][~mask[i]].reshape(-1, 3).cpu().numpy()]
        titles += [f"input {i}", f"visible ({int((~mask[i]).sum())} patches)"]
        if predicted is not None:
            pred = predicted[i].reshape(-1, cfg.patching.group_size, 3) + patches.center[i][
                mask[i]
            ].unsqueeze(1)
            clouds.append(
                torch.cat([absolute[i][~mask[i]].reshape(-1, 3), pred.reshape(-1, 3)]).cpu().numpy()
            )
            titles.append("visible + predicted")
    return render_clouds(clouds, path, titles, ncols=3 if cfg.student.target == "mae" else 4)
