"""The demo's plan: how many training stages it still has to run, and how long their steps take here."""

from __future__ import annotations

import copy
import json
import time

import torch

from act3d.data.default import default_data_dir
from act3d.data.folders import read_manifest
from act3d.demo.arms import (
    ARMS,
    TEACHERS,
    TRAINED_ARMS,
    finetune_folder,
    own_data_finetune_folder,
    own_data_peft_folder,
    peft_folder,
    student_folder,
    teacher_folder,
)
from act3d.demo.configs import DemoOptions, stage_config, teacher_config
from act3d.demo.runs import Runs
from act3d.stages import FINETUNE, PRETRAIN


def estimate_seconds(opts: DemoOptions) -> dict[str, float]:
    """A plan for the training steps: one forward and backward pass of each stage's real `Task.step`, timed
    on the device the run will use (the best of three after a warm-up), times the planned step counts.
    Evaluation, probes and the report come on top and are not estimated."""
    from act3d.train.device import resolve_device
    from act3d.train.finetune import ClassifierTask, build_classifier
    from act3d.train.stage1 import TeacherTask, build_autoencoder
    from act3d.train.stage2 import pretrain_task

    t_cfg, p_cfg, f_cfg = (
        teacher_config(TEACHERS[0], opts),
        stage_config(PRETRAIN, opts),
        stage_config(FINETUNE, opts),
    )
    device = resolve_device(t_cfg.runtime.device)

    def per_step(task, batch_size: int, num_points: int) -> float:
        """Seconds of one forward and backward pass of the stage's real `Task.step` (best of three)."""
        task.to(device)
        batch = (
            torch.randn(batch_size, num_points, 3, device=device),
            torch.zeros(batch_size, dtype=torch.long, device=device),
        )
        times = []
        for _ in range(4):  # a warm-up, then three timed
            start = time.perf_counter()
            task.step(task.module, batch, 0)[0].backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        return min(times[1:])

    autoencoder = build_autoencoder(t_cfg)
    stage1 = TeacherTask(autoencoder, t_cfg)
    frozen = copy.deepcopy(autoencoder).train().requires_grad_(False)  # Stage II's: frozen, in train mode
    stage2 = pretrain_task(p_cfg, frozen)
    meta = json.loads((default_data_dir() / "meta.json").read_text())
    finetuning = ClassifierTask(build_classifier(f_cfg, meta["classes"]), f_cfg)

    def steps(optim, size: int) -> int:
        total = optim.epochs * (size // optim.batch_size)
        return min(total, optim.max_steps) if optim.max_steps else total

    spec = meta["counts"]
    todo = stages_to_run(opts)
    plan = {}
    if todo["teachers"]:
        s1 = per_step(stage1, t_cfg.optim.batch_size, t_cfg.data.num_points) * steps(
            t_cfg.optim, spec["pretrain"]
        )
        plan[f"stage I ({todo['teachers']} of {len(TEACHERS)} teachers, {device})"] = todo["teachers"] * s1
    if todo["students"]:
        s2 = per_step(stage2, p_cfg.optim.batch_size, p_cfg.data.num_points) * steps(
            p_cfg.optim, spec["pretrain"]
        )
        plan[f"stage II ({todo['students']} of {len(TRAINED_ARMS)} students, {device})"] = (
            todo["students"] * s2
        )
    runs = len(ARMS) * opts.seeds
    if todo["finetunes"] or todo["own_data_finetunes"] or todo["peft"]:
        per_run = per_step(finetuning, f_cfg.optim.batch_size, f_cfg.data.num_points)
        s3 = per_run * steps(f_cfg.optim, spec["scan_train"])  # one fine-tuning run on the scan split
        if todo["finetunes"]:
            plan[f"fine-tuning ({todo['finetunes']} of {runs} arm x seed runs, {device})"] = (
                todo["finetunes"] * s3
            )
        if todo["peft"]:  # timed as full fine-tuning: the methods cost about as much (benchmarks/peft.py)
            plan[
                f"PEFT fine-tuning ({todo['peft']} of {len(opts.peft) * opts.seeds} method x seed runs, {device})"
            ] = todo["peft"] * s3
        if todo["own_data_finetunes"]:
            counts = read_manifest(opts.own_data)["counts"].values()
            train = sum(c["train"] for c in counts) * (1 - f_cfg.val_fraction)
            own = (len(ARMS) + len(opts.peft)) * opts.seeds  # the arms', then each PEFT method's
            plan[f"fine-tuning on your data ({todo['own_data_finetunes']} of {own} runs, {device})"] = (
                todo["own_data_finetunes"] * per_run * steps(f_cfg.optim, int(train))
            )
    return plan


def stages_to_run(opts: DemoOptions) -> dict[str, int]:
    """How many training stages of each kind a run of the demo into `opts.out` still has to run (finished
    ones, with their record in `done/`, are reused)."""
    runs = Runs(opts.out)
    seeds = range(opts.seeds)
    own_data = opts.own_data is not None
    return {
        "teachers": sum(not runs.finished(teacher_folder(t)) for t in TEACHERS),
        "students": sum(not runs.finished(student_folder(a)) for a in TRAINED_ARMS),
        "finetunes": sum(not runs.finished(finetune_folder(a, s)) for a in ARMS for s in seeds),
        "peft": sum(not runs.finished(peft_folder(m, s)) for m in opts.peft for s in seeds),
        "own_data_finetunes": sum(
            own_data and not runs.finished(own_data_finetune_folder(a, s)) for a in ARMS for s in seeds
        )
        + sum(own_data and not runs.finished(own_data_peft_folder(m, s)) for m in opts.peft for s in seeds),
    }
