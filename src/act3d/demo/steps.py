"""The work of each demo stage: train a teacher, a student, a fine-tuned classifier; probe a student."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from act3d.api import load_model
from act3d.data.dataset import DataConfig, open_source, stack_clouds
from act3d.demo.arms import FEWSHOT_SETTINGS, Arm
from act3d.demo.configs import DemoOptions, own_data_config, peft_config, stage_config, teacher_config
from act3d.eval.probe import fewshot, split_features, svm_probe
from act3d.eval.robust import CLEAN_POINTS, accuracies, classified_right, corrupted_sets, scores
from act3d.models import zoo
from act3d.models.layers import optimized_parameters
from act3d.stages import FINETUNE, PRETRAIN, TEACHER


def probe_arm(student_ckpt: Path, folds: int, quick: bool) -> dict:
    """SVM probes on both splits; few-shot on the scan split (the clean split saturates: every arm,
    scratch included, separates its classes almost perfectly); the embedding of the clean test split."""
    encoder, arch = zoo.load_student(student_ckpt)
    out = {}
    for variant in ("clean", "scan"):
        data_cfg = DataConfig(format="default", variant=variant, num_points=arch["num_points"])
        ftr, ytr, fte, yte, names = split_features(encoder, zoo.patch_config(arch), data_cfg)
        out[f"svm_{variant}"] = svm_probe(ftr, ytr, fte, yte, len(names))
        if variant == "scan":
            out["fewshot"] = fewshot(ftr, ytr, fte, yte, FEWSHOT_SETTINGS, folds=3 if quick else folds)
        else:
            out["embedding"] = {"features": fte.tolist(), "labels": yte.tolist(), "class_names": names}
    return out


def fewshot_settings_for(train_y: np.ndarray, test_y: np.ndarray) -> list[tuple[int, int]]:
    """The demo's few-shot settings that a dataset can fill (enough classes with `shot` training clouds
    and a test cloud)."""

    def classes_with(shot: int) -> int:
        return sum((train_y == c).sum() >= shot and (test_y == c).any() for c in np.unique(train_y))

    return [(w, s) for w, s in FEWSHOT_SETTINGS if classes_with(s) >= w]


def own_data_probe_arm(student_ckpt: Path, root: Path, folds: int) -> dict:
    """The SVM probe and the few-shot settings that fit, on the user's dataset."""
    encoder, arch = zoo.load_student(student_ckpt)
    data = own_data_config(root, arch["num_points"])
    ftr, ytr, fte, yte, names = split_features(encoder, zoo.patch_config(arch), data)
    return {
        "svm": svm_probe(ftr, ytr, fte, yte, len(names)),
        "fewshot": fewshot(ftr, ytr, fte, yte, fewshot_settings_for(ytr, yte), folds=folds),
    }


def teacher_stage(teacher: str, folder: Path, opts: DemoOptions) -> dict:
    """Train one of the demo's Stage I teachers: its checkpoint, steps, first and last Chamfer distances
    and its loss curve."""
    result = TEACHER.run(teacher_config(teacher, opts), folder, resume=True)
    fine, coarse = result.curve("cd_fine"), result.curve("cd_coarse")
    return {
        "checkpoint": str(result.checkpoint),
        "steps": result.steps,
        "chamfer_fine_first": fine[0][1],
        "chamfer_fine_last": fine[-1][1],
        "chamfer_coarse_first": coarse[0][1],
        "chamfer_coarse_last": coarse[-1][1],
        "loss_curve": result.curve("loss"),
    }


def student_stage(arm: Arm, teachers: dict, folder: Path, opts: DemoOptions) -> dict:
    """Pretrain an arm's Stage II student: its checkpoint and, where it trained, its first and last loss and
    its loss curve."""
    cfg = stage_config(PRETRAIN, opts)
    teacher = teachers[arm.teacher]["checkpoint"] if arm.teacher is not None else cfg.teacher_checkpoint
    cfg = replace(cfg, student=replace(cfg.student, target=arm.target), teacher_checkpoint=teacher)
    result = PRETRAIN.run(cfg, folder, resume=True)
    record = {"checkpoint": str(result.checkpoint)}
    if loss := result.curve("loss"):
        record.update(loss_first=loss[0][1], loss_last=loss[-1][1], loss_curve=loss)
    return record


def finetune_stage(
    arm: Arm,
    students: dict,
    seed: int,
    folder: Path,
    opts: DemoOptions,
    data: Path | None = None,
    method: str | None = None,
) -> dict:
    """Fine-tune an arm's student with `seed`, on the scan split or on the prepared dataset `data`, in full or
    under a PEFT `method`; its scores, parameter counts and seconds per step."""
    cfg = stage_config(FINETUNE, opts) if method is None else peft_config(method, opts)
    data_cfg = cfg.data if data is None else replace(cfg.data, format="class-folders", root=str(data))
    runtime = replace(cfg.runtime, seed=seed)
    cfg = replace(cfg, data=data_cfg, runtime=runtime, checkpoint=students[arm.name]["checkpoint"])
    run = FINETUNE.run(cfg, folder, resume=True)
    res = run.downstream
    model, _ = zoo.load(run.checkpoint, zoo.CLASSIFIER)  # built as trained: its freezing rule applied
    params = list(model.parameters())
    return {
        "trainable": sum(p.numel() for _, p in optimized_parameters(model)),
        "parameters": sum(p.numel() for p in params),
        "seconds_per_step": res.seconds / max(res.steps, 1),
        "val_acc": res.val["oa"],
        "test_acc": res.test["oa"],
        "test_macc": res.test["macc"],
        "seed": res.seed,
        "steps": res.steps,
        "selected_step": res.selected_step,
        "confusion": res.confusion,
        "class_names": res.class_names,
        "val_correct": res.outcomes["val"],
        "test_correct": res.outcomes["test"],
    }


def damaged_test_split(data: DataConfig) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The test split of `data` at ModelNet-C's 1,024 points per cloud, clean and under every corruption and
    level, drawn with seed 0: the same damaged clouds for every classifier the demo scores."""
    source = open_source(replace(data, num_points=CLEAN_POINTS, load_points=0), "test")
    clean, labels = stack_clouds(source, CLEAN_POINTS)
    clean = clean.numpy()
    return {"clean": clean, **corrupted_sets(clean, seed=0)}, labels.numpy()


def robust_step(finetune: Path, damaged: Callable[[], tuple[dict[str, np.ndarray], np.ndarray]]) -> dict:
    """A fine-tuning run's validation-selected classifier on the clean and the damaged clouds: per setting,
    its 1/0 per cloud, and the ModelNet-C scores."""
    checkpoints = finetune / "checkpoints"
    best = checkpoints / "best.pt"
    model = load_model(best if best.is_file() else checkpoints / "last.pt")
    sets, labels = damaged()
    correct = {
        name: classified_right(model.model, clouds, labels, model.device) for name, clouds in sets.items()
    }
    clean_oa, oa = accuracies(correct)
    return {"correct": {k: v.tolist() for k, v in correct.items()}, **scores(oa, clean_oa), "oa": oa}
