"""`act3d demo`: the whole ACT story on the embedded default data, on a CPU, in minutes.

Stage I trains a cross-modal teacher around the shipped pretrained ViT-S/14 (and, for the paper's
question, around a randomly initialised ViT of the same shape); Stage II distils each into a 3D student,
beside a Point-MAE-style student and an untrained one (scratch); Stage III measures every arm with the
same budget: a linear SVM probe, few-shot episodes and fine-tuning on the scan-like split; with
`transfer_data`, the same three on a prepared class-folder dataset of the user's too. Every stage
writes into its own folder and a `done.json`; re-running reuses finished stages and resumes an
interrupted one from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from act3d.config import load_config
from act3d.data.dataset import DataConfig, open_source
from act3d.data.default import build_default, default_data_dir
from act3d.data.folders import read_manifest
from act3d.errors import ConfigError
from act3d.eval.metrics import mean_std
from act3d.eval.probe import fewshot, split_features, svm_probe
from act3d.models import zoo
from act3d.models.teachers import IMGFOCUS_VIT_S14
from act3d.stages import Stages
from act3d.train.finetune import FinetuneRunConfig, finetune
from act3d.train.stage1 import TeacherRunConfig, train_teacher
from act3d.train.stage2 import PretrainRunConfig, pretrain

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    teacher: str | None  # "pretrained" | "random" | None
    target: str  # act | mae | none


ARMS = [
    Arm("act", "ACT (pretrained ViT-S/14 teacher)", "pretrained", "act"),
    Arm("act-random-teacher", "ACT, randomly initialised teacher", "random", "act"),
    Arm("point-mae", "Point-MAE-style target", None, "mae"),
    Arm("scratch", "no pretraining (scratch)", None, "none"),
]
FEWSHOT_SETTINGS = [(5, 10), (5, 20), (10, 10), (10, 20)]


def teacher_folder(kind: str) -> str:
    """The run folder of a Stage I teacher (`pretrained` or `random`) inside the demo's output."""
    return f"stage1-{kind}-teacher"


def student_folder(arm: Arm) -> str:
    """The run folder of an arm's Stage II student inside the demo's output."""
    return f"stage2-{arm.name}"


@dataclass
class DemoOptions:
    out: Path
    quick: bool = False
    seeds: int = 3  # fine-tuning seeds per arm
    fewshot_folds: int = 10
    overrides: tuple[str, ...] = ()  # "teacher:KEY=VALUE", "pretrain:KEY=VALUE" or "finetune:KEY=VALUE"
    transfer_data: Path | None = None  # a prepared class-folder dataset (`act3d data prepare`)
    preset: str = "cpu"  # cpu: minutes on a 2-core CPU; gpu: the paper's model sizes, ~10 minutes on one GPU


STAGE_KINDS = ("teacher", "pretrain", "finetune")


def _overrides(opts: DemoOptions, kind: str) -> list[str]:
    """The changes to the demo preset of one stage kind: the quick run's limits, then the user's."""
    quick = (
        {
            "teacher": ["optim.max_steps=15", "anneal.steps=15"],
            "pretrain": ["optim.max_steps=15"],
            "finetune": ["optim.epochs=1", "optim.max_steps=8"],
        }[kind]
        if opts.quick
        else []
    )
    return quick + [o.split(":", 1)[1] for o in opts.overrides if o.split(":", 1)[0] == kind]


def check_overrides(overrides: tuple[str, ...]) -> None:
    for o in overrides:
        if o.split(":", 1)[0] not in STAGE_KINDS or ":" not in o:
            raise ConfigError(
                f"demo override {o!r} must look like STAGE:KEY=VALUE with STAGE one of {', '.join(STAGE_KINDS)}"
            )


def teacher_config(kind: str, opts: DemoOptions) -> TeacherRunConfig:
    cfg = load_config(TeacherRunConfig, "teacher", opts.preset, overrides=_overrides(opts, "teacher"))
    if kind == "random":
        # the same shape as the shipped ViT-S/14 blocks in use, with random weights
        t = cfg.model.teacher
        vit = IMGFOCUS_VIT_S14
        t.kind, t.width, t.heads, t.layer_scale = "random", vit["width"], vit["heads"], vit["layer_scale"]
        t.random_depth = t.depth or vit["depth"]
        t.depth = None
    return cfg


def estimate_seconds(opts: DemoOptions) -> dict[str, float]:
    """A plan for the training steps: one optimiser step of each stage's model, timed on the device the run
    will use (the best of three after a warm-up), times the planned step counts. Evaluation, probes and the
    report come on top and are not estimated."""
    from act3d.models.autoencoder import autoencoder_loss
    from act3d.models.student import MaskedPointModel
    from act3d.train.finetune import build_classifier
    from act3d.train.loop import resolve_device
    from act3d.train.stage1 import build_autoencoder

    t_cfg = teacher_config("pretrained", opts)
    p_cfg = load_config(PretrainRunConfig, "pretrain", opts.preset, overrides=_overrides(opts, "pretrain"))
    f_cfg = load_config(FinetuneRunConfig, "finetune", opts.preset, overrides=_overrides(opts, "finetune"))
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


