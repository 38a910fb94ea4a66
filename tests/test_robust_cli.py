"""`act3d eval robust` on the official ModelNet-C file layout and on a dataset it corrupts itself."""

import json

import h5py
import numpy as np
import pytest
import torch
from test_bad_inputs import fails

from act3d.cli import main
from act3d.eval.robust import CORRUPTIONS, SETTINGS, scores
from act3d.train.finetune import finetune


@pytest.fixture
def classifier(finetune_cfg, tmp_path):
    """A tiny classifier (15 classes, patches of 8 x 8) trained for two steps from scratch."""
    finetune_cfg.optim.max_steps = 2
    finetune(finetune_cfg, tmp_path / "ft")
    return {"checkpoint": str(tmp_path / "ft" / "checkpoints" / "last.pt"), "root": finetune_cfg.data.root}


def write_modelnet_c(root, clouds: np.ndarray, labels: np.ndarray) -> None:
    """The files as distributed: clean.h5 and <corruption>_<level>.h5 with `data` and `label (M, 1)`, other
    point counts per file, some files float64."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(["clean", *SETTINGS]):
        n = clouds.shape[1] - (i % 3) * 16  # 96, 80, 64 points
        data = clouds[:, :n] + (0 if name == "clean" else 0.02 * rng.normal(size=(len(clouds), n, 3)))
        with h5py.File(root / f"{name}.h5", "w") as f:
            f.create_dataset("data", data=data if i % 2 else data.astype(np.float32))
            f.create_dataset("label", data=labels[:, None].astype(np.int64))


def _test_clouds(root) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(f"{root}/main_split_nobg/test_objectdataset.h5", "r") as f:
        return np.asarray(f["data"]), np.asarray(f["label"]).astype(np.int64)


def test_the_official_files_are_scored_as_they_are(classifier, tmp_path):
    from act3d.api import load_model

    clouds, labels = _test_clouds(classifier["root"])
    write_modelnet_c(tmp_path / "modelnet_c", clouds, labels)
    out = tmp_path / "robust"
    argv = ["eval", "robust", "--checkpoint", classifier["checkpoint"], "--data", tmp_path / "modelnet_c"]
    assert main([str(a) for a in [*argv, "--out", out, "--no-progress"]]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["official"] and summary["protocol"]["data"] == "ModelNet-C files"
    model = load_model(classifier["checkpoint"]).model
    with h5py.File(tmp_path / "modelnet_c" / "add_local_2.h5", "r") as f:  # fed as stored: 64 points
        logits = model(torch.from_numpy(np.asarray(f["data"], dtype=np.float32)))
    assert summary["oa"]["add_local"][2] == pytest.approx(float((logits.argmax(1).numpy() == labels).mean()))
    assert set(summary["oa"]) == set(CORRUPTIONS) and all(len(v) == 5 for v in summary["oa"].values())
    expected = scores(summary["oa"], summary["clean_oa"])
    assert (summary["mCE"], summary["RmCE"]) == (expected["mCE"], expected["RmCE"])
    assert summary["corruptions"]["jitter"] == expected["corruptions"]["jitter"]
    assert (out / "robustness.png").stat().st_size > 1000 and (out / "corruptions.png").stat().st_size > 1000
    assert summary["environment"]["packages"]["torch"]


def test_a_dataset_is_corrupted_here_repeatably_and_two_runs_pair(classifier, tmp_path):
    base = ["eval", "robust", "--checkpoint", classifier["checkpoint"], "--format", "scanobjectnn"]
    base += ["--root", classifier["root"], "--variant", "obj_bg", "--num-points", "600", "--no-progress"]
    assert main([str(a) for a in [*base, "--seeds", "2", "--out", tmp_path / "a"]]) == 0
    assert (
        main(
            [str(a) for a in [*base, "--seeds", "2", "--out", tmp_path / "b", "--compare-to", tmp_path / "a"]]
        )
        == 0
    )
    a, b = (json.loads((tmp_path / x / "summary.json").read_text()) for x in "ab")
    assert not a["official"] and a["protocol"]["data"] == "scanobjectnn test split corrupted by act3d"
    assert a["oa"] == b["oa"] and [s["seed"] for s in a["per_seed"]] == [0, 1]  # the same damaged clouds
    paired = {p["measure"]: p for p in b["paired"]}
    assert set(paired) == {*CORRUPTIONS, "mCE", "RmCE", "clean"}
    assert paired["mCE"]["mean"] == 0 and paired["mCE"]["n"] == 2 and paired["mCE"]["clouds"] == 2 * 16


def test_bad_inputs_are_one_line_and_write_nothing(classifier, untrained_student, tmp_path, capsys):
    clouds, labels = _test_clouds(classifier["root"])
    write_modelnet_c(tmp_path / "mc", clouds, labels)
    out = tmp_path / "out"
    run = ["eval", "robust", "--checkpoint", classifier["checkpoint"], "--out", out]
    fails(
        capsys,
        ["eval", "robust", "--checkpoint", untrained_student, "--data", tmp_path / "mc", "--out", out],
        "is not a fine-tuned classifier",
    )
    fails(capsys, [*run, "--data", tmp_path / "mc", "--seeds", "2"], "the ModelNet-C files are one draw")
    fails(capsys, [*run, "--data", tmp_path / "nowhere"], "--data", "no such folder")
    fails(capsys, [*run, "--data", "default", "--root", "x"], "either as --data or as --format/--root")
    (tmp_path / "mc" / "rotate_3.h5").unlink()
    fails(capsys, [*run, "--data", tmp_path / "mc"], "missing rotate_3.h5")
    write_modelnet_c(tmp_path / "forty", clouds, labels + 30)  # labels of 40 classes, a 15-class classifier
    fails(capsys, [*run, "--data", tmp_path / "forty"], "label 30 is out of range for 15 classes")
    fails(
        capsys,
        [*run, "--format", "scanobjectnn", "--root", classifier["root"], "--num-points", "300"],
        "dropout_local_4 clouds hold",
    )
    assert not out.exists()


def test_the_demo_scores_every_classifier_once_and_pairs_it_with_act(classifier, tmp_path):
    import shutil
    from dataclasses import replace

    from test_report import fake_results

    from act3d.data.dataset import DataConfig
    from act3d.demo.report import write_report
    from act3d.demo.results import DemoResults
    from act3d.demo.robustness import robust_stages
    from act3d.demo.runs import Runs

    runs = Runs(tmp_path / "demo")
    for name in ("finetune-a", "finetune-b"):  # two arms' fine-tuning runs holding the same classifier
        shutil.copytree(tmp_path / "ft", runs.out / name)
    classifiers = {"act": ("ACT", ["finetune-a"]), "scratch": ("scratch", ["finetune-b"])}
    data = DataConfig(format="scanobjectnn", root=classifier["root"], variant="obj_bg")
    rows, comparisons = robust_stages(runs, classifiers, data)
    assert [r.name for r in rows] == ["act", "scratch"] and rows[0].mce_mean == rows[1].mce_mean > 0
    assert set(rows[0].oa) == set(CORRUPTIONS) and rows[0].mces == [rows[0].mce_mean]
    assert [(c.measure, c.mean, c.clouds) for c in comparisons] == [
        ("robustness mCE", 0.0, 16),
        ("robustness RmCE", 0.0, 16),
    ]
    assert "points" not in comparisons[0].text and "+0.000" in comparisons[0].text  # an mCE, as it is
    record = json.loads((runs.out / "done" / "robust-finetune-a.json").read_text())["result"]
    assert set(record["correct"]) == {"clean", *SETTINGS} and len(record["correct"]["add_local_4"]) == 16
    again = Runs(runs.out)
    assert robust_stages(again, classifiers, data) == (rows, comparisons) and len(again.reused) == 2
    results = replace(fake_results(), robust=rows, robust_comparisons=comparisons)
    assert DemoResults.from_dict(json.loads(json.dumps(results.to_dict()))) == results
    page = write_report(tmp_path, results)
    html = page.read_text()
    assert '<table id="robust">' in html and '<table id="robust-paired">' in html and "mCE" in html
