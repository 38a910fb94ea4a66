"""Paired differences and their intervals, on fixed data with known answers, and the demo's comparisons."""

import math

import numpy as np
import pytest

from act3d.demo.compare import arm_measures, compare_arms
from act3d.eval.paired import PairedDifference, paired_bootstrap, paired_difference


def test_paired_t_interval_matches_the_textbook_value():
    # differences 1, 2, 3: mean 2, sample std 1, t(0.975, 2) = 4.302653 -> half width 4.302653 / sqrt(3)
    d = paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert d.mean == 2.0 and d.n == 3
    assert d.low == pytest.approx(2 - half, abs=1e-9) and d.high == pytest.approx(2 + half, abs=1e-9)
    assert not d.distinguishable  # the interval (-0.48, 4.48) holds zero


def test_pairing_removes_the_shared_seed_effect():
    # the seeds move both arms together; b is 1 point behind a on every seed: the paired gap is exact
    a = [0.50, 0.60, 0.45, 0.70]
    b = [x - 0.01 for x in a]
    d = paired_difference(a, b)
    assert d.mean == pytest.approx(0.01) and d.high - d.low == pytest.approx(0.0, abs=1e-12)
    assert d.distinguishable
    behind = paired_difference(b, [x + 0.02 for x in b[:3]] + [b[3] + 0.03], "b", "c", unit="seed")
    assert behind.distinguishable and behind.high < 0
    assert behind.text.startswith("b − c: ") and behind.text.endswith(": b behind")


def test_one_unit_has_no_interval_and_mismatched_units_are_refused():
    d = paired_difference([0.7], [0.6], unit="seed")
    assert d.low is None and not d.distinguishable
    assert "(one seed: no interval)" in d.text
    with pytest.raises(ValueError, match="same, non-zero count"):
        paired_difference([0.1, 0.2], [0.1])


def test_the_sentence_says_whether_zero_is_inside_and_the_dict_reads_back():
    d = paired_difference([0.51, 0.49, 0.55], [0.50] * 3, "act", "scratch", "OA", "seed", ("ACT", "scratch"))
    assert d.text.startswith("OA: ACT − scratch: +1.7 points (95% CI") and "not distinguishable" in d.text
    saved = d.to_dict()
    assert saved["distinguishable"] is False and saved["method"] == "paired t" and saved["a"] == "act"
    assert PairedDifference.from_dict(saved) == d


def _outcomes(accuracies: list[float], clouds: int = 100) -> list[list[int]]:
    """Per-cloud 0/1 outcomes per unit with the given accuracies (the first clouds right)."""
    return [[1] * round(a * clouds) + [0] * (clouds - round(a * clouds)) for a in accuracies]


def test_demo_comparisons_pair_seeds_episodes_and_test_clouds():
    fewshot = {"5w10s": {"correct": _outcomes([0.8, 0.9, 0.7], 20)}}
    act = arm_measures(_outcomes([0.5, 0.6]), _outcomes([0.52, 0.61]), [1, 1, 0, 1], fewshot)
    fewshot = {"5w10s": {"correct": _outcomes([0.6, 0.7, 0.5], 20)}}
    scratch = arm_measures(_outcomes([0.4, 0.5]), _outcomes([0.42, 0.51]), [1, 0, 0, 1], fewshot)
    rows = compare_arms({"act": act, "scratch": scratch}, {"act": "ACT", "scratch": "scratch"})
    by_measure = {r.measure: r for r in rows}
    assert set(by_measure) == {"fine-tune val OA", "fine-tune test OA", "SVM test OA", "few-shot 5w10s"}
    assert all((r.a, r.b, r.method) == ("act", "scratch", "paired bootstrap") for r in rows)
    few = by_measure["few-shot 5w10s"]
    assert (few.n, few.clouds, few.unit) == (3, 60, "episode") and few.distinguishable
    assert by_measure["SVM test OA"].mean == pytest.approx(0.25) and by_measure["SVM test OA"].clouds == 4
    assert by_measure["fine-tune test OA"].mean == pytest.approx(0.10)
    assert "over 2 seeds × 100 clouds" in by_measure["fine-tune test OA"].text