def _probe_arm(student_ckpt: Path, folds: int, quick: bool) -> dict:
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


def transfer_data_config(root: Path, num_points: int) -> DataConfig:
    return DataConfig(format="class-folders", root=str(root), num_points=num_points)


def fewshot_settings_for(train_y: np.ndarray, test_y: np.ndarray) -> list[tuple[int, int]]:
    """The demo's few-shot settings that a dataset can fill (enough classes with `shot` training clouds
    and a test cloud)."""

    def classes_with(shot: int) -> int:
        return sum((train_y == c).sum() >= shot and (test_y == c).any() for c in np.unique(train_y))

    return [(w, s) for w, s in FEWSHOT_SETTINGS if classes_with(s) >= w]


def _transfer_probe_arm(student_ckpt: Path, root: Path, folds: int) -> dict:
    """The SVM probe and the few-shot settings that fit, on the user's dataset."""
    encoder, arch = zoo.load_student(student_ckpt)
    data = transfer_data_config(root, arch["num_points"])
    ftr, ytr, fte, yte, names = split_features(encoder, zoo.patch_config(arch), data)
    return {
        "svm": svm_probe(ftr, ytr, fte, yte, len(names)),
        "fewshot": fewshot(ftr, ytr, fte, yte, fewshot_settings_for(ytr, yte), folds=folds),
    }


def run_demo(opts: DemoOptions) -> dict:
    """Run (or resume) the whole demo into `opts.out`; returns the results dict also saved as results.json."""
    from act3d.report import write_report

    check_overrides(opts.overrides)
    out = opts.out
    if opts.transfer_data is not None:  # refuse a wrong folder before hours of training, not after
        for split in ("train", "test"):
            open_source(transfer_data_config(opts.transfer_data, 1), split)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data_dir = build_default()
    plan = estimate_seconds(opts)
    reused = sum(Stages(out).finished(p.name) for p in out.iterdir() if p.is_dir())
    log.info(
        "plan: %.1f min of training steps, timed here (evaluation, probes and the report come on top)%s:",
        sum(plan.values()) / 60,
        f"; {reused} finished stage(s) in {out} are reused, not re-run" if reused else "",
    )
    for step, seconds in plan.items():
        log.info("  %-48s ~%4.0fs", step, seconds)
    stages = Stages(out)
    teachers = {}
    for kind in ("pretrained", "random"):
        teachers[kind] = stages.run(teacher_folder(kind), lambda d, k=kind: _teacher_stage(k, d, opts))
    students = {}
    for arm in ARMS:
        students[arm.name] = stages.run(
            student_folder(arm), lambda d, a=arm: _student_stage(a, teachers, d, opts)
        )
    probes, finetunes = {}, {}
    for arm in ARMS:
        probes[arm.name] = stages.run(
            f"probe-{arm.name}",
            lambda d, a=arm: _probe_arm(Path(students[a.name]["checkpoint"]), opts.fewshot_folds, opts.quick),
        )
        finetunes[arm.name] = [
            stages.run(
                f"finetune-{arm.name}-seed{seed}",
                lambda d, a=arm, s=seed: _finetune_stage(a, students, s, d, opts),
            )
            for seed in range(opts.seeds)
        ]
    transfer = _transfer(stages, students, opts) if opts.transfer_data is not None else None
    results = collect_results(
        opts, teachers, students, probes, finetunes, stages.timings, time.perf_counter() - started, data_dir
    )
    if transfer is not None:
        results["transfer"] = transfer
    results["reused_stages"] = stages.reused
    (out / "results.json").write_text(json.dumps(results, indent=2))
    write_report(out, results)
    return results


