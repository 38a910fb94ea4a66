"""`act3d demo`, the main job: the whole ACT story on the embedded default data, on a CPU, in minutes.

Stage I trains a cross-modal teacher around the shipped pretrained ViT-S/14 (and, for the paper's
question, around a randomly initialised ViT of the same shape); Stage II distils each into a 3D student,
beside a Point-MAE-style student and an untrained one (scratch); Stage III measures every arm with the
same budget: a linear SVM probe, few-shot episodes and fine-tuning on the scan-like split; with
`own_data`, the same three on a prepared class-folder dataset of the user's too. Every stage
writes into its own folder and leaves a record in `done/`; re-running reuses finished stages and resumes an
interrupted one from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from act3d.data.dataset import open_source
from act3d.data.default import build_default
from act3d.data.folders import read_manifest
from act3d.demo.arms import (
    ACT,
    ARMS,
    TEACHERS,
    finetune_folder,
    own_data_finetune_folder,
    own_data_peft_folder,
    own_data_probe_folder,
    peft_folder,
    probe_folder,
    student_folder,
    teacher_folder,
)
from act3d.demo.compare import arm_measures, compare_arms, compare_to_full
from act3d.demo.configs import DemoOptions, check_overrides, own_data_config, stage_config
from act3d.demo.plan import estimate_seconds
from act3d.demo.report import write_report
from act3d.demo.results import ArmResult, DemoResults, OwnDataArm, OwnDataResults, PeftResult
from act3d.demo.robustness import fine_tuned_classifiers, robust_stages
from act3d.demo.runs import Runs
from act3d.demo.steps import finetune_stage, own_data_probe_arm, probe_arm, student_stage, teacher_stage
from act3d.environment import environment
from act3d.eval.metrics import mean_std
from act3d.eval.robust import CLEAN_POINTS
from act3d.stages import FINETUNE

log = logging.getLogger(__name__)


def run_demo(opts: DemoOptions) -> DemoResults:
    """Run (or resume) the whole demo into `opts.out`; returns its results, also saved as results.json."""
    check_overrides(opts.overrides)
    out = opts.out
    if opts.own_data is not None:  # refuse a wrong folder before hours of training, not after
        for split in ("train", "test"):
            open_source(own_data_config(opts.own_data, 1), split)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data_dir = build_default()
    plan = estimate_seconds(opts)
    runs = Runs(out)
    reused = runs.finished_count()
    log.info(
        "plan: %.1f min of training steps, timed here (evaluation, probes and the report come on top)%s:",
        sum(plan.values()) / 60,
        f"; {reused} finished stage(s) in {out} are reused, not re-run" if reused else "",
    )
    for step, seconds in plan.items():
        log.info("  %-48s ~%4.0fs", step, seconds)
    teachers = {}
    for teacher in TEACHERS:
        teachers[teacher] = runs.run(teacher_folder(teacher), lambda d, t=teacher: teacher_stage(t, d, opts))
    students = {}
    for arm in ARMS:
        students[arm.name] = runs.run(
            student_folder(arm), lambda d, a=arm: student_stage(a, teachers, d, opts)
        )
    probes, finetunes = {}, {}
    for arm in ARMS:
        probes[arm.name] = runs.run(
            probe_folder(arm),
            lambda d, a=arm: probe_arm(Path(students[a.name]["checkpoint"]), opts.fewshot_folds, opts.quick),
        )
        finetunes[arm.name] = [
            runs.run(
                finetune_folder(arm, seed), lambda d, a=arm, s=seed: finetune_stage(a, students, s, d, opts)
            )
            for seed in range(opts.seeds)
        ]
    peft = {
        method: [
            runs.run(
                peft_folder(method, seed),
                lambda d, m=method, s=seed: finetune_stage(ACT, students, s, d, opts, method=m),
            )
            for seed in range(opts.seeds)
        ]
        for method in opts.peft
    }
    own_data = own_data_stages(runs, students, opts) if opts.own_data is not None else None
    results = collect_results(
        opts, teachers, students, probes, finetunes, runs.timings, time.perf_counter() - started, data_dir
    )
    results.own_data, results.reused_stages = own_data, runs.reused
    if peft:  # the ACT student's full fine-tuning first, then each method on it
        rows = {"full": finetunes[ACT.name], **peft}
        results.peft = [peft_result(method, seeds) for method, seeds in rows.items()]
        results.peft_comparisons = compare_to_full(finetunes[ACT.name], peft)
    if opts.robust:
        classifiers = fine_tuned_classifiers(opts, finetune_folder, peft_folder)
        data = stage_config(FINETUNE, opts).data
        results.robust, results.robust_comparisons = robust_stages(runs, classifiers, data)
    results.wall_seconds = time.perf_counter() - started  # the robustness runs included
    (out / "results.json").write_text(json.dumps(results.to_dict(), indent=2))
    write_report(out, results)
    return results


def peft_result(method: str, seeds: list[dict]) -> PeftResult:
    """A transfer's fine-tuning seeds of the ACT student (`full` or a PEFT method) as a typed result."""
    mean, std = mean_std([r["test_acc"] for r in seeds])
    return PeftResult(
        method=method,
        trainable=seeds[0]["trainable"],
        parameters=seeds[0]["parameters"],
        seconds_per_step=sum(r["seconds_per_step"] for r in seeds) / len(seeds),
        finetune_scan_acc_mean=mean,
        finetune_scan_acc_std=std,
        finetune_scan_accs=[r["test_acc"] for r in seeds],
        finetune_scan_val_acc_mean=mean_std([r["val_acc"] for r in seeds])[0],
    )


