"""How the cost of a training step grows with points per cloud and with batch size, for Stage II and
fine-tuning. Patches follow the paper's ratio (1k points -> 64 centres, 2k -> 128, 8k -> 512: N / 16
centres of 32 points).

    python benchmarks/scaling.py [--preset cpu|paper] [--points 1024 2048 4096 8192] [--batches 8 16 32 64]
                                 [--out scaling.png] [--device cpu|cuda]

Prints a table (step ms, samples/s, share in grouping) and writes a PNG of both sweeps.
"""

from __future__ import annotations

import argparse

import torch
from timing import median_seconds  # benchmarks/timing.py

from act3d.config import load_config
from act3d.models.classifier import ClassifierHead, PointClassifier
from act3d.models.student import MaskedPointModel, StudentEncoder
from act3d.ops import group_patches
from act3d.train.finetune import ClassifierTask, FinetuneRunConfig
from act3d.train.stage2 import PretrainRunConfig, PretrainTask

GROUP_SIZE = 32
TARGET_DIM = 384  # Stage II regresses teacher features of this width; a stand-in teacher provides them


class _StandInTeacher(torch.nn.Module):
    """Per-patch features of the right shape at negligible cost: the sweep measures the student's step."""

    feature_dim = TARGET_DIM

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, TARGET_DIM)

    def teacher_features(self, patches):
        return self.proj(patches.center)


def make_task(kind: str, preset: str, points: int):
    groups = points // 16
    if kind == "stage2":
        cfg = load_config(
            PretrainRunConfig,
            "pretrain",
            preset,
            overrides=[
                f"data.num_points={points}",
                f"patching.num_groups={groups}",
                f"patching.group_size={GROUP_SIZE}",
            ],
        )
        model = MaskedPointModel(cfg.student, cfg.patching, TARGET_DIM)
        return PretrainTask(model, _StandInTeacher().requires_grad_(False), cfg), model
    ft_preset = "cpu" if preset == "cpu" else "scanobjectnn_pb_t50_rs"
    cfg = load_config(
        FinetuneRunConfig,
        "finetune",
        ft_preset,
        overrides=[
            f"data.num_points={points}",
            f"patching.num_groups={groups}",
            f"patching.group_size={GROUP_SIZE}",
        ],
    )
    if preset == "cpu":
        cfg.student = load_config(PretrainRunConfig, "pretrain", "cpu").student
    model = PointClassifier(StudentEncoder(cfg.student), ClassifierHead(15, cfg.transfer), cfg.patching)
    return ClassifierTask(model, cfg), model


def measure(kind: str, preset: str, points: int, batch: int, device: str, repeats: int) -> dict:
    torch.manual_seed(0)
    task, model = make_task(kind, preset, points)
    model.to(device).train()
    if kind == "stage2":
        task.teacher.to(device)
    clouds = torch.randn(batch, points, 3, device=device)
    clouds = clouds / clouds.norm(dim=-1).amax(dim=1)[:, None, None]
    labels = torch.randint(15, (batch,), device=device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        loss, _ = task.step(model, (clouds, labels), 0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def grouping() -> None:
        group_patches(clouds, points // 16, GROUP_SIZE)

    step_s, group_s = median_seconds(step, device, repeats), median_seconds(grouping, device, repeats)
    return {
        "kind": kind,
        "points": points,
        "batch": batch,
        "step_ms": step_s * 1e3,
        "samples_s": batch / step_s,
        "grouping": group_s / step_s,
    }


def plot(rows: list[dict], base_batch: int, base_points: int, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for kind, label in (("stage2", "Stage II (masked modelling)"), ("finetune", "fine-tuning")):
        by_points = sorted(
            (r for r in rows if r["kind"] == kind and r["batch"] == base_batch), key=lambda r: r["points"]
        )
        by_batch = sorted(
            (r for r in rows if r["kind"] == kind and r["points"] == base_points), key=lambda r: r["batch"]
        )
        axes[0].plot([r["points"] for r in by_points], [r["step_ms"] for r in by_points], "o-", label=label)
        axes[1].plot([r["batch"] for r in by_batch], [r["samples_s"] for r in by_batch], "o-", label=label)
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="points per cloud (centres = N / 16)",
        ylabel="step time (ms)",
        title=f"batch {base_batch}",
    )
    axes[1].set(xscale="log", xlabel="batch size", ylabel="samples / s", title=f"{base_points} points")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu", choices=["cpu", "paper"], help="model sizes")
    parser.add_argument("--points", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--batch", type=int, default=16, help="batch of the points sweep")
    parser.add_argument("--base-points", type=int, default=1024, help="points of the batch sweep")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="scaling.png")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    print(f"device {args.device}, {torch.get_num_threads()} threads, {args.preset} model sizes")
    print(f"{'run':9} {'points':>6} {'batch':>5} {'step ms':>9} {'samples/s':>9} {'grouping':>8}")
    sweep = [(n, args.batch) for n in args.points] + [
        (args.base_points, b) for b in args.batches if b != args.batch
    ]
    rows = []
    for kind in ("stage2", "finetune"):
        for points, batch in sweep:
            r = measure(kind, args.preset, points, batch, args.device, args.repeats)
            rows.append(r)
            print(
                f"{kind:9} {points:6d} {batch:5d} {r['step_ms']:9.0f} {r['samples_s']:9.1f} {r['grouping']:8.1%}",
                flush=True,
            )
    plot(rows, args.batch, args.base_points, args.out)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
