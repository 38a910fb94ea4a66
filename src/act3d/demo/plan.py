"""The demo's plan: how many training stages it still has to run, and how long their steps take here."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import torch

from act3d.config import load_config
from act3d.data.default import default_data_dir
from act3d.data.folders import read_manifest
from act3d.demo.arms import ARMS, student_folder, teacher_folder
from act3d.demo.configs import DemoOptions, stage_overrides, teacher_config
from act3d.demo.stages import Stages
from act3d.train.finetune import FinetuneRunConfig
from act3d.train.stage2 import PretrainRunConfig


def estimate_seconds(opts: DemoOptions) -> dict[str, float]:
    """A plan for the training steps: one optimiser step of each stage's model, timed on the device the run
    will use (the best of three after a warm-up), times the planned step counts. Evaluation, probes and the
    report come on top and are not estimated."""
    from act3d.models.autoencoder import autoencoder_loss
    from act3d.models.student import MaskedPointModel
    from act3d.train.device import resolve_device
    from act3d.train.finetune import build_classifier
    from act3d.train.stage1 import build_autoencoder

    t_cfg = teacher_config("pretrained", opts)
    p_cfg = load_config(
        PretrainRunConfig, "pretrain", opts.preset, overrides=stage_overrides(opts, "pretrain")
    )
    f_cfg = load_config(
        FinetuneRunConfig, "finetune", opts.preset, overrides=stage_overrides(opts, "finetune")
    )
    device = resolve_device(t_cfg.runtime.device)

    def per_step(fn: Callable[[], None]) -> float:
        fn()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        return min(times)

    g = t_cfg.patches
    ae = build_autoencoder(t_cfg).to(device)
    pts = torch.randn(t_cfg.optim.batch_size, t_cfg.data.num_points, 3, device=device)

    def stage1_step():
        p = g.group(pts)
        autoencoder_loss(ae(p, 1.0), p.neighborhood, 0.0)[0].backward()

    student = MaskedPointModel(p_cfg.student, g.group_size, ae.feature_dim).to(device)

    def stage2_step():
        p = g.group(pts[: p_cfg.optim.batch_size])
        mask = student.make_mask(p.center)
        (student(p, mask).sum() + ae.teacher_features(p).sum()).backward()

    clf = build_classifier(f_cfg, [str(i) for i in range(16)]).to(device)
    clouds = torch.randn(f_cfg.optim.batch_size, f_cfg.data.num_points, 3, device=device)

    def finetune_step():
        clf(g.group(clouds)).sum().backward()

    def steps(optim, size: int) -> int:
        total = optim.epochs * (size // optim.batch_size)
        return min(total, optim.max_steps) if optim.max_steps else total

    spec = json.loads((default_data_dir() / "meta.json").read_text())["counts"]
    todo = stages_to_run(opts)
    plan = {}
    if todo["teachers"]:
        s1 = per_step(stage1_step) * steps(t_cfg.optim, spec["pretrain"])
        plan[f"stage I ({todo['teachers']} of 2 teachers, {device})"] = todo["teachers"] * s1
    if todo["students"]:
        s2 = per_step(stage2_step) * steps(p_cfg.optim, spec["pretrain"])
        plan[f"stage II ({todo['students']} of 3 students, {device})"] = todo["students"] * s2
    runs = len(ARMS) * opts.seeds
    if todo["finetunes"] or todo["transfer_finetunes"]:
        per_run = per_step(finetune_step)
        if todo["finetunes"]:
            s3 = per_run * steps(f_cfg.optim, spec["scan_train"])
            plan[f"fine-tuning ({todo['finetunes']} of {runs} arm x seed runs, {device})"] = (
                todo["finetunes"] * s3
            )
        if todo["transfer_finetunes"]:
            counts = read_manifest(opts.transfer_data)["counts"].values()
            train = sum(c["train"] for c in counts) * (1 - f_cfg.val_fraction)
            plan[f"transfer fine-tuning ({todo['transfer_finetunes']} of {runs} runs, {device})"] = (
                todo["transfer_finetunes"] * per_run * steps(f_cfg.optim, int(train))
            )
    return plan


def stages_to_run(opts: DemoOptions) -> dict[str, int]:
    """How many training stages of each kind a run of the demo into `opts.out` still has to run (finished
    ones, with their `done.json`, are reused)."""
    stages = Stages(opts.out)
    seeds = range(opts.seeds)
    transfer = opts.transfer_data is not None
    return {
        "teachers": sum(not stages.finished(teacher_folder(k)) for k in ("pretrained", "random")),
        "students": sum(not stages.finished(student_folder(a)) for a in ARMS if a.target != "none"),
        "finetunes": sum(not stages.finished(f"finetune-{a.name}-seed{s}") for a in ARMS for s in seeds),
        "transfer_finetunes": sum(
            transfer and not stages.finished(f"transfer-finetune-{a.name}-seed{s}")
            for a in ARMS
            for s in seeds
        ),
    }
