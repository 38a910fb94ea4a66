"""The demo report, checked as a person would: rendered in headless Chromium."""

import json
import re
import shutil
import subprocess
from dataclasses import replace

import numpy as np
import pytest

from act3d.demo.compare import arm_measures, compare_arms
from act3d.demo.report import results_table, write_report
from act3d.demo.results import ArmResult, DemoResults, OwnDataResults

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def fake_results() -> DemoResults:
    rng = np.random.default_rng(0)
    arms = []
    for i, (name, label) in enumerate([("act", "ACT"), ("scratch", "no pretraining (scratch)")]):
        accs = [0.7 + 0.01 * i + 0.001 * s for s in range(3)]
        arms.append(
            ArmResult(
                name=name,
                label=label,
                finetune_scan_acc_mean=float(np.mean(accs)),
                finetune_scan_acc_std=float(np.std(accs)),
                finetune_scan_accs=accs,
                finetune_scan_val_acc_mean=0.6,
                finetune_scan_val_accs=[0.6] * 3,
                svm_scan_acc=0.55 + i / 100,
                svm_clean_acc=0.99,
                fewshot={k: {"mean": 0.8, "std": 0.05} for k in ("5w10s", "5w20s", "10w10s", "10w20s")},
                stage2={},
            )
        )
    measures = {
        a.name: arm_measures(
            [[1] * round(100 * v) + [0] * (100 - round(100 * v)) for v in a.finetune_scan_val_accs],
            [[1] * round(100 * v) + [0] * (100 - round(100 * v)) for v in a.finetune_scan_accs],
            None,
            {},
        )
        for a in arms
    }
    return DemoResults(
        quick=True,
        preset="cpu",
        seeds=3,
        overrides=[],
        wall_seconds=123.4,
        torch="x",
        threads=2,
        data="embedded",
        teachers={"pretrained": {"steps": 10, "chamfer_fine_first": 0.4, "chamfer_fine_last": 0.1}},
        arms=arms,
        comparisons=compare_arms(measures, {"act": "ACT", "scratch": "scratch"}),
        timings={"stage1": 1.0},
        confusion_act=(np.eye(3, dtype=int) * 5).tolist(),
        class_names=["a", "b", "c"],
        embedding_act={
            "features": rng.normal(size=(60, 8)).tolist(),
            "labels": (np.arange(60) % 3).tolist(),
            "class_names": ["a", "b", "c"],
        },
        fewshot_folds=10,
    )


def test_report_files_and_numbers(tmp_path):
    results = fake_results()
    page = write_report(tmp_path, results).read_text()
    assert (tmp_path / "report.md").is_file() and (tmp_path / "tsne.png").is_file()
    assert page.count("data:image/png;base64,") >= 2 and "http" not in page.replace("http-equiv", "")
    for row in results_table(results).rows:
        assert row["finetune"] in page
    assert "70.1 ± 0.1" in page  # mean and std of the three seeds, in percent
    # scratch is 1 point ahead on every seed, one cloud in 100: the paired bootstrap's interval holds zero
    behind = next(c for c in results.comparisons if c.measure == "fine-tune test OA")
    assert behind.text.startswith("fine-tune test OA: ACT − scratch: -1.0 points (95% CI -")
    assert "not distinguishable" in behind.text and f"{100 * behind.low:+.1f} to +0.0" in page
    assert (tmp_path / "paired_differences.png").stat().st_size > 1000  # the forest plot
    assert DemoResults.from_dict(json.loads(json.dumps(results.to_dict()))) == results


def test_a_results_json_of_layout_1_reads_its_own_data_under_transfer():
    own = OwnDataResults("mine", "/data/mine", ["a", "b"], {"train": {"a": 1, "b": 1}}, 2, [], [])
    saved = json.loads(json.dumps(replace(fake_results(), own_data=own).to_dict()))
    assert "transfer" not in saved and saved["act3d_demo"] == 2
    saved["transfer"], saved["act3d_demo"] = saved.pop("own_data"), 1  # as layout 1 wrote it
    assert DemoResults.from_dict(saved).own_data == own