def _transfer(stages: Stages, students: dict, opts: DemoOptions) -> dict:
    """Every arm's student on the user's dataset: SVM probe, few-shot, fine-tuning with `opts.seeds` seeds."""
    root = opts.transfer_data
    folds = 3 if opts.quick else opts.fewshot_folds
    arms = []
    for arm in ARMS:
        ckpt = Path(students[arm.name]["checkpoint"])
        probe = stages.run(
            f"transfer-probe-{arm.name}", lambda d, c=ckpt: _transfer_probe_arm(c, root, folds)
        )
        runs = [
            stages.run(
                f"transfer-finetune-{arm.name}-seed{seed}",
                lambda d, a=arm, s=seed: _finetune_stage(
                    a, students, s, d, opts, ["data.format=class-folders", f"data.root={root}"]
                ),
            )
            for seed in range(opts.seeds)
        ]
        mean, std = mean_std([r["test_acc"] for r in runs])
        arms.append(
            {
                "name": arm.name,
                "label": arm.label,
                "svm_acc": probe["svm"]["test_acc"],
                "fewshot": {k: {"mean": v["mean"], "std": v["std"]} for k, v in probe["fewshot"].items()},
                "finetune_acc_mean": mean,
                "finetune_acc_std": std,
                "finetune_accs": [r["test_acc"] for r in runs],
                "finetune_val_acc_mean": mean_std([r["val_acc"] for r in runs])[0],
            }
        )
    manifest = read_manifest(root)
    return {
        "data": str(root),
        "source": manifest["source"],
        "classes": manifest["classes"],
        "counts": manifest["counts"],
        "fewshot_folds": folds,
        "arms": arms,
    }


def _teacher_stage(kind: str, folder: Path, opts: DemoOptions) -> dict:
    cfg = teacher_config(kind, opts)
    result = train_teacher(cfg, folder, resume=True)
    import csv

    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    first, last = rows[0], rows[-1]
    return {
        "checkpoint": str(result.checkpoint),
        "steps": result.steps,
        "chamfer_fine_first": float(first["cd_fine"]),
        "chamfer_fine_last": float(last["cd_fine"]),
        "chamfer_coarse_first": float(first["cd_coarse"]),
        "chamfer_coarse_last": float(last["cd_coarse"]),
    }


def _student_stage(arm: Arm, teachers: dict, folder: Path, opts: DemoOptions) -> dict:
    overrides = _overrides(opts, "pretrain") + [f"student.target={arm.target}"]
    if arm.teacher is not None:
        overrides.append(f"teacher_checkpoint={teachers[arm.teacher]['checkpoint']}")
    cfg = load_config(PretrainRunConfig, "pretrain", opts.preset, overrides=overrides)
    path = pretrain(cfg, folder, resume=True)
    record = {"checkpoint": str(path)}
    metrics = folder / "metrics.csv"
    if metrics.is_file():
        import csv

        with metrics.open() as f:
            rows = list(csv.DictReader(f))
        record.update(loss_first=float(rows[0]["loss"]), loss_last=float(rows[-1]["loss"]))
    return record


def _finetune_stage(
    arm: Arm, students: dict, seed: int, folder: Path, opts: DemoOptions, data: list[str] | None = None
) -> dict:
    overrides = (
        (data or [])
        + _overrides(opts, "finetune")
        + [
            f"runtime.seed={seed}",
            f"checkpoint={students[arm.name]['checkpoint']}",
        ]
    )
    cfg = load_config(FinetuneRunConfig, "finetune", opts.preset, overrides=overrides)
    res = finetune(cfg, folder, resume=True)
    return {
        k: res[k]
        for k in (
            "val_acc",
            "test_acc",
            "test_macc",
            "seed",
            "steps",
            "selected_step",
            "confusion",
            "class_names",
        )
    }


def collect_results(
    opts: DemoOptions,
    teachers: dict,
    students: dict,
    probes: dict,
    finetunes: dict,
    timings: dict,
    seconds: float,
    data_dir: Path,
) -> dict:
    arms = []
    for arm in ARMS:
        ft = finetunes[arm.name]
        acc_mean, acc_std = mean_std([r["test_acc"] for r in ft])
        fs = {k: {"mean": v["mean"], "std": v["std"]} for k, v in probes[arm.name]["fewshot"].items()}
        arms.append(
            {
                "name": arm.name,
                "label": arm.label,
                "finetune_scan_acc_mean": acc_mean,
                "finetune_scan_acc_std": acc_std,
                "finetune_scan_accs": [r["test_acc"] for r in ft],
                "finetune_scan_val_acc_mean": mean_std([r["val_acc"] for r in ft])[0],
                "svm_scan_acc": probes[arm.name]["svm_scan"]["test_acc"],
                "svm_clean_acc": probes[arm.name]["svm_clean"]["test_acc"],
                "fewshot": fs,
                "stage2": students[arm.name],
            }
        )
    return {
        "act3d_demo": 1,
        "quick": opts.quick,
        "preset": opts.preset,
        "seeds": opts.seeds,
        "overrides": list(opts.overrides),
        "wall_seconds": round(seconds, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "data": str(data_dir),
        "teachers": teachers,
        "arms": arms,
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "confusion_act": finetunes["act"][0]["confusion"],
        "class_names": finetunes["act"][0]["class_names"],
        "embedding_act": probes["act"]["embedding"],
        "fewshot_folds": 3 if opts.quick else opts.fewshot_folds,
    }
