"""Inference speed: clouds/s and peak memory of `embed` (grouping + the student + pooling, as
`act3d.eval.features.extract_features` runs it) for the CPU demo's student and the paper-size student, in
float32 and bf16 (`--precision`, `act3d.models.precision`), at a few batch sizes; and how far bf16's features
are from float32's (relative L2 over the batch).

    python benchmarks/inference.py [--students cpu paper] [--batch 8 32] [--repeats 5] [--device cpu|cuda]

Each row runs in its own process, so its peak resident memory (CPU; on CUDA the peak allocated) is its own.
The students have random weights (the same compute as trained ones), so the benchmark needs no checkpoint.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch
from timing import median_seconds  # benchmarks/timing.py

from act3d.config import load_config
from act3d.eval.features import extract_features
from act3d.models.precision import cpu_has_native_bf16
from act3d.models.student import StudentEncoder
from act3d.train.stage2 import PretrainRunConfig


def measure(student: str, batch: int, precision: str, device: str, repeats: int) -> dict:
    """One row: this process's clouds/s and peak memory for one student, batch size and precision."""
    torch.manual_seed(0)
    cfg = load_config(PretrainRunConfig, "pretrain", student)
    encoder = StudentEncoder(cfg.student).to(device).eval()
    clouds = torch.randn(batch, cfg.data.num_points, 3, device=device)

    def embed(p: str = precision):
        return extract_features(encoder, clouds, cfg.patching, batch_size=batch, precision=p)

    seconds = median_seconds(embed, device, repeats)
    exact, fast = torch.from_numpy(embed("float32")), torch.from_numpy(embed("bf16"))
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "student": student,
        "parameters_m": round(sum(p.numel() for p in encoder.parameters()) / 1e6, 1),
        "points": cfg.data.num_points,
        "batch": batch,
        "precision": precision,
        "clouds_per_s": round(batch / seconds, 1),
        "peak_mib": round(peak),
        "bf16_relative_l2": round(float((fast - exact).norm() / exact.norm()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", nargs="+", default=["cpu", "paper"], help="pretrain presets")
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one row, in a child process
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    if args.row:
        student, batch, precision = args.row.split(",")
        print(json.dumps(measure(student, int(batch), precision, args.device, args.repeats)))
        return
    rows = []
    for student in args.students:
        for batch in args.batch:
            for precision in ("float32", "bf16"):
                child = [sys.executable, __file__, "--row", f"{student},{batch},{precision}"]
                child += ["--device", args.device, "--repeats", str(args.repeats)]
                done = subprocess.run(child, capture_output=True, text=True, check=True)
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    native = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"native bf16: {cpu_has_native_bf16()}"
    )
    print(f"device {args.device} ({native}), {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| student | params (M) | points | batch | precision | clouds/s | peak MiB | bf16 rel. L2 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['student']} | {r['parameters_m']} | {r['points']} | {r['batch']} | {r['precision']} | "
            f"{r['clouds_per_s']} | {r['peak_mib']} | {r['bf16_relative_l2']} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
