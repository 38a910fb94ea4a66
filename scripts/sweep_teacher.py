"""Where does the pretrained teacher's knowledge reach the student? A budget sweep on the embedded data.

    .venv/bin/python scripts/sweep_teacher.py                 # every point, 3 seeds (~2 h on 2 cores)
    .venv/bin/python scripts/sweep_teacher.py --seeds 1       # a first pass
    .venv/bin/python scripts/sweep_teacher.py --report-only   # tables and figure from what has finished

Each point changes one thing of the demo's CPU recipe: the depth of the shipped ViT-S/14 used as the frozen
Transformer, the Stage I steps, the Stage II steps, the Stage II mask ratio. At each point and seed it trains
the pretrained-ViT and the random-ViT teachers (Stage I), their ACT students and a Point-MAE student (Stage
II), and measures every student, scratch included, on **validation only**: a linear SVM and few-shot
episodes on frozen features (a fixed, stratified 25% of the scan training split held out), and fine-tuning
(its own 10% validation split, seeded by the run's seed). Seed `s` seeds every stage of the point, so the
arms are paired by seed (and by episode for few-shot). Gaps are paired differences with 95% t intervals
(`act3d.eval.paired`).

Every stage runs once into `runs/sweep/...` and leaves a record in `done/` (`act3d.demo.runs.Runs`); a re-run reuses
finished stages, so the sweep can be stopped and resumed, and stages shared by points (the Point-MAE
student of an unchanged Stage II, scratch) run once. The tables and the figure go to
docs/sweep_tables.md and docs/sweep_gaps.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from act3d.data.dataset import DataConfig, open_source, split_validation
from act3d.data.default import build_default
from act3d.demo.arms import ARMS, FEWSHOT_SETTINGS, TEACHERS
from act3d.demo.configs import DemoOptions, stage_overrides, teacher_config
from act3d.demo.runs import Runs
from act3d.demo.steps import finetune_stage, student_stage, teacher_stage
from act3d.eval.paired import paired_difference
from act3d.eval.probe import fewshot, source_features, svm_probe
from act3d.models import zoo
from act3d.stages import PRETRAIN, TEACHER

ROOT = Path(__file__).resolve().parent.parent
PROBE_VAL_FRACTION = 0.25
ARM = {a.name: a for a in ARMS}


@dataclass(frozen=True)
class Point:
    """One setting of the sweep: the demo's CPU recipe with these changes."""

    name: str
    label: str
    depth: int = 3  # blocks of the ViT-S/14 in the teacher
    stage1_epochs: int = 2  # 200 steps at batch 16
    stage2_epochs: int = 2
    mask_ratio: float = 0.6
    changes: dict = field(default_factory=dict)

    def teacher_key(self) -> str:
        return f"depth{self.depth}-s1e{self.stage1_epochs}"

    def stage2_key(self) -> str:
        return f"s2e{self.stage2_epochs}-mask{self.mask_ratio}"

    def overrides(self, seed: int) -> tuple[str, ...]:
        steps1 = self.stage1_epochs * 100
        return (
            f"teacher:model.transformer.depth={self.depth}",
            f"teacher:optim.epochs={self.stage1_epochs}",
            f"teacher:anneal.steps={steps1}",
            f"teacher:runtime.seed={seed}",
            f"pretrain:optim.epochs={self.stage2_epochs}",
            f"pretrain:student.mask_ratio={self.mask_ratio}",
            f"pretrain:runtime.seed={seed}",
        )


POINTS = [
    Point("base", "the demo's recipe (ViT depth 3, 200 + 200 steps, mask 0.6)"),
    Point("depth6", "ViT-S/14 depth 6", depth=6),
    Point("stage1x2", "Stage I 400 steps", stage1_epochs=4),
    Point("stage2x2", "Stage II 400 steps", stage2_epochs=4),
    Point("mask0.8", "mask ratio 0.8", mask_ratio=0.8),
]


