"""Cost of one fine-tuning step under each transfer: full fine-tuning, the probes and the PEFT methods, at one
preset's sizes. Wall time (median), the peak memory of the step, the trainable parameters, the multiply-adds
of one cloud's forward pass (what the PEFT papers print as "GFLOPs": 4.76 for ACT at 2048 points) and, for
PointGST, the share of the step its spectral bases take (eigendecompositions of the patch-centre graphs).

    python benchmarks/peft.py [--size paper|cpu] [--batch 8] [--repeats 3] [--device cpu|cuda] [--json FILE]

`--size paper` builds the ScanObjectNN PB_T50_RS presets (22.1M backbone, 2048 points, 128 patches), `cpu`
the demo's CPU presets. Each transfer runs in its own process, so that on CPU its peak resident memory
(`ru_maxrss`) is its own; on CUDA the peak is `max_memory_allocated`. The step is what training runs: the
FPS pool and augmentation of the preset, grouping, forward, backward and AdamW, under bf16 autocast on CUDA.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch
from timing import median_seconds, training_step  # benchmarks/timing.py
from torch.utils.flop_counter import FlopCounterMode

from act3d.config import load_config
from act3d.models.classifier import transfers
from act3d.models.layers import optimized_parameters
from act3d.models.peft.pointgst import spectral_bases
from act3d.train.finetune import ClassifierTask, FinetuneRunConfig, build_classifier
from act3d.train.optimizer import make_optimizer

PRESETS = {"paper": "scanobjectnn_pb_t50_rs", "cpu": "cpu"}


def preset_name(size: str, transfer: str) -> str:
    """The transfer's preset at this size; the CPU presets have no probe variants (`transfer=` on `cpu`)."""
    base = PRESETS[size]
    return (
        base
        if transfer == "full" or (size == "cpu" and transfer in ("linear", "mlp3"))
        else f"{base}_{transfer}"
    )


def measure(size: str, transfer: str, batch: int, device: str, repeats: int) -> dict:
    """One transfer's step, in this process."""
    torch.manual_seed(0)
    cfg = load_config(
        FinetuneRunConfig, "finetune", preset_name(size, transfer), overrides=[f"transfer={transfer}"]
    )
    model = build_classifier(cfg, [str(i) for i in range(15)]).to(device).train()
    task = ClassifierTask(model, cfg)
    points = torch.randn(batch, cfg.data.load_points or cfg.data.num_points, 3, device=device)
    points = points / points.norm(dim=-1).amax(dim=1, keepdim=True)[..., None]
    labels = torch.randint(15, (batch,), device=device)
    optimizer = make_optimizer(model, cfg.optim)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    step = training_step(task, model, (points, labels), optimizer, autocast)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = median_seconds(step, device, repeats)
    if device == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # kilobytes on Linux
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(points[:1, : cfg.data.num_points])
    model.train()
    basis_share = None
    if transfer == "pointgst":
        center = cfg.patching.group(points[:, : cfg.data.num_points]).center
        basis = median_seconds(lambda: spectral_bases(center, cfg.peft.local, "official"), device, repeats)
        basis_share = basis / seconds
    return {
        "transfer": transfer,
        "preset": preset_name(size, transfer),
        "batch": batch,
        "trainable": sum(p.numel() for _, p in optimized_parameters(model)),
        "step_ms": seconds * 1e3,
        "gmacs": counter.get_total_flops() / 2e9,  # per cloud, forward
        "peak_mib": peak_mib,
        "basis_share": basis_share,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="paper", choices=sorted(PRESETS))
    parser.add_argument("--transfers", nargs="+", default=list(transfers()), choices=transfers())
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this transfer, print its row
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.size, args.one, args.batch, args.device, args.repeats)))
        return
    rows = []
    for transfer in args.transfers:
        command = [
            sys.executable,
            __file__,
            "--one",
            transfer,
            "--size",
            args.size,
            "--batch",
            str(args.batch),
        ]
        command += ["--repeats", str(args.repeats), "--device", args.device]
        run = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
    full = next((r for r in rows if r["transfer"] == "full"), rows[0])
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}"
    )
    print(
        f"{'transfer':9} {'trainable':>11} {'GMACs':>6} {'step ms':>9} {'x full':>7} {'peak MiB':>9} {'x full':>7} "
        f"{'basis':>6}"
    )
    for r in rows:
        basis = f"{r['basis_share']:6.1%}" if r["basis_share"] is not None else f"{'-':>6}"
        print(
            f"{r['transfer']:9} {r['trainable']:11,d} {r['gmacs']:6.2f} {r['step_ms']:9.0f} "
            f"{r['step_ms'] / full['step_ms']:7.2f} {r['peak_mib']:9.0f} "
            f"{r['peak_mib'] / full['peak_mib']:7.2f} {basis}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": device, "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
