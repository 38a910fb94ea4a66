"""Regenerate every table of docs/experiments.md from the code as it is: one command.

    .venv/bin/python scripts/regenerate_experiments.py            # all variants, ~25 min on 2 cores
    .venv/bin/python scripts/regenerate_experiments.py --only demo

Each variant is `act3d demo` with some `--set STAGE:KEY=VALUE` changes, run into runs/experiments/<name>
(finished stages are reused on a re-run; a variant that leaves Stage I alone starts from a copy of the main
run's teachers). The tables, the commit they came from and the machine go to docs/experiments_tables.md.
Variants are compared on the validation split; the test column is read once per fine-tuned model.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "demo": ("the demo as shipped (CPU presets)", []),
    "mask-0.8": (
        "Stage II masks 80% of the patches (the paper's ratio) instead of 60%",
        ["pretrain:student.mask_ratio=0.8"],
    ),
    "teacher-eval": (
        "Stage II targets from the teacher in eval mode instead of the official train mode",
        ["pretrain:teacher_mode=eval"],
    ),
}


def commit() -> str:
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return head + (" (with uncommitted changes)" if dirty else "")


def run_variant(name: str, overrides: list[str], runs: Path) -> dict:
    out = runs / name
    if name != "demo" and not any(o.startswith("teacher:") for o in overrides):
        for teacher in (runs / "demo").glob("stage1-*"):  # the same Stage I: reuse its finished teachers
            record = runs / "demo" / "done" / f"{teacher.name}.json"
            if not (out / teacher.name).exists() and record.is_file():
                shutil.copytree(teacher, out / teacher.name)
                (out / "done").mkdir(parents=True, exist_ok=True)
                shutil.copy(record, out / "done" / record.name)
    cmd = [sys.executable, "-m", "act3d", "demo", "--out", str(out)] + [
        a for o in overrides for a in ("--set", o)
    ]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    return json.loads((out / "results.json").read_text())


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def table(results: dict) -> list[str]:
    lines = [
        "| arm | fine-tune val OA % | fine-tune test OA % | SVM scan % | SVM clean % | 5w10s % | 10w20s % |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in results["arms"]:
        fs = arm["fewshot"]
        lines.append(
            f"| {arm['label']} | {pct(arm['finetune_scan_val_acc_mean'])} | {pct(arm['finetune_scan_acc_mean'])} ± "
            f"{pct(arm['finetune_scan_acc_std'])} | {pct(arm['svm_scan_acc'])} | {pct(arm['svm_clean_acc'])} | "
            f"{pct(fs['5w10s']['mean'])} ± {pct(fs['5w10s']['std'])} | {pct(fs['10w20s']['mean'])} ± "
            f"{pct(fs['10w20s']['std'])} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), help="variants to run (default: all)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "experiments"), help="where the demo runs go")
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "experiments_tables.md"), help="the Markdown file written"
    )
    args = parser.parse_args()
    runs, started, source = Path(args.runs), time.time(), commit()
    import torch

    lines = [
        "# Experiment tables (generated)",
        "",
        f"Written by `scripts/regenerate_experiments.py` from commit {source}, on "
        f"{platform.machine()} with {torch.get_num_threads()} threads, PyTorch {torch.__version__}. "
        "Do not edit by hand: re-run the script. Every fine-tuning checkpoint was selected on a stratified "
        "10% validation split of the scan training set and read the test split once; each row's variants "
        "are compared on validation (the val column), the test column is reported, not used to choose.",
        "",
    ]
    for name in args.only or list(VARIANTS):
        label, overrides = VARIANTS[name]
        results = run_variant(name, overrides, runs)
        reused = ", ".join(results.get("reused_stages", [])) or "none"
        command = "act3d demo" + "".join(f" --set {o}" for o in overrides)
        lines += [
            f"## {name}: {label}",
            "",
            f"`{command}` — wall {results['wall_seconds'] / 60:.1f} min (stages reused from an earlier run: "
            f"{reused}); fine-tuning "
            f"{results['seeds']} seeds, mean ± std; few-shot {results['fewshot_folds']} folds.",
            "",
        ]
        lines += table(results) + [""]
        for arm in results["arms"]:
            s2 = arm["stage2"]
            if "loss_first" in s2:
                lines.append(
                    f"- {arm['label']}: Stage II loss {s2['loss_first']:.3f} → {s2['loss_last']:.3f}"
                )
        lines += [
            "",
            "Paired differences (95% t intervals; the teacher question, then every other one that "
            "excludes zero):",
            "",
        ]
        for c in results.get("comparisons", []):
            if (c["a"], c["b"]) == ("act", "act-random-teacher") or c["distinguishable"]:
                lines.append(f"- {c['text']}")
        lines.append("")
    lines.append(f"All variants: {(time.time() - started) / 60:.1f} min.")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
