"""Cost of one Stage I / Stage II training step: wall time, model FLOPs, achieved FLOP/s as a fraction of
a dense matmul peak measured in the same process, the share of the step spent in point ops, the peak memory,
the number of ATen operators one full step (forward, backward, optimiser) dispatches (the host-side work a
GPU waits on) and, on CUDA, the number of kernels it launches (from the profiler).

    python benchmarks/train_step.py [--presets cpu paper] [--batch 32] [--repeats 3] [--device cpu|cuda]

On CUDA the step runs under the autocast training uses (`--precision bf16` by default) and the peak is a matmul in
that dtype. The peak is the best of measurements taken before and after every row, so a busy moment in the
run does not inflate the fractions.

The teachers are skeletons of the shipped ViT-S/14's architecture (random weights, the same compute), so
the benchmark needs no weight file.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
from timing import median_seconds, training_step  # benchmarks/timing.py
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from act3d.config import load_config
from act3d.models.pretrained import IMGFOCUS_VIT_S14, PretrainedTransformer
from act3d.models.student import MaskedPointModel
from act3d.ops import chamfer_distance, group_patches
from act3d.train.optimizer import make_optimizer
from act3d.train.options import OptimConfig
from act3d.train.stage1 import TeacherRunConfig, TeacherTask, build_autoencoder
from act3d.train.stage2 import PretrainRunConfig, PretrainTask


def matmul_peak(device: str, dtype: torch.dtype) -> float:
    """Dense matmul FLOP/s on this device in `dtype` (the best of a few runs)."""
    n = 8192 if device == "cuda" else 2048
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    seconds = min(median_seconds(lambda: a @ b, device, 5) for _ in range(3))
    return 2 * n**3 / seconds


def kernels_per_call(fn) -> int:
    """CUDA kernels one call of `fn` launches, counted by the profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


class OperatorCounter(TorchDispatchMode):
    """Counts the ATen operators dispatched while active: the host-side work per step that a GPU waits on."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def teacher_model(preset: str):
    cfg = load_config(TeacherRunConfig, "teacher", preset)
    depth = cfg.model.transformer.depth or IMGFOCUS_VIT_S14.depth
    return build_autoencoder(cfg, PretrainedTransformer.skeleton(replace(IMGFOCUS_VIT_S14, depth=depth))), cfg


def stage_task(stage: str, preset: str):
    """(task, model) for one stage at one preset."""
    teacher, teacher_cfg = teacher_model(preset)
    if stage == "stage1":
        return TeacherTask(teacher, teacher_cfg), teacher
    cfg = load_config(PretrainRunConfig, "pretrain", preset)
    teacher.eval().requires_grad_(False)
    model = MaskedPointModel(cfg.student, cfg.patching, teacher.feature_dim)
    return PretrainTask(model, teacher, cfg), model


def point_op_seconds(stage: str, task, points: torch.Tensor, device: str, repeats: int) -> float:
    """Grouping (FPS + kNN + gather), plus for Stage I the two Chamfer terms with their backward."""
    g, k = task.cfg.patching.num_groups, task.cfg.patching.group_size
    seconds = median_seconds(lambda: group_patches(points, g, k), device, repeats)
    if stage == "stage1":
        patches = group_patches(points, g, k).neighborhood.reshape(-1, k, 3)
        coarse = torch.randn(patches.shape[0], k // 4, 3, device=device, requires_grad=True)
        fine = torch.randn(patches.shape[0], k, 3, device=device, requires_grad=True)
        seconds += median_seconds(
            lambda: (
                chamfer_distance(coarse, patches).mean() + chamfer_distance(fine, patches).mean()
            ).backward(),
            device,
            repeats,
        )
    return seconds


def benchmark(stage: str, preset: str, batch: int, device: str, repeats: int, precision: str) -> dict:
    torch.manual_seed(0)
    task, model = stage_task(stage, preset)
    model.to(device).train()
    if stage == "stage2":
        task.teacher.to(device)
    points = torch.randn(batch, task.cfg.data.num_points, 3, device=device)
    points = points / points.norm(dim=-1).amax(dim=1, keepdim=True)[..., None]
    labels = torch.zeros(batch, dtype=torch.long, device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(model, OptimConfig(lr=1e-4))  # as training builds it
    autocast = torch.autocast(
        device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16, enabled=precision != "float32"
    )

    step = training_step(task, model, (points, labels), optimizer, autocast)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = median_seconds(step, device, repeats)
    memory = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    with OperatorCounter() as operators:
        step()
    kernels = kernels_per_call(step) if device == "cuda" else None
    with FlopCounterMode(display=False) as counter:
        with autocast:
            loss, _ = task.step(model, (points, labels), 0)
        loss.backward()
    optimizer.zero_grad(set_to_none=True)
    flops = counter.get_total_flops()
    point_ops = point_op_seconds(stage, task, points, device, repeats)
    return {
        "stage": stage,
        "preset": preset,
        "batch": batch,
        "step_ms": seconds * 1e3,
        "samples_s": batch / seconds,
        "gflop": flops / 1e9,
        "flop_s": flops / seconds,
        "point_ops": point_ops / seconds,
        "trainable_m": sum(p.numel() for p in params) / 1e6,
        "operators": operators.count,
        "kernels": kernels,
        "memory_gib": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["cpu", "paper"])
    parser.add_argument("--stages", nargs="+", default=["stage1", "stage2"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--precision", default=None, choices=["bf16", "fp16", "float32"], help="default: bf16 on cuda"
    )
    args = parser.parse_args()
    precision = args.precision or ("bf16" if args.device == "cuda" else "float32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "float32": torch.float32}[precision]

    peaks = [matmul_peak(args.device, dtype)]
    rows = []
    for preset in args.presets:
        for stage in args.stages:
            rows.append(benchmark(stage, preset, args.batch, args.device, args.repeats, precision))
            peaks.append(matmul_peak(args.device, dtype))
    peak = max(peaks)
    print(
        f"device {torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, precision {precision}; {str(dtype).removeprefix('torch.')} matmul peak "
        f"{peak / 1e9:.0f} GFLOP/s (best of {len(peaks)}: {', '.join(f'{p / 1e9:.0f}' for p in peaks)})"
    )
    print(
        f"{'stage':7} {'preset':6} {'batch':>5} {'step ms':>9} {'samples/s':>9} {'GFLOP':>8} {'GFLOP/s':>8} "
        f"{'of peak':>8} {'point ops':>9} {'trainable':>9} {'ATen ops':>9} {'kernels':>8} {'mem GiB':>8}"
    )
    for r in rows:
        kernels = f"{r['kernels']:8d}" if r["kernels"] is not None else f"{'-':>8}"
        print(
            f"{r['stage']:7} {r['preset']:6} {r['batch']:5d} {r['step_ms']:9.0f} {r['samples_s']:9.1f} "
            f"{r['gflop']:8.1f} {r['flop_s'] / 1e9:8.1f} {r['flop_s'] / peak:8.1%} {r['point_ops']:9.1%} "
            f"{r['trainable_m']:8.2f}M {r['operators']:9d} {kernels} {r['memory_gib']:8.2f}"
        )


if __name__ == "__main__":
    main()