@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian package 'chromium'; .ci/run installs it)"
)
def test_report_renders_in_headless_chromium(tmp_path):
    results = fake_results()
    write_report(tmp_path, results)
    (tmp_path / "results.json").write_text(json.dumps(results.to_dict()))
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
    ]
    dom = subprocess.run(
        cmd + ["--dump-dom", (tmp_path / "report.html").as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    shot = tmp_path / "shot.png"
    subprocess.run(
        cmd + [f"--screenshot={shot}", "--window-size=1200,2400", (tmp_path / "report.html").as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000
    # the rendered page holds the results table with the numbers of results.json, and the images
    shown = re.findall(r'<td data-key="finetune">([^<]*)</td>', dom)
    expected = [
        f"{100 * a['finetune_scan_acc_mean']:.1f} ± {100 * a['finetune_scan_acc_std']:.1f}"
        for a in json.loads((tmp_path / "results.json").read_text())["arms"]
    ]
    assert shown == expected
    svm = re.findall(r'<td data-key="svm_scan">([^<]*)</td>', dom)
    assert svm == [f"{100 * a.svm_scan_acc:.1f}" for a in results.arms]
    assert len(re.findall(r"<img [^>]*src=\"data:image/png;base64,", dom)) >= 2
    assert '<table id="results">' in dom


def test_demo_overrides_reach_their_stage_and_the_report(tmp_path):
    from act3d.cli import main
    from act3d.demo.configs import DemoOptions, stage_overrides
    from act3d.stages import PRETRAIN, TEACHER

    opts = DemoOptions(
        tmp_path, quick=False, overrides=("pretrain:optim.epochs=4", "finetune:head_dropout=0")
    )
    assert stage_overrides(opts, PRETRAIN) == ["optim.epochs=4"] and stage_overrides(opts, TEACHER) == []
    assert main(["demo", "--out", str(tmp_path / "x"), "--set", "optim.epochs=4"]) == 2  # no stage named
    results = replace(
        fake_results(), overrides=list(opts.overrides), reused_stages=["stage1-pretrained-teacher"]
    )
    page = write_report(tmp_path, results).read_text()
    assert "changed: pretrain:optim.epochs=4, finetune:head_dropout=0" in page
    assert "reused 1 stage(s) finished earlier" in page


def test_the_demo_plan_counts_only_the_stages_it_will_run(tmp_path):
    """A re-run after a finished demo plans only the new transfer stages (it once planned everything)."""
    from act3d.demo.arms import ARMS
    from act3d.demo.configs import DemoOptions
    from act3d.demo.plan import stages_to_run

    opts = DemoOptions(out=tmp_path, seeds=2)
    assert stages_to_run(opts) == {
        "teachers": 2,
        "students": 3,
        "finetunes": 8,
        "peft": 0,
        "own_data_finetunes": 0,
    }
    finished = ["stage1-pretrained-teacher", "stage1-random-teacher", "stage2-act", "stage2-point-mae"]
    finished += [f"finetune-{a.name}-seed{s}" for a in ARMS for s in range(2)]
    (tmp_path / "done").mkdir()
    for name in finished:
        (tmp_path / "done" / f"{name}.json").write_text('{"seconds": 1, "result": {}}')
    opts.own_data = tmp_path / "prepared"
    assert stages_to_run(opts) == {
        "teachers": 0,
        "students": 1,
        "finetunes": 0,
        "peft": 0,
        "own_data_finetunes": 8,
    }


def test_the_real_demo_runs_end_to_end_at_a_tiny_size(tmp_path):
    """`run_demo` itself, every stage at a tiny size, and its real results in the report (the other report
    tests feed it hand-made ones)."""
    import json

    from act3d.demo.arms import ARMS
    from act3d.demo.configs import DemoOptions
    from act3d.demo.pipeline import run_demo

    tiny = ["optim.max_steps=2", "data.num_points=256", "patching.num_groups=16", "patching.group_size=16"]
    student = ["width=32", "depth=1", "heads=2", "decoder_heads=2", "decoder_depth=1"]
    overrides = [f"{stage}:{o}" for stage in ("teacher", "pretrain", "finetune") for o in tiny]
    overrides += ["teacher:model.transformer.depth=1", "teacher:anneal.steps=2"]
    overrides += [f"{stage}:student.{o}" for stage in ("pretrain", "finetune") for o in student]
    overrides += [
        "finetune:peft.idpt.prompt_layer=0",
        "finetune:peft.idpt.neighbours=8",
    ]  # one block, 16 patches
    opts = DemoOptions(
        out=tmp_path / "demo",
        quick=True,
        seeds=1,
        fewshot_folds=1,
        overrides=tuple(overrides),
        peft=("vpt_deep", "idpt"),
    )
    results = run_demo(opts)
    saved = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert saved == json.loads(json.dumps(results.to_dict())) and DemoResults.from_dict(saved) == results
    assert [a.name for a in results.arms] == [a.name for a in ARMS]
    report = (tmp_path / "demo" / "report.md").read_text()
    for arm in results.arms:
        assert arm.label in report and f"{100 * arm.svm_scan_acc:.1f}" in report
    assert (tmp_path / "demo" / "report.html").stat().st_size > 10_000
    # every pair of arms on every measure, paired by test cloud (SVM) and episode (few-shot, 3 quick folds)
    svm = [c for c in results.comparisons if c.measure == "SVM test OA"]
    assert (svm[0].a, svm[0].b) == ("act", "act-random-teacher") and (svm[0].n, svm[0].unit) == (1, "fit")
    assert svm[0].clouds > 1 and svm[0].method == "paired bootstrap"
    assert any(c.unit == "episode" and c.n == 3 for c in results.comparisons)
    assert "## What this run shows" in report and "Pretrained against random teacher:" in report
    # --peft: the ACT student's full fine-tuning, then each method, paired with it on val and test
    assert [p.method for p in results.peft] == ["full", "vpt_deep", "idpt"]
    full, vpt, idpt = results.peft
    assert full.finetune_scan_accs == results.arms[0].finetune_scan_accs and full.trainable == full.parameters
    assert 0 < vpt.trainable < full.trainable and idpt.seconds_per_step > 0
    assert [(c.a, c.b, c.measure) for c in results.peft_comparisons] == [
        (m, "act", f"fine-tune {s} OA") for m in ("vpt_deep", "idpt") for s in ("val", "test")
    ]
    assert "## Parameter-efficient transfer of the ACT student" in report and f"{idpt.trainable:,}" in report
    assert "ACT + idpt − ACT" in report
    again = run_demo(opts)  # every stage is reused, the same results come back
    assert set(again.reused_stages) >= {"stage1-pretrained-teacher", "stage2-act", "finetune-act-idpt-seed0"}
    assert [a.svm_scan_acc for a in again.arms] == [a.svm_scan_acc for a in results.arms]
