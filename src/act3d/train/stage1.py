"""Stage I: train the cross-modal teacher (prompt-tuned pretrained Transformer as a 3D dVAE)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from act3d.data.dataset import (
    DataConfig,
    DeviceClouds,
    PointClouds,
    check_points_per_cloud,
)
from act3d.errors import require
from act3d.models import zoo
from act3d.models.autoencoder import AutoencoderConfig, CrossModalAutoencoder, autoencoder_loss
from act3d.models.pretrained import PretrainedTransformer, build_transformer
from act3d.ops.grouping import PatchConfig
from act3d.train.metrics_log import Metric
from act3d.train.options import OptimConfig, RuntimeConfig
from act3d.train.run_folder import refuse_held_run, run_files
from act3d.train.schedule import cosine_anneal
from act3d.train.stage import StageResult, pretraining_clouds, train

log = logging.getLogger(__name__)
KIND = zoo.TEACHER


@dataclass
class AnnealConfig:
    """Gumbel-softmax temperature and KL weight, each along a half cosine over `steps` optimiser steps;
    the KL weight stays 0 for the first `kl_delay` steps (official tools/runner_autoencoder.py,
    `compute_loss` and `get_temp`)."""

    tau_start: float = 1.0
    tau_end: float = 0.0625
    kl_start: float = 0.0
    kl_end: float = 0.1
    kl_delay: int = 10_000
    steps: int = 100_000

    def __post_init__(self) -> None:
        require(
            self.tau_start > 0 and self.tau_end > 0,
            "tau_start / tau_end",
            "temperatures > 0",
            (self.tau_start, self.tau_end),
        )
        require(self.steps >= 1, "steps", "an integer >= 1", self.steps)
        require(self.kl_delay >= 0, "kl_delay", "an integer >= 0", self.kl_delay)


@dataclass
class TeacherRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    patching: PatchConfig = field(default_factory=PatchConfig)
    model: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    anneal: AnnealConfig = field(default_factory=AnnealConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, weight_decay=5e-4, batch_size=64))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    gallery: int = 8  # clouds shown in the reconstruction gallery

    # what a resumed run may change besides optim and runtime (act3d.train.run_folder.resumable)
    RESUMABLE: ClassVar[tuple[str, ...]] = ("gallery",)

    def __post_init__(self) -> None:
        require(
            self.patching.group_size % 4 == 0,
            "patching.group_size",
            "a multiple of 4 (the 2x2 folding grid)",
            self.patching.group_size,
        )
        check_points_per_cloud(self.data, self.patching)


class TeacherTask:
    kind = KIND

    def __init__(self, model: CrossModalAutoencoder, cfg: TeacherRunConfig):
        self.module, self.cfg = model, cfg

    def to(self, device: torch.device) -> None:
        self.module.to(device)

    def step(self, model: nn.Module, batch, step: int) -> tuple[torch.Tensor, dict[str, Metric]]:
        points, _ = batch  # no augmentation: the official autoencoder runner applies none
        patches = self.cfg.patching.group(points)
        a = self.cfg.anneal
        tau = cosine_anneal(step, a.steps, a.tau_start, a.tau_end)
        kl_weight = cosine_anneal(max(0, step - a.kl_delay), a.steps, a.kl_start, a.kl_end)
        loss, metrics = autoencoder_loss(model(patches, tau), patches.neighborhood, kl_weight)
        return loss, {**metrics, "tau": tau, "kl_weight": kl_weight}


def build_autoencoder(
    cfg: TeacherRunConfig, transformer: PretrainedTransformer | None = None
) -> CrossModalAutoencoder:
    """The Stage I model around `transformer` (default: the one `cfg.model.transformer` names)."""
    if transformer is None:
        transformer = build_transformer(cfg.model.transformer)
    return CrossModalAutoencoder(cfg.model, cfg.patching, transformer)


def train_teacher(
    cfg: TeacherRunConfig, out_dir: str | Path, resume: bool = False, overwrite: bool = False
) -> StageResult:
    """Run Stage I; writes config, log, metrics, checkpoints and a reconstruction gallery to `out_dir`."""
    out_dir = Path(out_dir)
    refuse_held_run(out_dir, resume, overwrite)
    # the teacher and the data are read before the run folder is touched: a run refused for them leaves
    # nothing behind (and --overwrite has removed nothing)
    torch.manual_seed(cfg.runtime.seed)
    transformer = build_transformer(cfg.model.transformer)
    model = build_autoencoder(cfg, transformer)
    data = pretraining_clouds(cfg)
    with run_files(out_dir, cfg, resume, overwrite) as main:
        log.info(
            "Stage I: pretrained Transformer %s (%d blocks, width %d), %s tuning, %d prompts; "
            "%.2fM trainable of %.2fM",
            transformer.name,
            transformer.depth,
            transformer.width,
            cfg.model.tuning,
            cfg.model.num_prompts,
            sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6,
            sum(p.numel() for p in model.parameters()) / 1e6,
        )
        # the architecture lets Stage II rebuild the teacher without its original weight file
        arch = zoo.teacher_arch(cfg.model, cfg.patching, transformer)
        fitted = train(TeacherTask(model, cfg), data, cfg, out_dir, resume, arch)
        if main:
            render_reconstructions(model, data, cfg, out_dir / "reconstructions.png")
    return StageResult.of(fitted)


@torch.no_grad()
def render_reconstructions(
    model: CrossModalAutoencoder, data: PointClouds | DeviceClouds, cfg: TeacherRunConfig, path: Path
) -> Path:
    """Input clouds beside their reconstructions (fine points of every patch, moved to its centre)."""
    from act3d.viz import render_clouds

    model.eval()
    device = next(model.parameters()).device
    n = min(cfg.gallery, len(data))
    points = torch.stack([data[i * len(data) // n][0] for i in range(n)]).to(device)
    patches = cfg.patching.group(points)
    out = model(
        patches, cosine_anneal(cfg.anneal.steps, cfg.anneal.steps, cfg.anneal.tau_start, cfg.anneal.tau_end)
    )
    recon = (out.fine + patches.center.unsqueeze(2)).reshape(n, -1, 3)
    clouds, titles = [], []
    for i in range(n):
        clouds += [points[i].cpu().numpy(), recon[i].cpu().numpy()]
        titles += [f"input {i}", f"reconstruction {i}"]
    return render_clouds(clouds, path, titles, ncols=4)