def own_data_stages(runs: Runs, students: dict, opts: DemoOptions) -> OwnDataResults:
    """Every arm's student on the user's dataset: SVM probe, few-shot, fine-tuning with `opts.seeds` seeds."""
    root = opts.own_data
    folds = 3 if opts.quick else opts.fewshot_folds
    arms, measures, full = [], {}, []
    for arm in ARMS:
        ckpt = Path(students[arm.name]["checkpoint"])
        probe = runs.run(own_data_probe_folder(arm), lambda d, c=ckpt: own_data_probe_arm(c, root, folds))
        seeds = [
            runs.run(
                own_data_finetune_folder(arm, seed),
                lambda d, a=arm, s=seed: finetune_stage(a, students, s, d, opts, root),
            )
            for seed in range(opts.seeds)
        ]
        full = seeds if arm is ACT else full  # the ACT student's full fine-tuning, what `--peft` compares to
        mean, std = mean_std([r["test_acc"] for r in seeds])
        arms.append(
            OwnDataArm(
                name=arm.name,
                label=arm.label,
                svm_acc=probe["svm"]["test_acc"],
                fewshot={k: {"mean": v["mean"], "std": v["std"]} for k, v in probe["fewshot"].items()},
                finetune_acc_mean=mean,
                finetune_acc_std=std,
                finetune_accs=[r["test_acc"] for r in seeds],
                finetune_val_acc_mean=mean_std([r["val_acc"] for r in seeds])[0],
            )
        )
        measures[arm.name] = arm_measures(
            [r["val_correct"] for r in seeds],
            [r["test_correct"] for r in seeds],
            probe["svm"].get("correct"),
            probe["fewshot"],
        )
    peft = {
        method: [
            runs.run(
                own_data_peft_folder(method, seed),
                lambda d, m=method, s=seed: finetune_stage(ACT, students, s, d, opts, root, method=m),
            )
            for seed in range(opts.seeds)
        ]
        for method in opts.peft
    }
    robust = ([], [])
    if opts.robust:
        classifiers = fine_tuned_classifiers(opts, own_data_finetune_folder, own_data_peft_folder)
        robust = robust_stages(runs, classifiers, own_data_config(root, CLEAN_POINTS))
    manifest = read_manifest(root)
    return OwnDataResults(
        data=str(root),
        source=manifest["source"],
        classes=manifest["classes"],
        counts=manifest["counts"],
        fewshot_folds=folds,
        arms=arms,
        comparisons=compare_arms(measures, {a.name: a.short for a in ARMS}),
        peft=[peft_result(m, seeds) for m, seeds in {"full": full, **peft}.items()] if peft else [],
        peft_comparisons=compare_to_full(full, peft),
        robust=robust[0],
        robust_comparisons=robust[1],
    )


def collect_results(
    opts: DemoOptions,
    teachers: dict,
    students: dict,
    probes: dict,
    finetunes: dict,
    timings: dict,
    seconds: float,
    data_dir: Path,
) -> DemoResults:
    """Every stage's results as the demo's typed results, with the paired comparisons of every arm."""
    arms, measures = [], {}
    for arm in ARMS:
        ft = finetunes[arm.name]
        acc_mean, acc_std = mean_std([r["test_acc"] for r in ft])
        fs = {k: {"mean": v["mean"], "std": v["std"]} for k, v in probes[arm.name]["fewshot"].items()}
        result = ArmResult(
            name=arm.name,
            label=arm.label,
            finetune_scan_acc_mean=acc_mean,
            finetune_scan_acc_std=acc_std,
            finetune_scan_accs=[r["test_acc"] for r in ft],
            finetune_scan_val_acc_mean=mean_std([r["val_acc"] for r in ft])[0],
            finetune_scan_val_accs=[r["val_acc"] for r in ft],
            svm_scan_acc=probes[arm.name]["svm_scan"]["test_acc"],
            svm_clean_acc=probes[arm.name]["svm_clean"]["test_acc"],
            fewshot=fs,
            stage2=students[arm.name],
        )
        arms.append(result)
        measures[arm.name] = arm_measures(
            [r["val_correct"] for r in ft],
            [r["test_correct"] for r in ft],
            probes[arm.name]["svm_scan"].get("correct"),
            probes[arm.name]["fewshot"],
        )
    return DemoResults(
        quick=opts.quick,
        preset=opts.preset,
        seeds=opts.seeds,
        overrides=list(opts.overrides),
        wall_seconds=round(seconds, 1),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        environment=environment(),
        data=str(data_dir),
        teachers=teachers,
        arms=arms,
        comparisons=compare_arms(measures, {a.name: a.short for a in ARMS}),
        timings={k: round(v, 1) for k, v in timings.items()},
        confusion_act=finetunes[ACT.name][0]["confusion"],
        class_names=finetunes[ACT.name][0]["class_names"],
        embedding_act=probes[ACT.name]["embedding"],
        fewshot_folds=3 if opts.quick else opts.fewshot_folds,
    )