def test_one_cloud_of_difference_in_every_seed_is_not_called_distinguishable():
    """Issue 30's case: three seeds that each differ by one validation cloud. Their per-seed differences are
    equal, so a t interval over them has zero width and excludes zero; the clouds beneath say otherwise."""
    a = _outcomes([0.50, 0.55, 0.60])  # the last clouds wrong
    b = [seed[:-1] + [1] for seed in a]  # the same, but right on the last cloud
    t = paired_difference([sum(x) / 100 for x in a], [sum(x) / 100 for x in b])
    assert t.high - t.low == pytest.approx(0.0, abs=1e-12) and t.distinguishable  # what went wrong
    d = paired_bootstrap(a, b, "Point-MAE", "scratch", "fine-tune val OA", "seed")
    assert d.mean == pytest.approx(-0.01) and d.low < 0 <= d.high and not d.distinguishable
    assert "not distinguishable" in d.text
    # two equal differences (two seeds, two clouds each) likewise
    two = paired_bootstrap([[0, 0, 1], [0, 0, 1]], [[1, 1, 1], [1, 1, 1]])
    assert two.low < two.high


def test_the_bootstrap_interval_is_the_textbook_one_where_the_textbook_applies():
    # one unit, 400 clouds, a right on 60%, b on 50%, independent: the mean difference's normal interval is
    # d ± 1.96 sd / sqrt(n); the percentile bootstrap agrees within Monte Carlo error
    rng = np.random.default_rng(0)
    a, b = (rng.random(400) < 0.6).astype(int), (rng.random(400) < 0.5).astype(int)
    d = paired_bootstrap([a.tolist()], [b.tolist()], samples=20000)
    diff = a - b
    half = 1.959964 * diff.std(ddof=1) / np.sqrt(len(diff))
    assert d.mean == pytest.approx(diff.mean())
    assert d.low == pytest.approx(diff.mean() - half, abs=0.006) and d.high == pytest.approx(
        diff.mean() + half, abs=0.006
    )
    # a difference the data hold on every cloud of every seed has the interval [1, 1]
    sure = paired_bootstrap([[1] * 10] * 3, [[0] * 10] * 3)
    assert (sure.low, sure.high) == (1.0, 1.0) and sure.distinguishable
    # seeded: the same inputs give the same interval, bit for bit
    assert paired_bootstrap([a.tolist()], [b.tolist()]) == paired_bootstrap([a.tolist()], [b.tolist()])
    with pytest.raises(ValueError, match="same, non-zero count of clouds"):
        paired_bootstrap([[1, 0]], [[1]])


