"""Bad inputs through the real command line: each ends in exit code 2 and one line on stderr naming the
cause, and the files that existed before are byte-identical after (or the input is valid and it works)."""

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_PATCHES, TINY_STUDENT
from layouts import write_shapenetpart

from act3d.cli import main
from act3d.models.checkpoint import load_checkpoint


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fails(capsys, argv: list[str], *words: str, code: int = 2) -> str:
    """Run the CLI; it must exit with `code` and print exactly one stderr line containing `words`."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, (word, err)
    return err


def eval_args(tiny: dict) -> list:
    """`eval svm|fewshot` arguments reading the tiny run's data with its classifier checkpoint."""
    return [
        "--checkpoint",
        tiny["classifier"],
        "--format",
        "scanobjectnn",
        "--root",
        tiny["root"],
        "--variant",
        "obj_bg",
    ]


@pytest.fixture
def tiny(scan_root, tmp_path):
    """A tiny fine-tuning config file and a finished run made with it."""
    cfg = {
        "data": {"format": "scanobjectnn", "variant": "obj_bg", "root": scan_root, "num_points": 64},
        "patching": TINY_PATCHES,
        "student": TINY_STUDENT,
        "val_fraction": 0.0,
        "optim": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0.5},
        "runtime": {"progress": False, "log_every": 1},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["finetune", "--config", str(path), "--out", str(tmp_path / "run")]) == 0
    return {
        "config": path,
        "run": tmp_path / "run",
        "root": scan_root,
        "classifier": tmp_path / "run" / "checkpoints" / "last.pt",
    }


def test_a_finished_run_is_never_overwritten_by_accident(tiny, capsys):
    before = snapshot(tiny["run"])
    fails(
        capsys,
        ["finetune", "--config", tiny["config"], "--out", tiny["run"]],
        "already holds a run",
        "--resume",
        "--overwrite",
    )
    assert snapshot(tiny["run"]) == before
    # explicit: --overwrite replaces it, --resume continues it (here: nothing left to train)
    assert main(["finetune", "--config", str(tiny["config"]), "--out", str(tiny["run"]), "--resume"]) == 0
    assert main(["finetune", "--config", str(tiny["config"]), "--out", str(tiny["run"]), "--overwrite"]) == 0


@pytest.mark.parametrize(
    "setting, words",
    [
        ("optim.max_steps=-5", ["optim.max_steps", ">= 1"]),
        ("student.mask_ratio=1.5", ["student.mask_ratio", "[0, 1)"]),
        ("student.heads=5", ["student.heads", "divisor of width"]),
        ("optim.lr=[1,", ["optim.lr", "cannot read"]),
        ("optim.lr=-1", ["optim.lr", "> 0"]),
        ("optim.batch_size=0", ["optim.batch_size", ">= 1"]),
        ("patching.num_groups=0", ["patching.num_groups", ">= 1"]),
        ("runtime.device=banana", ["runtime.device", "auto, cpu, cuda"]),
        ("data.root=2024", ["2024"]),  # a path, not the integer 2024: the folder is named in the error
    ],
)
def test_bad_values_are_one_line_naming_the_field(tiny, tmp_path, capsys, setting, words):
    fails(
        capsys, ["finetune", "--config", tiny["config"], "--set", setting, "--out", tmp_path / "new"], *words
    )


def test_bad_command_line_values(tiny, tmp_path, capsys):
    fails(
        capsys,
        ["finetune", "--config", tiny["config"], "--seeds", "0", "--out", tmp_path / "s"],
        "--seeds",
        ">= 1",
    )
    fails(
        capsys,
        ["predict", tmp_path / "tiny.yaml", "--checkpoint", tiny["classifier"], "--top-k", "-1"],
        "--top-k",
    )
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    fails(
        capsys,
        ["finetune", "--config", tmp_path / "binary.yaml", "--out", tmp_path / "b"],
        "binary.yaml",
        "not a text file",
    )
    common = eval_args(tiny)
    fails(
        capsys,
        ["eval", "fewshot", *common, "--way", "20", "--shot", "1", "--out", tmp_path / "fs"],
        "is a act3d-classifier checkpoint, but a act3d-student checkpoint is needed",
    )


