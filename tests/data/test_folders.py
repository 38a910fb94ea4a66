"""Class-folder datasets: `act3d data prepare` on small real-format files, the reader, the cache, the
few-shot writer, and every command reading the result."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from act3d.cli import main
from act3d.data.dataset import DataConfig, open_source
from act3d.data.folders import (
    ClassFolders,
    PrepareOptions,
    farthest_point_order,
    prepare_class_folder,
    scan_source,
)
from act3d.errors import DataError
from act3d.ops.fps import farthest_point_sampling

CUBE = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)]
QUADS = ["4 0 1 2 3", "4 4 5 6 7", "4 0 1 5 4", "4 2 3 7 6", "4 1 2 6 5", "4 0 3 7 4"]


def box_off(size=(1, 1, 1), quirk: str = "plain") -> str:
    """A box as a Princeton-style OFF file with one of its quirks."""
    verts = "\n".join(" ".join(str(c * s) for c, s in zip(v, size)) for v in CUBE)
    faces = "\n".join(q + (" 255 0 0" if quirk == "colours" else "") for q in QUADS)
    header = {"run-on": "OFF8 6 0", "comments": "OFF\n# exported\n8 6 0\n# vertices"}.get(quirk, "OFF\n8 6 0")
    return f"{header}\n{verts}\n{faces}\n"


def write_modelnet_layout(root):
    """2 classes in the Princeton layout: tall boxes (every OFF quirk) and flat slabs (OFF, .npy and .txt
    clouds), a broken, an empty and a zero-area mesh, and a stray file."""
    quirks = ["run-on", "comments", "colours", "plain"]
    for split, n in (("train", 4), ("test", 2)):
        (root / "tall" / split).mkdir(parents=True)
        (root / "slab" / split).mkdir(parents=True)
        for i in range(n):
            (root / "tall" / split / f"tall_{i}.off").write_text(box_off((1, 1, 3 + i), quirks[i % 4]))
        (root / "slab" / split / "slab_0.off").write_text(box_off((3, 3, 0.2), "run-on"))
        rng = np.random.default_rng(len(split))
        np.save(root / "slab" / split / "slab_1.npy", rng.uniform([-3, -3, 0], [3, 3, 0.2], (3000, 3)))
        np.savetxt(
            root / "slab" / split / "slab_2.txt",
            rng.uniform([-3, -3, 0, -1, -1, -1], [3, 3, 0.2, 1, 1, 1], (300, 6)),
            delimiter=",",
        )
    (root / "slab" / "train" / "broken.off").write_text("OFF\n8 6 0\n0 0 0\n1 2\n")
    (root / "slab" / "train" / "empty.obj").write_text("")
    (root / "tall" / "train" / "flat.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")
    (root / "tall" / "train" / "README.md").write_text("not a shape")
    return root


OPTS = PrepareOptions(num_points=512)


def test_prepare_counts_normalises_orders_and_skips(tmp_path):
    src = write_modelnet_layout(tmp_path / "src")
    report = prepare_class_folder(src, tmp_path / "out", OPTS, workers=1, progress=False)
    assert report.classes == ["slab", "tall"] and report.layout == "train/test folders"
    assert report.counts == {
        "slab": {"train": 3, "test": 3, "skipped": 2},
        "tall": {"train": 4, "test": 2, "skipped": 1},
    }
    reasons = {e["source"]: e["reason"] for e in report.skipped}
    assert reasons["tall/train/flat.off"] == "the mesh has zero surface area"
    assert set(reasons) == {"tall/train/flat.off", "slab/train/broken.off", "slab/train/empty.obj"}
    assert report.ignored == ["tall/train/README.md"]

    train = ClassFolders(tmp_path / "out", "train")
    assert len(train) == 7 and train.labels.count(1) == 4
    for i in range(len(train)):
        stored = np.load(train.paths[i])
        xyz = stored[:, :3]
        assert len(stored) in (300, 512) and np.allclose(xyz.mean(0), 0, atol=1e-5)
        assert np.isclose(np.linalg.norm(xyz, axis=1).max(), 1, atol=1e-5)
        # stored in farthest-point order from the first point: the torch op picks the same points
        first = farthest_point_sampling(torch.from_numpy(np.ascontiguousarray(xyz))[None], 32)[0]
        assert first.tolist() == list(range(32))
    mesh = np.load(tmp_path / "out" / "clouds" / "tall" / "train" / "tall_0.off.npy")
    assert mesh.shape == (512, 6) and np.allclose(np.linalg.norm(mesh[:, 3:], axis=1), 1, atol=1e-5)
    # the .txt cloud keeps its normal columns and its 300 points; the 3000-point .npy is reduced to 512
    assert np.load(tmp_path / "out" / "clouds" / "slab" / "train" / "slab_2.txt.npy").shape == (300, 6)
    assert np.load(tmp_path / "out" / "clouds" / "slab" / "train" / "slab_1.npy.npy").shape == (512, 3)


def test_tall_boxes_stand_up_with_z_up(tmp_path):
    src = write_modelnet_layout(tmp_path / "src")
    prepare_class_folder(src, tmp_path / "out", PrepareOptions(num_points=512, z_up=True), 1, False)
    tall = np.load(tmp_path / "out" / "clouds" / "tall" / "train" / "tall_0.off.npy")
    extent = tall[:, :3].max(0) - tall[:, :3].min(0)
    assert extent[1] > 2.5 * extent[0] and extent[1] > 2.5 * extent[2]  # the long z axis is now y


def test_prepare_is_deterministic_and_cached(tmp_path):
    src = write_modelnet_layout(tmp_path / "src")
    a = prepare_class_folder(src, tmp_path / "a", OPTS, workers=2, progress=False)
    b = prepare_class_folder(src, tmp_path / "b", OPTS, workers=1, progress=False)
    for entry in json.loads((tmp_path / "a" / "manifest.json").read_text())["files"]:
        assert (tmp_path / "a" / entry["cloud"]).read_bytes() == (
            tmp_path / "b" / entry["cloud"]
        ).read_bytes()
    assert (a.sampled, b.sampled) == (15, 15)

    again = prepare_class_folder(src, tmp_path / "a", OPTS, workers=1, progress=False)
    assert (again.sampled, again.reused) == (0, 15)  # the broken files are remembered too
    (src / "tall" / "test" / "tall_1.off").write_text(box_off((2, 1, 1)))
    (src / "tall" / "train" / "tall_3.off").unlink()
    changed = prepare_class_folder(src, tmp_path / "a", OPTS, workers=1, progress=False)
    assert (changed.sampled, changed.reused) == (1, 13)
    assert not (tmp_path / "a" / "clouds" / "tall" / "train" / "tall_3.off.npy").exists()
    other = prepare_class_folder(
        src, tmp_path / "a", PrepareOptions(num_points=256), workers=1, progress=False
    )
    assert other.sampled == 14  # new sampling options re-sample everything


def test_flat_layout_splits_each_class_by_seed(tmp_path):
    src = tmp_path / "src"
    for name, n in (("a", 10), ("b", 5), ("c", 1)):
        (src / name).mkdir(parents=True)
        for i in range(n):
            np.save(src / name / f"{i}.npy", np.random.default_rng(i).normal(size=(100, 3)))
    layout, files, _ = scan_source(src, 0.2, seed=0)
    tests = {c: sorted(f.relative for f in files if f.class_name == c and f.split == "test") for c in "abc"}
    assert layout == "flat, split by seed" and [len(tests[c]) for c in "abc"] == [2, 1, 0]
    assert scan_source(src, 0.2, seed=0)[1] == files
    assert any(
        sorted(f.relative for f in scan_source(src, 0.2, seed=s)[1] if f.split == "test")
        != sum(tests.values(), [])
        for s in range(1, 4)
    )


def test_layout_and_reader_errors_are_one_line(tmp_path):
    mixed = tmp_path / "mixed"
    (mixed / "a" / "train").mkdir(parents=True)
    (mixed / "b" / "c").mkdir(parents=True)
    np.save(mixed / "b" / "x.npy", np.zeros((10, 3)))
    np.save(mixed / "b" / "c" / "x.npy", np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(DataError, match="b: has no train/ or test/ folder, but other classes do"):
        scan_source(mixed, 0.2, 0)
    src = write_modelnet_layout(tmp_path / "src")
    with pytest.raises(DataError, match="lies inside --src"):
        prepare_class_folder(src, src / "prepared", OPTS, 1, False)
    with pytest.raises(DataError, match="not prepared yet; run `act3d data prepare --src"):
        ClassFolders(src, "train")
    prepare_class_folder(src, tmp_path / "out", OPTS, 1, False)
    with pytest.raises(DataError, match="prepared from .*choose a new --out or pass --overwrite"):
        prepare_class_folder(mixed / "b", tmp_path / "out", OPTS, 1, False)
    manifest = tmp_path / "out" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "complete": False}))
    with pytest.raises(DataError, match="interrupted; run `act3d data prepare` again"):
        ClassFolders(tmp_path / "out", "test")
    manifest.write_text("{ truncated")
    with pytest.raises(DataError, match="manifest.json: not valid JSON"):
        prepare_class_folder(src, tmp_path / "out", OPTS, 1, False)
    with pytest.raises(DataError, match="manifest.json: not valid JSON"):
        ClassFolders(tmp_path / "out", "test")


def test_farthest_point_order_matches_the_torch_op():
    points = np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32)
    expected = farthest_point_sampling(torch.from_numpy(points)[None], 100)[0].numpy()
    assert (farthest_point_order(points, 100) == expected).all()


@pytest.fixture
def prepared(tmp_path):
    src = tmp_path / "src"
    for name, size in (("tall", (1, 1, 4)), ("slab", (3, 3, 0.2)), ("cube", (1, 1, 1))):
        for split, n in (("train", 12), ("test", 4)):
            (src / name / split).mkdir(parents=True)
            for i in range(n):
                scale = 1 + 0.05 * i
                (src / name / split / f"{name}_{i}.off").write_text(
                    box_off([s * scale for s in size], "run-on")
                )
    assert prepare_with_cli(src, tmp_path / "out") == 0
    return tmp_path / "out"


def test_every_command_reads_a_prepared_folder(
    prepared, teacher_cfg, pretrain_cfg, finetune_cfg, tmp_path, capsys
):
    from act3d.train.finetune import finetune
    from act3d.train.stage1 import train_teacher
    from act3d.train.stage2 import pretrain

    for cfg in (teacher_cfg, pretrain_cfg, finetune_cfg):
        cfg.data.format, cfg.data.root = "class-folders", str(prepared)
    pretrain_cfg.data.pretrain_split = "train+test"
    assert len(open_source(pretrain_cfg.data, "pretrain")) == 48
    teacher_cfg.optim.max_steps = 1
    pretrain_cfg.teacher_checkpoint = str(train_teacher(teacher_cfg, tmp_path / "s1").checkpoint)
    pretrain_cfg.optim.max_steps = 2
    student = str(pretrain(pretrain_cfg, tmp_path / "s2").checkpoint)
    finetune_cfg.checkpoint = student
    finetune_cfg.optim.max_steps = 2
    result = finetune(finetune_cfg, tmp_path / "ft").downstream
    assert result.class_names == ["cube", "slab", "tall"] and set(result.val) == {"oa", "macc"}
    classifier = str(tmp_path / "ft" / "checkpoints" / "last.pt")
    data = ["--format", "class-folders", "--root", str(prepared)]

    assert main(["data", "check", str(prepared), "--format", "class-folders", "--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["per_class"] == {"cube": 4, "slab": 4, "tall": 4}
    assert main(["eval", "svm", "--checkpoint", student, *data, "--out", str(tmp_path / "svm")]) == 0
    assert (
        main(
            [
                "eval",
                "fewshot",
                "--checkpoint",
                student,
                *data,
                "--way",
                "3",
                "--shot",
                "5",
                "--folds",
                "2",
                "--out",
                str(tmp_path / "fs"),
            ]
        )
        == 0
    )
    assert "3w5s" in json.loads((tmp_path / "fs" / "summary.json").read_text())["table"]
    # the same protocol on written episodes in the official layout (eval fewshot --fewshot-root)
    episodes = ["--way", "3", "--shot", "5", "--folds", "2"]
    assert (
        main(
            [
                "data",
                "fewshot",
                "--format",
                "class-folders",
                "--root",
                str(prepared),
                "--out",
                str(tmp_path / "ep"),
                *episodes,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "eval",
                "fewshot",
                "--checkpoint",
                student,
                "--fewshot-root",
                str(tmp_path / "ep"),
                *episodes,
                "--out",
                str(tmp_path / "fs-pkl"),
            ]
        )
        == 0
    )
    assert len(json.loads((tmp_path / "fs-pkl" / "summary.json").read_text())["table"]["3w5s"]["folds"]) == 2
    assert main(["embed", "--checkpoint", student, *data, "--out", str(tmp_path / "e.npy")]) == 0
    assert np.load(tmp_path / "e.npy").shape[0] == 12
    assert np.load(tmp_path / "e.labels.npy").tolist() == [0] * 4 + [1] * 4 + [2] * 4
    capsys.readouterr()
    assert main(["predict", "--checkpoint", classifier, *data, "--split", "test"]) == 0
    assert "12 clouds of class-folders test: OA" in capsys.readouterr().out
    # the raw meshes read directly, too
    assert (
        main(
            [
                "predict",
                str(prepared.parent / "src" / "tall" / "test" / "tall_0.off"),
                "--checkpoint",
                classifier,
            ]
        )
        == 0
    )


def test_fewshot_episodes_in_the_official_layout(prepared, tmp_path, capsys):
    out = tmp_path / "episodes"
    args = ["data", "fewshot", "--format", "class-folders", "--root", str(prepared), "--out", str(out)]
    assert main([*args, "--way", "2", "4", "--shot", "5", "--folds", "1"]) == 2  # 3 classes: no 4-way
    assert "cannot draw 4-way episodes" in capsys.readouterr().err
    assert not any(out.iterdir())  # nothing written that would block the retry
    assert main([*args, "--way", "2", "3", "--shot", "5", "--folds", "3", "--points", "128"]) == 0
    from act3d.data.modelnet import modelnet40_fewshot

    train, test = modelnet40_fewshot(out, 3, 5, 2)
    assert len(train) == 15 and len(test) == 12  # every test cloud of the 3 classes (fewer than 20 each)
    assert train[0].points.shape == (128, 3) and sorted(set(train.labels)) == [0, 1, 2]
    summary = json.loads((out / "fewshot.json").read_text())
    assert len(summary["episodes"]) == 6 and sorted(summary["episodes"]["3way_5shot/0"]) == [
        "cube",
        "slab",
        "tall",
    ]
    first = (out / "2way_5shot" / "0.pkl").read_bytes()
    assert main([*args, "--way", "2", "--shot", "5", "--folds", "1"]) == 2  # a finished set is kept
    assert "already holds 2way_5shot/" in capsys.readouterr().err
    assert main([*args, "--way", "2", "--shot", "5", "--folds", "1", "--points", "128", "--overwrite"]) == 0
    assert (out / "2way_5shot" / "0.pkl").read_bytes() == first  # seeded: the same episode again
    cfg = DataConfig(format="modelnet40-fewshot", root=str(out), variant="2way5shot", fold=0, num_points=64)
    assert len(open_source(cfg, "train")) == 10


def test_demo_measures_every_arm_on_the_own_data(prepared, pretrain_cfg, tmp_path):
    """The demo's stages on your data on a prepared folder (tiny students stand in for the demo's), and the
    report's own-data table."""
    from test_report import fake_results

    from act3d.demo.arms import ARMS
    from act3d.demo.configs import DemoOptions
    from act3d.demo.pipeline import own_data_stages
    from act3d.demo.report import own_data_table, write_report
    from act3d.demo.runs import Runs
    from act3d.train.stage2 import pretrain

    pretrain_cfg.optim.max_steps, pretrain_cfg.student.target = 1, "mae"
    student = str(pretrain(pretrain_cfg, tmp_path / "s2").checkpoint)
    opts = DemoOptions(
        tmp_path / "demo",
        quick=True,
        seeds=1,
        fewshot_folds=2,
        own_data=prepared,
        peft=("vpt_deep",),
        robust=True,
        overrides=(
            "finetune:data.num_points=128",
            "finetune:patching.num_groups=8",
            "finetune:patching.group_size=8",
        ),
    )
    own_data = own_data_stages(Runs(opts.out), {arm.name: {"checkpoint": student} for arm in ARMS}, opts)
    assert own_data.classes == ["cube", "slab", "tall"] and len(own_data.arms) == len(ARMS)
    for arm in own_data.arms:
        assert 0 <= arm.svm_acc <= 1 and len(arm.finetune_accs) == 1
        assert list(arm.fewshot) == []  # 3 classes fill none of the 5- and 10-way settings
    assert {c.measure for c in own_data.comparisons} == {
        "fine-tune val OA",
        "fine-tune test OA",
        "SVM test OA",
    }
    assert (opts.out / "done" / "own-data-finetune-scratch-seed0.json").is_file()
    # --peft reaches your data: full fine-tuning of the ACT student, then the method, paired seed by seed
    assert [p.method for p in own_data.peft] == ["full", "vpt_deep"]
    assert [(c.a, c.b, c.measure) for c in own_data.peft_comparisons] == [
        ("vpt_deep", "act", "fine-tune val OA"),
        ("vpt_deep", "act", "fine-tune test OA"),
    ]
    # --robust: every classifier on your test clouds damaged as ModelNet-C damages them, against ACT
    assert [r.name for r in own_data.robust] == [a.name for a in ARMS] + ["act-vpt_deep"]
    assert len(own_data.robust_comparisons) == 2 * (len(ARMS) - 1 + 1)
    assert (opts.out / "done" / "robust-own-data-finetune-act-vpt_deep-seed0.json").is_file()
    page = write_report(tmp_path, replace(fake_results(), own_data=own_data)).read_text()
    assert '<table id="own-data-peft">' in page and '<table id="robust-own-data">' in page
    assert (
        '<table id="own-data">' in page
        and f'<td data-key="svm">{own_data_table(own_data).rows[0]["svm"]}</td>' in page
    )


def test_skip_reasons_are_one_short_line_and_an_empty_class_is_said(tmp_path, capsys):
    from act3d.data.folders import short_reason

    long = "could not load mesh: " + "trimesh says " * 40 + "\nTraceback line\nmore"
    assert (
        "\n" not in short_reason(long) and len(short_reason(long)) <= 120 and short_reason(long).endswith("…")
    )
    src = tmp_path / "src"
    for name in ("good", "ruined"):
        (src / name).mkdir(parents=True)
    for i in range(3):
        (src / "good" / f"g{i}.off").write_text(box_off((1, 1, 2 + i), "plain"))
        (src / "ruined" / f"r{i}.off").write_text("OFF\n8 6 0\n0 0 0\n1 2\n")
    assert prepare_with_cli(src, tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "warning: class 'ruined' has no usable file (3 skipped)" in out
    skipped = [line for line in out.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 3 and all(len(line) < 200 for line in skipped)


def prepare_with_cli(src, out) -> int:
    """`act3d data prepare` of `src` into `out`: 256 points, one worker, no progress bars."""
    from act3d.cli import main

    argv = ["data", "prepare", "--src", str(src), "--out", str(out), "--points", "256", "--workers", "1"]
    return main(argv + ["--no-progress"])
