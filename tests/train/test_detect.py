"""The detection stage: 3DETR trained and evaluated end to end on rooms written in the ScanNet layout, its
schedule and weight decay as 3DETR's, its samples repeatable, and act3d's student as its encoder."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY_STUDENT

from act3d.cli import main
from act3d.data.rooms import write_rooms
from act3d.data.scenes import DetectionScenes, SceneConfig, split_scans
from act3d.errors import ConfigError
from act3d.models import zoo
from act3d.stages import DETECT
from act3d.train.detect import detector
from act3d.train.optimizer import param_groups
from act3d.train.run_folder import RunExistsError
from act3d.train.schedule import detr_lr

TINY = [
    "scenes.num_points=1024",
    "scenes.cuboid_min_points=700",
    "detr.preenc_npoints=128",
    "detr.nqueries=16",
    "detr.enc_dim=32",
    "detr.dec_dim=32",
    "detr.enc_ffn_dim=32",
    "detr.dec_ffn_dim=32",
    "detr.dec_nlayers=2",
    "optim.batch_size=2",
    "optim.epochs=2",
    "evaluate_every=1",
    "eval_batch_size=4",
    "runtime.progress=false",
]


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    scans, meta = write_rooms(tmp_path_factory.mktemp("rooms"), train=6, val=2, points=3000)
    return str(scans), str(meta)


def _cfg(rooms, *more):
    scans, meta = rooms
    return DETECT.load_config("cpu", overrides=[*TINY, f"scenes.root={scans}", f"scenes.meta={meta}", *more])


def test_detect_trains_selects_on_validation_and_scores_the_val_list_once(rooms, tmp_path):
    out = tmp_path / "run"
    scans, meta = rooms
    code = main(
        ["detect", "--preset", "detect.cpu", "--root", scans, "--meta", meta, "--out", str(out)]
        + [a for kv in TINY for a in ("--set", kv)]
    )
    assert code == 0
    result = json.loads((out / "results.json").read_text())
    assert result["task"] == "detection" and result["test_samples"] == 2 and result["val_samples"] == 1
    assert set(result["test"]) == {"mAP25", "mAP50", "AR25", "AR50"}
    assert set(result["val"]) == {"mAP25", "mAP50", "AR25", "AR50"}
    assert set(result["test_selected_on_test"]) == {"mAP25", "mAP50", "AR25", "AR50"}  # the official reading
    assert all(0 <= v <= 1 for v in result["test"].values())
    per_class = json.loads((out / "per_class_ap.json").read_text())
    assert set(per_class) == {"AP25", "AP50"}
    assert (out / "detections.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "detect"
    model, ckpt = zoo.load(out / "checkpoints" / "best.pt")
    assert ckpt["kind"] == zoo.DETECTOR and ckpt["arch"]["class_names"][0] == "cabinet"
    points = torch.rand(1, 1024, 3) * 4
    boxes = model.detect(points, points.min(1).values, points.max(1).values)
    assert boxes["box_corners"].shape == (1, 16, 8, 3)
    # a finished run is not overwritten
    with pytest.raises(RunExistsError):
        DETECT.run(_cfg(rooms), out)


def test_a_rerun_is_bit_identical(rooms, tmp_path):
    cfg = _cfg(rooms, "optim.epochs=1", "val_fraction=0", "report_test_selected=false")
    first, second = (DETECT.run(cfg, tmp_path / name) for name in ("a", "b"))
    assert first.downstream.test == second.downstream.test
    a, b = (zoo.load(r.checkpoint)[1]["model"] for r in (first, second))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_schedule_is_3detrs_compute_learning_rate():
    def official(t, max_epoch=100, warm_epochs=9, base=5e-4, warm=1e-6, final=1e-6):  # engine.py l.21-35
        if t <= warm_epochs / max_epoch and warm_epochs > 0:
            return warm + t * max_epoch * ((base - warm) / warm_epochs)
        return final + 0.5 * (base - final) * (1 + math.cos(math.pi * t))

    total = 100 * 37
    for step in (0, 1, 300, 333, 334, 1000, 3699):
        assert detr_lr(step, total, 100, 9, 5e-4, 1e-6, 1e-6) == pytest.approx(official(step / total), abs=0)


def test_every_weight_decays_as_in_3detr(rooms):
    model, _ = detector(_cfg(rooms))
    groups = param_groups(model, 0.1, decay_all=True)
    assert len(groups[1]["params"]) == 0
    assert sum(p.numel() for p in groups[0]["params"]) == sum(p.numel() for p in model.parameters())


def test_scenes_draw_the_same_sample_for_the_same_seed_epoch_and_index(rooms):
    scans, _ = rooms
    names = [f"scene{i:04d}_00" for i in range(3)]
    data = DetectionScenes(scans, names, True, SceneConfig(num_points=1024, cuboid_min_points=700), seed=3)
    first = data[1]
    again = data[1]
    data.set_epoch(1)
    other = data[1]
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["point_clouds"], other["point_clouds"])


def test_validation_holds_out_whole_rooms():
    names = [f"scene{r:04d}_{s:02d}" for r in range(20) for s in range(3)]
    fit, val = split_scans(names, 0.1, seed=0)
    assert len({n[:9] for n in val}) == 2 and len(val) == 6
    assert not {n[:9] for n in fit} & {n[:9] for n in val}
    assert split_scans(names, 0.0, 0) == (names, [])


def test_an_act_encoder_starts_from_a_student_checkpoint(rooms, untrained_student):
    cfg = _cfg(rooms, "detr.encoder=act", f"checkpoint={untrained_student}")
    model, cfg = detector(cfg)
    student, _ = zoo.load_student(untrained_student)
    assert cfg.detr.enc_dim == TINY_STUDENT["width"] and cfg.student.depth == TINY_STUDENT["depth"]
    for name in ("pos_embed", "blocks", "norm"):
        ours, theirs = getattr(model.encoder, name).state_dict(), getattr(student, name).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    # the encoder is the student's blocks over each scene's tokens, with the student's positions
    model.eval()
    x, xyz = torch.randn(40, 2, 32), torch.rand(2, 40, 3) * 3
    _, out, _ = model.encoder(x, xyz)
    expected = student.norm(student.blocks(x.permute(1, 0, 2), student.pos_embed(xyz))).permute(1, 0, 2)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_an_act_encoder_from_a_classifier_checkpoint_trains_and_reloads(rooms, finetune_cfg, tmp_path):
    from act3d.train.finetune import finetune

    classifier = finetune(finetune_cfg, tmp_path / "classifier").checkpoint
    cfg = _cfg(rooms, "detr.encoder=act", f"checkpoint={classifier}", "optim.epochs=1", "val_fraction=0")
    result = DETECT.run(cfg, tmp_path / "det")
    model, ckpt = zoo.load(result.checkpoint)
    assert ckpt["arch"]["student"]["width"] == TINY_STUDENT["width"]
    assert np.isfinite(list(result.downstream.test.values())).all()


def test_bad_detection_settings_are_refused(rooms):
    with pytest.raises(ConfigError, match="detr.num_classes"):
        _cfg(rooms, "detr.num_classes=10")
    with pytest.raises(ConfigError, match="preenc_npoints"):
        _cfg(rooms, "detr.preenc_npoints=4096")
    with pytest.raises(ConfigError, match="checkpoint"):
        _cfg(rooms, "checkpoint=student.pt")  # 3DETR's own encoder takes no student
    with pytest.raises(ConfigError, match="nqueries"):
        _cfg(rooms, "detr.nqueries=200")


def test_a_missing_scene_folder_is_one_line(tmp_path, capsys):
    code = main(
        ["detect", "--preset", "cpu", "--root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]
    assert not (tmp_path / "o").exists()


def test_compare_to_pairs_an_act_encoder_against_3detr_by_seed(rooms, untrained_student, tmp_path):
    scans, meta = rooms
    quick = [a for kv in [*TINY, "optim.epochs=1", "val_fraction=0"] for a in ("--set", kv)]
    common = ["detect", "--root", scans, "--meta", meta, "--seeds", "2", *quick]
    assert main([*common, "--out", str(tmp_path / "3detr")]) == 0
    # a run written before a setting existed pairs: what its protocol lacks reads as the default
    written = json.loads((tmp_path / "3detr" / "summary.json").read_text())
    del written["protocol"]["optim"]["decay"]
    (tmp_path / "3detr" / "summary.json").write_text(json.dumps(written))
    act = ["--set", "detr.encoder=act", "--checkpoint", untrained_student]
    assert main([*common, *act, "--out", str(tmp_path / "act"), "--compare-to", str(tmp_path / "3detr")]) == 0
    summary = json.loads((tmp_path / "act" / "summary.json").read_text())
    rows = {row["measure"]: row for row in summary["paired"]}
    assert "test mAP25" in rows and "detr" in rows["test mAP25"]["differs_in"]
    # another training recipe does not pair
    other = ["--set", "optim.lr=0.01", "--out", str(tmp_path / "lr"), "--compare-to", str(tmp_path / "3detr")]
    assert main([*common, *other]) == 2
    assert not (tmp_path / "lr").exists()  # refused before it trained


def test_a_scan_of_the_wrong_shape_is_refused_before_the_run_starts(rooms, tmp_path, capsys):
    import shutil

    scans, meta = rooms
    copy = tmp_path / "scans"
    shutil.copytree(scans, copy)
    np.save(copy / "scene0003_00_sem_label.npy", np.zeros(5, dtype=np.uint32))  # 5 labels for 3,000 points
    code = main(["detect", "--root", str(copy), "--meta", meta, "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scene0003_00" in err[0] and "labels" in err[0]
    assert not (tmp_path / "o").exists()


def test_a_resumed_detection_run_ends_where_the_uninterrupted_one_does(rooms, tmp_path, monkeypatch):
    from act3d.models.checkpoint import load_checkpoint
    from act3d.train import detect as stage

    cfg = _cfg(rooms, "val_fraction=0", "report_test_selected=false")  # 6 rooms, batch 2: 3 steps an epoch
    straight = DETECT.run(cfg, tmp_path / "straight")
    real_step = stage.DetectTask.step

    def killed_at_4(self, model, batch, step):
        if step == 4:
            raise KeyboardInterrupt
        return real_step(self, model, batch, step)

    monkeypatch.setattr(stage.DetectTask, "step", killed_at_4)
    with pytest.raises(KeyboardInterrupt):
        DETECT.run(cfg, tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["step"] == 3
    monkeypatch.setattr(stage.DetectTask, "step", real_step)
    resumed = DETECT.run(cfg, tmp_path / "resumed", resume=True)
    a, b = (load_checkpoint(r.checkpoint)["model"] for r in (straight, resumed))
    assert straight.steps == resumed.steps == 6
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.downstream.test == resumed.downstream.test