def test_no_gpu_is_one_line(tiny, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    fails(
        capsys,
        ["finetune", "--config", tiny["config"], "--set", "runtime.device=cuda", "--out", tmp_path / "g"],
        "runtime.device",
        "sees none",
    )


def test_outputs_that_cannot_be_written(tiny, tmp_path, capsys):
    (tmp_path / "a_file").write_text("keep me")
    fails(
        capsys,
        ["finetune", "--config", tiny["config"], "--out", tmp_path / "a_file"],
        "a_file",
        "not a folder",
    )
    assert (tmp_path / "a_file").read_text() == "keep me"
    fails(
        capsys,
        ["finetune", "--config", tiny["config"], "--out", "/proc/act3d-cannot-be-here"],
        "cannot write there",
    )
    common = eval_args(tiny)
    fails(capsys, ["eval", "svm", *common, "--out", tmp_path / "a_file"], "not a folder")


def test_a_full_disk_during_a_checkpoint_is_one_line_and_loses_nothing(tiny, tmp_path, capsys, monkeypatch):
    before = snapshot(tiny["run"])

    def no_space(obj, f, *args, **kwargs):  # torch.save into the open temporary file
        f.write(b"partial")
        raise OSError(28, "No space left on device", f.name)

    monkeypatch.setattr(torch, "save", no_space)
    fails(
        capsys,
        ["finetune", "--config", tiny["config"], "--set", "optim.epochs=2", "--out", tiny["run"], "--resume"],
        "No space left on device",
    )
    monkeypatch.undo()
    after = snapshot(tiny["run"])
    assert not [k for k in after if ".tmp" in k]  # the partial temporary file is gone
    assert after["checkpoints/last.pt"] == before["checkpoints/last.pt"]


def test_orphaned_temporaries_are_removed_at_the_next_start(tiny, capsys):
    orphan = tiny["run"] / "checkpoints" / ".last.pt.tmp4242"
    orphan.write_bytes(b"x" * 1000)
    assert main(["finetune", "--config", str(tiny["config"]), "--out", str(tiny["run"]), "--resume"]) == 0
    assert not orphan.exists()


def test_divergence_keeps_a_finite_checkpoint_and_says_which(tiny, tmp_path, capsys):
    out = tmp_path / "diverged"
    err = fails(
        capsys,
        [
            "finetune",
            "--config",
            tiny["config"],
            "--set",
            "optim.lr=1e6",
            "--set",
            "optim.epochs=6",
            "--set",
            "runtime.checkpoint_every=1",
            "--out",
            out,
        ],
        "became",
    )
    last = out / "checkpoints" / "last.pt"
    if last.is_file():  # whatever is kept loads, and is finite
        state = load_checkpoint(last)["model"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
        assert f"of step {load_checkpoint(last)['step']}" in err
    else:
        assert "no checkpoint with finite weights" in err


def test_a_checkpoint_with_nan_weights_is_refused(tiny, tmp_path, capsys):
    ckpt = load_checkpoint(tiny["classifier"])
    next(v for v in ckpt["model"].values() if v.is_floating_point()).fill_(float("nan"))
    torch.save(ckpt, tmp_path / "nan.pt")
    (tmp_path / "c.npy").write_bytes(b"")
    np.save(tmp_path / "c.npy", np.random.default_rng(0).normal(size=(80, 3)))
    fails(
        capsys,
        ["predict", tmp_path / "c.npy", "--checkpoint", tmp_path / "nan.pt"],
        "nan.pt",
        "NaN/inf weights",
    )


def test_extreme_and_nan_coordinates(tiny, tmp_path, capsys):
    np.save(tmp_path / "far.npy", np.full((50, 3), 1e37, dtype=np.float32))
    fails(
        capsys,
        ["embed", tmp_path / "far.npy", "--checkpoint", tiny["classifier"], "--out", tmp_path / "e"],
        "far.npy",
        "coordinates reach",
    )
    fails(capsys, ["data", "check", tmp_path / "far.npy", "--format", "file"], "coordinates reach")
    # one NaN cloud in a training file is found when the file is opened, not when (if ever) it is drawn
    root = tmp_path / "nan_scan" / "main_split"
    root.mkdir(parents=True)
    for split in ("training", "test"):
        data = np.random.default_rng(0).normal(size=(8, 64, 3)).astype(np.float32)
        data[5, 3, 1] = np.nan if split == "training" else 0
        with h5py.File(root / f"{split}_objectdataset.h5", "w") as f:
            f.create_dataset("data", data=data)
            f.create_dataset("label", data=np.arange(8) % 2)
    fails(
        capsys,
        [
            "finetune",
            "--config",
            tiny["config"],
            "--set",
            f"data.root={tmp_path / 'nan_scan'}",
            "--set",
            "optim.max_steps=1",
            "--out",
            tmp_path / "n",
        ],
        "training_objectdataset.h5",
        "index 5",
    )
    fails(
        capsys,
        ["data", "check", tmp_path / "nan_scan", "--format", "scanobjectnn", "--variant", "obj_bg"],
        "NaN/inf",
    )


def test_paths_are_never_read_as_yaml(tiny, tmp_path, capsys):
    odd = tmp_path / "exp #1"
    odd.mkdir()
    (odd / "last.pt").write_bytes(tiny["classifier"].read_bytes())
    np.save(tmp_path / "c.npy", np.random.default_rng(0).normal(size=(80, 3)))
    assert main(["predict", str(tmp_path / "c.npy"), "--checkpoint", str(odd / "last.pt")]) == 0
    fails(
        capsys, ["predict", tmp_path / "c.npy", "--checkpoint", "a: b/last.pt"], "a: b/last.pt", "not found"
    )
    fails(
        capsys,
        [
            "finetune",
            "--config",
            tiny["config"],
            "--checkpoint",
            "runs/exp #2/last.pt",
            "--out",
            tmp_path / "p",
        ],
        "runs/exp #2/last.pt",
    )


def test_embed_says_which_file_it_wrote(tiny, tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).normal(size=(80, 3)))
    assert (
        main(
            [
                "embed",
                str(tmp_path / "c.npy"),
                "--checkpoint",
                str(tiny["classifier"]),
                "--out",
                str(tmp_path / "feat"),
            ]
        )
        == 0
    )
    assert f"wrote {tmp_path / 'feat.npy'}" in capsys.readouterr().out and (tmp_path / "feat.npy").is_file()


def test_embed_streams_a_folder_and_skips_a_file_it_cannot_read(tiny, tmp_path, capsys, caplog):
    """A folder is read one file at a time; a broken file is named and left out, and the rows say which
    file each is; a folder in which nothing can be read is one line."""
    folder = tmp_path / "shapes" / "inner"
    folder.mkdir(parents=True)
    for k in range(3):
        np.save(folder / f"{k}.npy", np.random.default_rng(k).normal(size=(80, 3)))
    (folder / "1b.npy").write_bytes(b"not a numpy file")
    (folder / "notes.md").write_text("ignored: not a cloud")
    out = tmp_path / "e.npy"
    assert (
        main(["embed", str(tmp_path / "shapes"), "--checkpoint", str(tiny["classifier"]), "--out", str(out)])
        == 0
    )
    assert np.load(out).shape[0] == 3 and "1b.npy" in caplog.text
    rows = (tmp_path / "e.files.txt").read_text().splitlines()
    assert [Path(r).name for r in rows] == ["0.npy", "1.npy", "2.npy"]
    assert "skipped 1 unreadable file(s)" in capsys.readouterr().out
    broken = tmp_path / "broken"
    broken.mkdir()
    for k in range(2):
        (broken / f"{k}.npy").write_bytes(b"junk")
    capsys.readouterr()
    assert (
        main(["embed", str(broken), "--checkpoint", str(tiny["classifier"]), "--out", str(tmp_path / "x")])
        == 2
    )
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after each file's warning
    assert "none of the 2 file(s) could be read" in last and not (tmp_path / "x.npy").exists()


def test_meshes_with_latin1_comments_read(tiny, tmp_path, capsys):
    verts = "\n".join(f"{x} {y} {z}" for x, y, z in np.random.default_rng(0).normal(size=(8, 3)))
    faces = "\n".join(f"3 {a} {b} {c}" for a, b, c in [(0, 1, 2), (2, 3, 4), (4, 5, 6), (5, 6, 7), (0, 4, 7)])
    (tmp_path / "m.off").write_bytes(
        b"OFF\n# caf\xe9 mod\xe8le\n8 5 0\n" + verts.encode() + b"\n" + faces.encode() + b"\n"
    )
    assert (
        main(
            [
                "embed",
                str(tmp_path / "m.off"),
                "--checkpoint",
                str(tiny["classifier"]),
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )


def test_import_official_refuses_an_act3d_checkpoint(tiny, tmp_path, capsys):
    fails(
        capsys,
        ["import-official", tiny["classifier"], "--layout", "student", "--out", tmp_path / "x.pt"],
        "already an act3d checkpoint",
    )
    assert not (tmp_path / "x.pt").exists()


def test_malformed_dataset_files_are_named(tmp_path, capsys):
    part = write_shapenetpart(tmp_path / "part")
    split = part / "train_test_split" / "shuffled_train_file_list.json"
    split.write_text('["shape_data/02691156"]')
    fails(
        capsys,
        ["data", "check", part, "--format", "shapenetpart"],
        "shuffled_train_file_list.json",
        "<model id>",
    )
    cats = part / "synsetoffset2category.txt"
    cats.write_text(cats.read_text() + "Spaceship\t99999999\n")
    fails(capsys, ["data", "check", part, "--format", "shapenetpart"], "Spaceship")
    base = tmp_path / "mn"
    base.mkdir()
    (base / "modelnet40_shape_names.txt").write_text("a\nb\n")
    for labels, words in (([["x"], ["y"]], "integer class label"), ([[], [1]], "integer class label")):
        with open(base / "modelnet40_train_8192pts_fps.dat", "wb") as f:
            pickle.dump([[np.zeros((10, 6), np.float32)] * 2, [np.array(v) for v in labels]], f)
        fails(
            capsys,
            ["data", "check", base, "--format", "modelnet40-dat"],
            "modelnet40_train_8192pts_fps.dat",
            words,
        )
    h5 = tmp_path / "str_scan" / "main_split"
    h5.mkdir(parents=True)
    with h5py.File(h5 / "training_objectdataset.h5", "w") as f:
        f.create_dataset("data", data=np.array([["a", "b"]], dtype="S1"))
        f.create_dataset("label", data=np.array([0]))
    fails(
        capsys,
        ["data", "check", tmp_path / "str_scan", "--format", "scanobjectnn", "--variant", "obj_bg"],
        "'data'",
    )


def test_a_nan_cloud_in_a_pickle_is_found_when_opened(tmp_path, capsys):
    base = tmp_path / "mn"
    base.mkdir()
    (base / "modelnet40_shape_names.txt").write_text("a\nb\n")
    clouds = [np.random.default_rng(i).normal(size=(64, 6)).astype(np.float32) for i in range(4)]
    clouds[2][7, 1] = np.nan
    with open(base / "modelnet40_train_8192pts_fps.dat", "wb") as f:
        pickle.dump([clouds, [np.array([i % 2]) for i in range(4)]], f)
    fails(capsys, ["data", "check", base, "--format", "modelnet40-dat", "--limit", "1"], "[2]", "NaN/inf")


def test_a_diverging_point_mae_run_is_the_nan_guards_case(scan_root, tmp_path, capsys):
    """Chamfer's input check once raised on the NaN predictions (a traceback on CPU, another path on a GPU);
    a non-finite prediction is now the NaN guard's case on every device: one line naming the step."""
    cfg = {
        "data": {"format": "scanobjectnn", "variant": "obj_bg", "root": scan_root, "num_points": 64},
        "patching": TINY_PATCHES,
        "student": {**TINY_STUDENT, "target": "mae"},
        "optim": {"epochs": 4, "batch_size": 4, "lr": 1e6, "warmup_epochs": 0},
        "runtime": {"progress": False, "log_every": 1, "checkpoint_every": 1},
    }
    path = tmp_path / "diverge.yaml"
    path.write_text(yaml.safe_dump(cfg))
    err = fails(
        capsys, ["pretrain", "--config", path, "--out", tmp_path / "run"], "the loss became nan at step"
    )
    assert "ValueError" not in err and "act3d bug" not in err


def test_a_deeply_nested_yaml_is_one_line(tmp_path, capsys):
    deep = "[" * 5000 + "]" * 5000
    path = tmp_path / "deep.yaml"
    path.write_text(f"optim: {deep}\n")
    fails(capsys, ["pretrain", "--config", path, "--out", tmp_path / "a"], "deep.yaml", "nested too deeply")
    fails(
        capsys, ["pretrain", "--set", f"optim={deep}", "--out", tmp_path / "b"], "optim", "nested too deeply"
    )
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_resume_names_changed_settings_and_refuses_what_cannot_change(tiny, capsys, caplog):
    run = ["finetune", "--config", tiny["config"], "--out", tiny["run"], "--resume"]
    before = snapshot(tiny["run"])
    fails(capsys, run + ["--set", "student.width=64"], "cannot resume", "student.width 32 -> 64", "new --out")
    fails(capsys, run + ["--set", "data.num_points=48"], "cannot resume", "data.num_points 64 -> 48")
    assert snapshot(tiny["run"]) == before
    with caplog.at_level("WARNING"):
        assert main([str(a) for a in run + ["--set", "optim.lr=0.5", "--set", "optim.max_steps=6"]]) == 0
    said = [r.getMessage() for r in caplog.records if "changed settings" in r.getMessage()]
    assert len(said) == 1 and "optim.lr 0.001 -> 0.5" in said[0] and "optim.max_steps None -> 6" in said[0]


def test_a_peft_method_that_does_not_fit_the_backbone_is_one_line_and_writes_nothing(
    tiny, untrained_student, tmp_path, capsys
):
    # a 2-block student, 8 patches
    base = [
        "finetune",
        "--config",
        tiny["config"],
        "--checkpoint",
        untrained_student,
        "--out",
        tmp_path / "x",
    ]
    fails(capsys, base + ["--set", "transfer=idpt"], "idpt.prompt_layer 11 is past the backbone's 2 blocks")
    fails(capsys, base + ["--set", "transfer=idpt", "--set", "peft.prompt_layer=1"], "neighbours 20")
    fails(capsys, base + ["--set", "transfer=pointgst"], "pointgst.local 32 does not divide the 8 patches")
    fails(capsys, base + ["--set", "transfer=ppt"], "peft.prompt_groups", "data.num_points")
    fails(capsys, base + ["--set", "transfer=lora"], "transfer", "idpt")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("peft", ["absent", "every method's"])
def test_a_run_written_before_a_setting_existed_resumes_with_its_default(peft, tiny, caplog):
    """A config.yaml from an act3d without `peft` (added with the PEFT methods), or with the earlier layout
    of every method's settings under its name, resumes unchanged."""
    import yaml

    from act3d.config import to_dict
    from act3d.models.peft import METHODS

    path = tiny["run"] / "config.yaml"
    saved = yaml.safe_load(path.read_text())
    del saved["peft"]
    if peft == "every method's":
        saved["peft"] = {m: to_dict(method.Config()) for m, method in METHODS.items()}
    path.write_text(yaml.safe_dump(saved))
    run = [
        "finetune",
        "--config",
        tiny["config"],
        "--out",
        tiny["run"],
        "--resume",
        "--set",
        "optim.max_steps=6",
    ]
    with caplog.at_level("WARNING"):
        assert main([str(a) for a in run]) == 0
    said = [r.getMessage() for r in caplog.records if "changed settings" in r.getMessage()]
    assert len(said) == 1 and "peft" not in said[0] and "optim.max_steps None -> 6" in said[0]


def test_a_second_run_into_a_folder_in_use_is_refused(tiny, tmp_path, capsys):
    """A real second process holds the run folder; the lock goes with the process, kill -9 included."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "busy"
    slow = ["--set", "optim.epochs=400", "--set", "runtime.checkpoint_every=1"]
    cmd = [sys.executable, "-m", "act3d", "finetune", "--config", str(tiny["config"]), "--out", str(out)]
    first = subprocess.Popen(cmd + slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoints" / "last.pt").is_file():  # training, holding the folder
            assert first.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.2)
        for flag in ("--resume", "--overwrite"):
            fails(
                capsys, ["finetune", "--config", tiny["config"], "--out", out, flag], "another act3d process"
            )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    # the killed run's lock is gone: the folder resumes (its settings changed only in how long it trains)
    assert main([str(a) for a in cmd[3:] + ["--resume", "--set", "optim.max_steps=1"]]) == 0


def test_an_npz_with_several_arrays_is_named_not_guessed(tiny, tmp_path, capsys):
    cloud = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    np.savez(tmp_path / "two.npz", normals=cloud, xyz=cloud)
    fails(
        capsys,
        ["embed", tmp_path / "two.npz", "--checkpoint", tiny["classifier"], "--out", tmp_path / "f.npy"],
        "two.npz",
        "2 arrays (normals, xyz)",
        "'points'",
    )
    np.savez(tmp_path / "named.npz", points=cloud, normals=cloud)
    assert main(["predict", str(tmp_path / "named.npz"), "--checkpoint", str(tiny["classifier"])]) == 0


def test_data_check_prints_class_names_as_written(tmp_path, capsys):
    from layouts import write_modelnet40

    root = write_modelnet40(tmp_path, classes=("café", "chair"))
    assert main(["data", "check", str(root), "--format", "modelnet40", "--split", "train"]) == 0
    out = capsys.readouterr().out
    assert "café" in out and "\\u00e9" not in out
