"""The first thing to run on a GPU: a few real training steps of every stage, at the paper's sizes, through
the same code the commands use, with one line per stage (clouds/s, peak memory, wall time).

    python benchmarks/gpu_smoke.py                       # cuda, paper sizes, bf16
    python benchmarks/gpu_smoke.py --device cpu --tiny   # the same path, tiny models (what the tests run)

Stages: Stage I (frozen ViT-S/14-shaped teacher, random weights, so no weight file is needed), Stage II with
the ACT target and with the Point-MAE target (and, at full size, the ACT target compiled with
`runtime.compile_mode=reduce-overhead`: CUDA graphs), full fine-tuning at 2048 points, linear probing, part
segmentation, the SVM probe's feature extraction; `--demo` adds `act3d demo --quick --preset gpu`. Data: the embedded
default dataset, and a generated ShapeNetPart-layout folder for segmentation. Exit code 1 if any stage fails.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from act3d.config import load_config
from act3d.data.dataset import DataConfig, open_source, stack_clouds
from act3d.eval.features import extract_features
from act3d.models import zoo
from act3d.train.finetune import FinetuneRunConfig, finetune
from act3d.train.segment import SegmentRunConfig, segment
from act3d.train.stage1 import TeacherRunConfig, train_teacher
from act3d.train.stage2 import PretrainRunConfig, pretrain

TINY_STUDENT = [
    "student.width=32",
    "student.depth=3",
    "student.heads=2",
    "student.decoder_heads=2",
    "student.decoder_depth=1",
    "student.embed_hidden=0.125",
]
TINY_TEACHER = [
    "model.tokens_dim=32",
    "model.codebook_size=64",
    "model.embed_hidden=0.125",
    "model.dgcnn_hidden=0.0625",
    "model.decoder_hidden=32",
    "model.fold_hidden=16",
    "model.num_prompts=2",
    "model.transformer.kind=random",
    "model.transformer.width=32",
    "model.transformer.heads=2",
    "model.transformer.random_depth=2",
]


def runtime(args: argparse.Namespace) -> list[str]:
    precision = "float32" if args.device == "cpu" else args.precision
    return [
        f"runtime.device={args.device}",
        f"runtime.precision={precision}",
        "runtime.progress=false",
        f"runtime.log_every={args.steps // 2}",
        f"optim.max_steps={args.steps}",
    ]


def measured(run: Path) -> float:
    """clouds/s of the last logged window (the first window includes warm-up)."""
    rows = [r for r in csv.DictReader(open(run / "metrics.csv")) if r.get("samples_per_s")]
    return float(rows[-1]["samples_per_s"])


def write_shapenetpart(root: Path, shapes: int = 24, points: int = 2048) -> Path:
    """A ShapeNetPart-layout folder of two categories (random part labels: shapes, not accuracy, matter here)."""
    base = root / "shapenetcore_partanno_segmentation_benchmark_v0_normal"
    (base / "train_test_split").mkdir(parents=True)
    cats = {"Airplane": ("02691156", [0, 1, 2, 3]), "Mug": ("03797390", [36, 37])}
    (base / "synsetoffset2category.txt").write_text("".join(f"{c}\t{s}\n" for c, (s, _) in cats.items()))
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        entries = []
        for synset, parts in cats.values():
            (base / synset).mkdir(exist_ok=True)
            for k in range(shapes // 2):
                xyz = rng.normal(size=(points, 3))
                rows = np.concatenate([xyz, xyz, rng.choice(parts, size=(points, 1))], axis=1)
                np.savetxt(base / synset / f"{split}{k}.txt", rows, fmt="%.5f")
                entries.append(f"shape_data/{synset}/{split}{k}")
        (base / "train_test_split" / f"shuffled_{split}_file_list.json").write_text(json.dumps(entries))
    return base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "float32"])
    parser.add_argument("--steps", type=int, default=20, help="optimiser steps per stage (even, >= 4)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and batches (a functional check)")
    parser.add_argument("--demo", action="store_true", help="also run `act3d demo --quick` on the device")
    parser.add_argument("--out", help="JSON file for the table (default: print only)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="act3d-smoke-"))
    cuda = args.device.startswith("cuda")
    preset = "cpu" if args.tiny else "paper"
    tiny_batch = ["optim.batch_size=8"] if args.tiny else []
    default_data = [
        "data.format=default",
        "data.root=null",
        "data.num_points=1024",
        "data.pretrain_split=train",
    ]
    rows: list[dict] = []
    state: dict[str, str] = {}

    def stage(name: str, fn) -> None:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        try:
            clouds_s = fn()
            status = "ok"
        except Exception:  # a smoke test reports every stage, then fails as a whole
            traceback.print_exc()
            clouds_s, status = float("nan"), "FAILED"
        peak = round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None
        rows.append(
            {
                "stage": name,
                "status": status,
                "clouds_per_s": round(clouds_s, 1),
                "peak_mib": peak,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        memory = f"{peak:9d} MiB" if peak is not None else "        - MiB"
        print(
            f"{name:28} {status:6} {clouds_s:10.1f} clouds/s {memory} {rows[-1]['seconds']:7.1f} s",
            flush=True,
        )

    def stage1() -> float:
        over = (
            runtime(args)
            + default_data
            + tiny_batch
            + (
                TINY_TEACHER
                if args.tiny
                else [
                    "model.transformer.kind=random",
                    "model.transformer.width=384",
                    "model.transformer.heads=6",
                    "model.transformer.random_depth=12",
                ]
            )
        )
        cfg = load_config(TeacherRunConfig, "teacher", preset, overrides=over)
        state["teacher"] = str(train_teacher(cfg, work / "s1").checkpoint)
        return measured(work / "s1")

    def stage2(target: str, folder: str, extra: tuple[str, ...] = ()) -> float:
        over = (
            runtime(args)
            + default_data
            + tiny_batch
            + (TINY_STUDENT if args.tiny else [])
            + [f"student.target={target}", f"teacher_checkpoint={state['teacher']}", *extra]
        )
        cfg = load_config(PretrainRunConfig, "pretrain", preset, overrides=over)
        path = str(pretrain(cfg, work / folder).checkpoint)
        state.setdefault(target, path)
        return measured(work / folder)

    def transfer(name: str, transfer_type: str) -> float:
        over = (
            runtime(args)
            + tiny_batch
            + [
                "data.format=default",
                "data.root=null",
                "data.variant=scan",
                f"checkpoint={state['act']}",
                f"transfer={transfer_type}",
            ]
        )
        if not args.tiny:
            over += ["data.num_points=2048", "data.load_points=2048", "patching.num_groups=128"]
        cfg = load_config(
            FinetuneRunConfig, "finetune", "cpu" if args.tiny else "scanobjectnn_pb_t50_rs", overrides=over
        )
        finetune(cfg, work / name)
        return measured(work / name)

    def part_segmentation() -> float:
        root = write_shapenetpart(work / "part", points=2048 if not args.tiny else 256)
        over = runtime(args) + [f"data.root={root}", f"checkpoint={state['act']}", "optim.batch_size=8"]
        if args.tiny:
            over += ["data.num_points=256", "patching.num_groups=16", "propagation=[24,16]", "hidden=[16,16]"]
        cfg = load_config(SegmentRunConfig, "segment", "paper_part", overrides=over)
        segment(cfg, work / "seg")
        return measured(work / "seg")

    def svm_features() -> float:
        encoder, arch = zoo.load_student(state["act"])
        encoder.to(args.device)
        points, _ = stack_clouds(open_source(DataConfig(variant="scan"), "test"), arch["num_points"])
        start = time.perf_counter()
        extract_features(encoder, points, zoo.patch_config(arch))
        return len(points) / (time.perf_counter() - start)

    stage("Stage I (teacher)", stage1)
    stage("Stage II (ACT target)", lambda: stage2("act", "s2-act"))
    stage("Stage II (Point-MAE target)", lambda: stage2("mae", "s2-mae"))
    if (
        not args.tiny
    ):  # CUDA graphs of the compiled student (falls back to eager, with a warning, if it cannot)
        stage(
            "Stage II (ACT, CUDA graphs)",
            lambda: stage2(
                "act", "s2-act-graphs", ("runtime.compile=true", "runtime.compile_mode=reduce-overhead")
            ),
        )
    stage("fine-tuning (full)", lambda: transfer("ft-full", "full"))
    stage("probing (linear)", lambda: transfer("ft-linear", "linear"))
    stage("part segmentation", part_segmentation)
    stage("SVM probe features", svm_features)
    if args.demo:
        from act3d.demo.configs import DemoOptions
        from act3d.demo.pipeline import run_demo

        stage(
            "demo --quick",
            lambda: (
                run_demo(
                    DemoOptions(work / "demo", quick=True, seeds=1, preset="cpu" if args.tiny else "gpu")
                )
                and float("nan")
            ),
        )
    env = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "precision": args.precision if cuda else "float32",
        "tiny": args.tiny,
        "steps": args.steps,
    }
    print(json.dumps(env))
    if args.out:
        Path(args.out).write_text(json.dumps({"env": env, "stages": rows}, indent=2))
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