def test_finetune_and_fewshot_compare_to_an_earlier_run(pretrain_cfg, finetune_cfg, tmp_path, capsys):
    """`--compare-to` pairs two checkpoints' runs by seed (fine-tuning) and by episode (few-shot), and
    refuses a run whose protocol differs, in one line."""
    import json

    import yaml

    from act3d.cli import main
    from act3d.config import to_dict
    from act3d.train.stage2 import pretrain

    pretrain_cfg.optim.max_steps, pretrain_cfg.student.target = 1, "mae"
    students = []
    for seed in (0, 1):
        pretrain_cfg.runtime.seed = seed
        students.append(str(pretrain(pretrain_cfg, tmp_path / f"s2-{seed}").checkpoint))
    finetune_cfg.optim.max_steps = 2
    config = tmp_path / "ft.yaml"
    config.write_text(yaml.safe_dump(to_dict(finetune_cfg)))
    ft = ["finetune", "--config", str(config), "--seeds", "2"]
    assert main([*ft, "--out", str(tmp_path / "scratch")]) == 0
    assert (
        main(
            [
                *ft,
                "--checkpoint",
                students[0],
                "--out",
                str(tmp_path / "a"),
                "--compare-to",
                str(tmp_path / "scratch"),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    paired = summary["paired"]
    assert [p["measure"] for p in paired] == ["val oa", "val macc", "test oa", "test macc"]
    assert all(p["n"] == 2 for p in paired) and set(summary["scores"]["test oa"]) == {"mean", "std"}
    assert json.loads((tmp_path / "a" / "seed1" / "results.json").read_text())["seed"] == 1
    capsys.readouterr()
    changed = [
        *ft,
        "--set",
        "optim.lr=0.5",
        "--out",
        str(tmp_path / "b"),
        "--compare-to",
        str(tmp_path / "a"),
    ]
    assert main(changed) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "differs in optim" in err

    fs = [
        "eval",
        "fewshot",
        "--format",
        "scanobjectnn",
        "--root",
        pretrain_cfg.data.root,
        "--variant",
        "obj_bg",
    ]
    fs += ["--way", "2", "--shot", "1", "--folds", "3"]
    assert main([*fs, "--checkpoint", students[0], "--out", str(tmp_path / "fs0")]) == 0
    assert (
        main(
            [
                *fs,
                "--checkpoint",
                students[1],
                "--out",
                str(tmp_path / "fs1"),
                "--compare-to",
                str(tmp_path / "fs0"),
            ]
        )
        == 0
    )
    row = json.loads((tmp_path / "fs1" / "summary.json").read_text())["paired"][0]
    assert row["measure"] == "2w1s" and row["n"] == 3 and row["method"] == "paired bootstrap"
    assert row["text"].startswith("2w1s: this run − fs0:")


def test_the_sweep_script_pairs_arms_by_seed_and_episode(tmp_path):
    """scripts/sweep_teacher.py's tables from fixed per-seed results (no training): the gaps are the paired
    differences of the arms, and the report, its JSON and its figure are written."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import sweep_teacher

    def arm(svm: float, shift: float) -> dict:
        return {
            "svm_val": svm,
            "fewshot_val": {"5w10s": [0.5 + shift, 0.6 + shift], "10w10s": [0.4 + shift, 0.3 + shift]},
            "finetune_val": svm,
            "pretrain_cpu_minutes": 1.0,
        }

    results = {
        "base": {
            str(s): {
                "act": arm(0.50 + 0.01 * s, 0.1),
                "act-random-teacher": arm(0.45 + 0.01 * s, 0.0),
                "point-mae": arm(0.40 + 0.02 * s, 0.05),
                "scratch": arm(0.30, 0.0),
            }
            for s in range(3)
        }
    }
    lines, rows = sweep_teacher.gap_table(results)
    teacher = next(r for r in rows if r["gap"] == "pretrained − random teacher")
    assert teacher["svm_val"]["mean"] == pytest.approx(0.05) and teacher["svm_val"]["n"] == 3
    assert teacher["fewshot_val:5w10s"]["n"] == 6 and teacher["fewshot_val:5w10s"]["distinguishable"]
    assert teacher["act_pretrain_tflop"] > 1  # the demo recipe's Stage I + II, counted
    sweep_teacher.write_report(results, tmp_path)
    assert (
        "| base |" in (tmp_path / "sweep_tables.md").read_text() and (tmp_path / "sweep_gaps.png").is_file()
    )
    assert json.loads((tmp_path / "sweep_results.json").read_text())["gaps"][0]["point"] == "base"


def test_a_peft_run_compares_to_full_fine_tuning_of_the_same_backbone(
    finetune_cfg, untrained_student, tmp_path, capsys
):
    """`finetune --compare-to` pairs a PEFT method's seeds with full fine-tuning's, though the two recipes
    differ (transfer, its settings, the learning rate), and names what differed; the data must not."""
    import json

    import yaml

    from act3d.cli import main
    from act3d.config import to_dict

    finetune_cfg.optim.max_steps = 2
    finetune_cfg.checkpoint = untrained_student
    config = tmp_path / "ft.yaml"
    config.write_text(yaml.safe_dump(to_dict(finetune_cfg)))
    ft = ["finetune", "--config", str(config), "--seeds", "2"]
    assert main([*ft, "--out", str(tmp_path / "full")]) == 0
    peft = [
        *ft,
        "--set",
        "transfer=vpt_deep",
        "--set",
        "optim.lr=0.01",
        "--compare-to",
        str(tmp_path / "full"),
    ]
    assert main([*peft, "--out", str(tmp_path / "vpt")]) == 0
    paired = json.loads((tmp_path / "vpt" / "summary.json").read_text())["paired"]
    assert [p["measure"] for p in paired] == ["val oa", "val macc", "test oa", "test macc"]
    # the two recipes differ in the method's own settings too: full fine-tuning has none (`peft: null`)
    assert paired[2]["n"] == 2 and paired[2]["differs_in"] == ["optim", "peft", "transfer"]
    capsys.readouterr()
    assert main([*peft, "--set", "data.num_points=48", "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "differs in data" in err and "optim" not in err.split(";")[0]


def test_an_error_is_shown_as_it_is_and_lower_is_ahead():
    from act3d.eval.paired import paired_bootstrap

    d = paired_bootstrap(
        [[2.0, 2.1, 1.9]], [[3.0, 3.2, 2.9]], "ACT", "scratch", "mCE", scale=None, lower_is_better=True
    )
    assert d.text.startswith("mCE: ACT − scratch: -1.033 (95% CI") and d.text.endswith(": ACT ahead")
    assert "points" not in d.text