def step_gflop(task, batch_size: int, num_points: int) -> float:
    """GFLOP of one training step (forward and backward) of a stage's real `Task.step` on random clouds,
    counted by `torch.utils.flop_counter` (matmuls and convolutions: the work that grows with the budget)."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = (torch.randn(batch_size, num_points, 3), torch.zeros(batch_size, dtype=torch.long))
    with FlopCounterMode(display=False) as counter:
        loss, _ = task.step(task.module, batch, 0)
        loss.backward()
    return counter.get_total_flops() / 1e9


def pretraining_gflop(point: Point) -> dict[str, float]:
    """The pretraining compute of a point's arms: Stage I steps x GFLOP a step, Stage II likewise (ACT's
    step includes the frozen teacher's forward; Point-MAE's does not)."""
    from act3d.train.stage1 import TeacherTask, build_autoencoder
    from act3d.train.stage2 import pretrain_task

    opts = DemoOptions(out=Path("unused"), overrides=point.overrides(0))
    t_cfg = teacher_config("pretrained", opts)
    autoencoder = build_autoencoder(t_cfg)
    stage1 = step_gflop(TeacherTask(autoencoder, t_cfg), t_cfg.optim.batch_size, t_cfg.data.num_points)
    out = {"stage1": stage1 * point.stage1_epochs * 100}
    for target in ("act", "mae"):
        overrides = stage_overrides(opts, PRETRAIN) + [f"student.target={target}"]
        p_cfg = PRETRAIN.load_config("cpu", overrides=overrides)
        teacher = autoencoder.train().requires_grad_(False) if target == "act" else None  # frozen, as loaded
        task = pretrain_task(p_cfg, teacher)
        out[f"stage2_{target}"] = step_gflop(task, p_cfg.optim.batch_size, p_cfg.data.num_points) * (
            point.stage2_epochs * 100
        )
    return out


SHAPENET55_CLOUDS = {"train": 41_952, "train+test": 52_470}


def paper_pretraining_tflop() -> dict[str, float]:
    """The paper presets' pretraining compute on the same count: 300 epochs of Stage I over ShapeNet-55's
    training clouds and 300 of Stage II over train + test, FLOPs per cloud counted at batch 2."""
    from act3d.train.stage1 import TeacherTask, build_autoencoder
    from act3d.train.stage2 import pretrain_task

    t_cfg = TEACHER.load_config("paper")
    p_cfg = PRETRAIN.load_config("paper")
    autoencoder = build_autoencoder(t_cfg)
    per_cloud1 = step_gflop(TeacherTask(autoencoder, t_cfg), 2, t_cfg.data.num_points) / 2
    teacher = autoencoder.train().requires_grad_(False)
    per_cloud2 = step_gflop(pretrain_task(p_cfg, teacher), 2, p_cfg.data.num_points) / 2
    clouds1 = SHAPENET55_CLOUDS[t_cfg.data.pretrain_split] * t_cfg.optim.epochs
    clouds2 = SHAPENET55_CLOUDS[p_cfg.data.pretrain_split] * p_cfg.optim.epochs
    return {"stage1": per_cloud1 * clouds1 / 1000, "stage2": per_cloud2 * clouds2 / 1000}


def probe_on_validation(student_ckpt: Path, folds: int) -> dict:
    """SVM and few-shot on frozen features: fit on 75% of the scan training split, score on the other 25%."""
    encoder, arch = zoo.load_student(student_ckpt)
    data = DataConfig(format="default", variant="scan", num_points=arch["num_points"])
    fit_part, val_part = split_validation(open_source(data, "train"), PROBE_VAL_FRACTION, seed=0)
    patches = zoo.patch_config(arch)
    ftr, ytr = source_features(encoder, patches, fit_part, data.num_points)
    fva, yva = source_features(encoder, patches, val_part, data.num_points)
    return {
        "svm_val": svm_probe(ftr, ytr, fva, yva, int(max(ytr.max(), yva.max())) + 1)["test_acc"],
        "fewshot_val": fewshot(ftr, ytr, fva, yva, FEWSHOT_SETTINGS, folds=folds),
    }


def run_point(point: Point, seed: int, runs: Path, folds: int) -> dict:
    """Every stage of one point and seed (reusing finished ones); returns each arm's validation numbers and
    the CPU seconds of its pretraining."""
    stages = Runs(runs)
    opts = DemoOptions(out=runs, overrides=point.overrides(seed))
    t_dir = f"teachers/{point.teacher_key()}-seed{seed}"
    teachers = {
        teacher: stages.run(f"{t_dir}/{teacher}", lambda d, t=teacher: teacher_stage(t, d, opts))
        for teacher in TEACHERS
    }
    s_dirs = {
        "act": f"students/{point.teacher_key()}-{point.stage2_key()}-seed{seed}/act",
        "act-random-teacher": f"students/{point.teacher_key()}-{point.stage2_key()}-seed{seed}/act-random",
        "point-mae": f"students/{point.stage2_key()}-seed{seed}/point-mae",
        "scratch": f"students/seed{seed}/scratch",
    }
    students, arms = {}, {}
    for name, folder in s_dirs.items():
        arm = ARM[name]
        students[name] = stages.run(folder, lambda d, a=arm: student_stage(a, teachers, d, opts))
        probe = stages.run(
            f"{folder}-probe", lambda d, n=name: probe_on_validation(Path(students[n]["checkpoint"]), folds)
        )
        tuned = stages.run(f"{folder}-finetune", lambda d, a=arm: finetune_stage(a, students, seed, d, opts))
        cost = stages.timings[folder] + (
            stages.timings[f"{t_dir}/{arm.teacher}"] if arm.teacher is not None else 0.0
        )
        arms[name] = {
            "svm_val": probe["svm_val"],
            "fewshot_val": {k: v["folds"] for k, v in probe["fewshot_val"].items()},
            "finetune_val": tuned["val_acc"],
            "pretrain_cpu_minutes": cost * torch.get_num_threads() / 60,
        }
    return arms


GAPS = [
    ("act", "act-random-teacher", "pretrained − random teacher"),
    ("act", "point-mae", "ACT − Point-MAE"),
    ("act", "scratch", "pretrained (ACT) − scratch"),
]
MEASURES = ["svm_val", "fewshot_val:5w10s", "fewshot_val:10w10s", "finetune_val"]


def values(results: dict, point: str, arm: str, measure: str) -> list[float]:
    """One value per paired unit: a seed (SVM, fine-tuning) or a seed × episode (few-shot)."""
    seeds = sorted(results[point], key=int)
    if ":" in measure:
        key, setting = measure.split(":")
        return [v for s in seeds for v in results[point][s][arm][key][setting]]
    return [results[point][s][arm][measure] for s in seeds]


def gap_table(results: dict) -> tuple[list[str], list[dict]]:
    lines = [
        "| point | ACT TFLOP | seeds | gap | " + " | ".join(MEASURES) + " |",
        "|---|---|---|---|" + "---|" * len(MEASURES),
    ]
    flops = {}
    for point in POINTS:
        if point.name in results:
            g = pretraining_gflop(point)
            flops[point.name] = (g["stage1"] + g["stage2_act"]) / 1000
    rows = []
    for point in POINTS:
        if point.name not in results:
            continue
        seeds = len(results[point.name])
        for a, b, label in GAPS:
            cells, row = [], {"point": point.name, "gap": label, "seeds": seeds}
            for m in MEASURES:
                d = paired_difference(
                    values(results, point.name, a, m), values(results, point.name, b, m), a, b, m
                )
                row[m] = d.to_dict()
                ci = "" if d.low is None else f" [{d.low * 100:+.1f}, {d.high * 100:+.1f}]"
                cells.append(
                    f"{'**' if d.distinguishable else ''}{d.mean * 100:+.1f}{ci}"
                    f"{'**' if d.distinguishable else ''}"
                )
            row["act_pretrain_tflop"] = flops[point.name]
            rows.append(row)
            lines.append(
                f"| {point.name} | {flops[point.name]:.1f} | {seeds} | {label} | " + " | ".join(cells) + " |"
            )
    return lines, rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MEASURES), figsize=(4 * len(MEASURES), 3.6), sharey=False)
    for ax, m in zip(axes, MEASURES):
        for gi, (_, _, label) in enumerate(GAPS):
            sel = [r for r in rows if r["gap"] == label]
            x = np.array([r["act_pretrain_tflop"] for r in sel]) * (1 + 0.015 * gi)
            y = np.array([r[m]["mean"] * 100 for r in sel])
            lo = np.array(
                [(r[m]["mean"] - (r[m]["low"] if r[m]["low"] is not None else r[m]["mean"])) for r in sel]
            )
            hi = np.array(
                [((r[m]["high"] if r[m]["high"] is not None else r[m]["mean"]) - r[m]["mean"]) for r in sel]
            )
            ax.errorbar(x, y, yerr=[lo * 100, hi * 100], fmt="o", capsize=3, label=label)
            for xi, yi, r in zip(x, y, sel):
                if gi == 0:
                    ax.annotate(r["point"], (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(m.replace("_val", " (val)").replace(":", " "))
        ax.set_xlabel("ACT pretraining (Stage I + II), TFLOP")
    axes[0].set_ylabel("paired gap, points (95% CI)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def paper_line(rows: list[dict], paper: dict[str, float]) -> str:
    """How far the sweep's budgets are from the paper's, on the same FLOP count."""
    total = paper["stage1"] + paper["stage2"]
    largest = max(r["act_pretrain_tflop"] for r in rows)
    return (
        f"The paper presets' pretraining (Stage I 300 epochs over ShapeNet-55 train, Stage II 300 over train + "
        f"test, the shipped ViT-S/14) counts {total / 1000:,.0f} PFLOP ({paper['stage1'] / 1000:,.0f} + "
        f"{paper['stage2'] / 1000:,.0f}), {total / largest:,.0f} times the largest budget swept here "
        f"({largest:.1f} TFLOP)."
    )


def write_report(results: dict, out: Path) -> None:
    lines, rows = gap_table(results)
    paper = paper_pretraining_tflop()
    words = []
    for point in POINTS:
        if point.name not in results:
            continue
        for m in MEASURES:
            a, b = values(results, point.name, "act", m), values(results, point.name, "act-random-teacher", m)
            unit = "episode" if ":" in m else "seed"
            d = paired_difference(a, b, "pretrained", "random teacher", m, unit)
            words.append(f"- {point.name}, {d.text}")
    text = [
        "# Teacher budget sweep (generated)",
        "",
        f"Written by `scripts/sweep_teacher.py` on {platform.machine()}, "
        f"PyTorch {torch.__version__}. Validation only: SVM and few-shot on a fixed stratified "
        f"{PROBE_VAL_FRACTION:.0%} of the scan training split, fine-tuning on its own 10% split. Each cell: the "
        "paired mean difference in points with its 95% paired t interval (units: seeds; few-shot: seeds × 10 "
        "episodes); **bold** where the interval excludes zero. ACT TFLOP: the ACT arm's pretraining, Stage I + II "
        "steps times the FLOPs of one counted training step (torch.utils.flop_counter).",
        "",
        *lines,
        "",
        paper_line(rows, paper),
        "",
        "![paired gaps against compute](sweep_gaps.png)",
        "",
        "Pretrained − random teacher, point by point (few-shot units: seed × episode):",
        "",
        *words,
        "",
    ]
    (out / "sweep_tables.md").write_text("\n".join(text))
    (out / "sweep_results.json").write_text(
        json.dumps({"raw": results, "gaps": rows, "paper_tflop": paper}, indent=1)
    )
    plot(rows, out / "sweep_gaps.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "sweep")
    p.add_argument("--only", nargs="*", help="point names (default: all)")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--docs", type=Path, default=ROOT / "docs", help="where the table and figure go")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    build_default()
    results_path = args.runs / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if not args.report_only:
        points = [pt for pt in POINTS if not args.only or pt.name in args.only]
        for seed in range(args.seeds):  # seed-major: a stopped sweep has every point at its first seeds
            for point in points:
                results.setdefault(point.name, {})[str(seed)] = run_point(point, seed, args.runs, args.folds)
                args.runs.mkdir(parents=True, exist_ok=True)
                results_path.write_text(json.dumps(results, indent=1))
    write_report(results, args.docs)


if __name__ == "__main__":
    main()
