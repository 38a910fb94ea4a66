"""The GPU smoke script runs every stage through the commands' code; here on CPU with tiny models (what it
measures is for a GPU; this checks that it runs and reports every stage)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    """`python benchmarks/<script> ARGS` from the repository root, its output captured."""
    command = [sys.executable, f"benchmarks/{script}", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_gpu_smoke_script_runs_every_stage_on_cpu(tmp_path):
    out = tmp_path / "smoke.json"
    run = run_script("gpu_smoke.py", "--device", "cpu", "--tiny", "--steps", "4", "--out", str(out))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    stages = json.loads(out.read_text())["stages"]
    assert len(stages) == 7 and all(s["status"] == "ok" and s["clouds_per_s"] > 0 for s in stages), stages


def test_train_step_benchmark_reports_a_row_per_stage(tmp_path):
    run = run_script("train_step.py", "--presets", "cpu", "--batch", "2", "--repeats", "1")
    assert run.returncode == 0, run.stderr[-4000:]
    lines = run.stdout.splitlines()
    assert "matmul peak" in lines[0] and "best of 3" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [r[:2] for r in rows] == [["stage1", "cpu"], ["stage2", "cpu"]]
    assert all(int(r[10]) > 100 for r in rows)  # ATen operators per step, counted


def test_inference_benchmark_reports_both_precisions(tmp_path):
    out = tmp_path / "rows.json"
    run = run_script(
        "inference.py", "--students", "cpu", "--batch", "2", "--repeats", "1", "--json", str(out)
    )
    assert run.returncode == 0, run.stderr[-4000:]
    rows = json.loads(out.read_text())
    assert [r["precision"] for r in rows] == ["float32", "bf16"]
    assert all(r["clouds_per_s"] > 0 and r["peak_mib"] > 0 and 0 < r["bf16_relative_l2"] < 0.1 for r in rows)


def test_peft_benchmark_reports_a_row_per_transfer(tmp_path):
    out = tmp_path / "peft.json"
    transfers = ["--transfers", "full", "idpt", "pointgst"]
    run = run_script(
        "peft.py", "--size", "cpu", "--batch", "2", "--repeats", "1", *transfers, "--json", str(out)
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["transfer"] for r in rows] == ["full", "idpt", "pointgst"]
    assert all(r["step_ms"] > 0 and r["peak_mib"] > 0 and r["gmacs"] > 0 for r in rows)
    assert rows[0]["trainable"] > rows[1]["trainable"] > rows[2]["trainable"]
    assert 0 < rows[2]["basis_share"] < 1 and rows[0]["basis_share"] is None


def test_robustness_benchmark_times_corrupting_and_scoring_every_setting():
    run = run_script("robust.py", "--clouds", "4", "--batch", "4")
    assert run.returncode == 0, run.stderr[-4000:]
    row = json.loads(run.stdout.splitlines()[-1])
    assert row["sets"] == 36 and row["clouds"] == 4 and row["points"] == 1024 and row["total_s"] > 0


def test_detection_benchmark_times_a_scene():
    run = run_script("detection.py", "--scenes", "1", "--points", "4000")
    assert run.returncode == 0, run.stderr[-4000:]
    row = json.loads(run.stdout.splitlines()[-1])
    assert row["forward_s_per_scene"] > 0 and row["parse_and_ap_s_per_scene"] > 0 and row["points"] == 4000
