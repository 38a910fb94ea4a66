"""3DETR's checkpoints (a dict as its main.py saves it: model, optimizer, epoch, an argparse.Namespace and
numpy-scalar metrics, utils/io.py l.8-30) are imported, used, exported and refused when they do not fit."""

import argparse
import pathlib
from collections import OrderedDict
from dataclasses import replace

import detr_model_reference as official
import numpy as np
import pytest
import torch

from act3d.cli import main
from act3d.models import zoo
from act3d.models.detr.model import Detector3DETR
from act3d.models.detr.official import from_official, to_official
from act3d.stages import DETECT

SMALL = [
    "detr.enc_dim=32",
    "detr.dec_dim=32",
    "detr.enc_ffn_dim=16",
    "detr.dec_ffn_dim=32",
    "detr.dec_nlayers=2",
]
SMALL += ["detr.preenc_npoints=64", "detr.nqueries=16"]


def _official_checkpoint(path, preset: str, num_classes: int = 18, extra=None) -> dict:
    """A 3DETR checkpoint of `preset`'s (small) sizes, its weights in 3DETR's names, written as main.py does."""
    cfg = DETECT.load_config(preset, overrides=SMALL)
    torch.manual_seed(0)
    model = Detector3DETR(replace(cfg.detr, num_classes=num_classes))
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn(t.shape) * 0.1)
    state = to_official(model.state_dict())
    metrics = OrderedDict(
        {
            0.25: OrderedDict({"mAP": np.float32(0.62), "AR": np.float64(0.8)}),
            0.5: OrderedDict({"mAP": np.float32(0.4)}),
        }
    )
    args = argparse.Namespace(enc_type=cfg.detr.encoder, base_lr=5e-4, dataset_name="scannet", nqueries=16)
    sd = {
        "model": state,
        "optimizer": torch.optim.AdamW(model.parameters()).state_dict(),
        "epoch": 1079,
        "args": args,
        "best_val_metrics": metrics,
        **(extra or {}),
    }
    torch.save(sd, path)
    return state


def _import(src, out, preset="detect.scannet_3detr"):
    args = ["import-official", "--layout", "detector", "--preset", preset, str(src), "--out", str(out)]
    return main(args + [a for kv in SMALL for a in ("--set", kv)])


def test_the_set_abstraction_names_are_3detrs():
    sa = official.PointnetSAModuleVotes(mlp=[0, 64, 128, 256], npoint=2048, radius=0.2, nsample=64)
    theirs = {f"pre_encoder.{k}" for k in sa.state_dict()}
    model = Detector3DETR(DETECT.load_config("scannet_3detr_masked").detr)
    ours = {k for k in to_official(model.state_dict()) if k.startswith("pre_encoder.")}
    assert ours == theirs
    assert any(
        k.startswith("encoder.interim_downsampling.mlp_module.layer2.bn.bn")
        for k in to_official(model.state_dict())
    )
    state = model.state_dict()
    assert from_official(to_official(state)).keys() == state.keys()


@pytest.mark.parametrize("preset", ["detect.scannet_3detr", "detect.scannet_3detr_masked"])
def test_an_official_checkpoint_imports_detects_and_exports_back(preset, tmp_path):
    state = _official_checkpoint(tmp_path / "checkpoint_best.pth", preset)
    assert _import(tmp_path / "checkpoint_best.pth", tmp_path / "imported.pt", preset) == 0
    model, ckpt = zoo.load(tmp_path / "imported.pt")
    assert ckpt["official"] == {
        "epoch": 1079,
        "args": {"enc_type": preset.endswith("masked") and "masked" or "vanilla", "base_lr": 5e-4,
                 "dataset_name": "scannet", "nqueries": 16},
    }  # fmt: skip
    # the same weights in the official names give the same boxes
    reference = Detector3DETR(model.cfg).eval()
    reference.load_state_dict(from_official(state))
    points = torch.rand(2, 500, 3) * torch.tensor([4.0, 3.0, 2.0])
    lo, hi = points.min(1).values, points.max(1).values
    ours = model.detect(points, point_cloud_dims_min=lo, point_cloud_dims_max=hi)
    theirs = reference.detect(points, lo, hi)
    for key in (
        "sem_cls_logits",
        "center_unnormalized",
        "size_unnormalized",
        "box_corners",
        "objectness_prob",
    ):
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0)
    # exported: 3DETR's names and tensors, in a file torch reads with weights_only (as --test_ckpt does)
    assert main(["export-official", str(tmp_path / "imported.pt"), "--out", str(tmp_path / "exported")]) == 0
    exported = torch.load(tmp_path / "exported.pth", weights_only=True)
    assert exported["model"].keys() == state.keys()
    assert all(torch.equal(exported["model"][k], state[k]) for k in state)
    assert _import(tmp_path / "exported.pth", tmp_path / "again.pt", preset) == 0


def _refused(capsys, code, out):
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not out.exists()
    return err[0]


def test_a_class_head_of_another_dataset_is_refused_in_one_line(tmp_path, capsys):
    _official_checkpoint(tmp_path / "sunrgbd.pth", "scannet_3detr", num_classes=10)
    line = _refused(capsys, _import(tmp_path / "sunrgbd.pth", tmp_path / "out.pt"), tmp_path / "out.pt")
    assert "10 classes" in line and "18" in line


def test_an_encoder_of_another_kind_is_refused_naming_the_preset(tmp_path, capsys):
    _official_checkpoint(tmp_path / "masked.pth", "scannet_3detr_masked")
    line = _refused(capsys, _import(tmp_path / "masked.pth", tmp_path / "out.pt"), tmp_path / "out.pt")
    assert "detect.scannet_3detr_masked" in line


def test_a_checkpoint_holding_other_objects_is_not_unpickled(tmp_path, capsys):
    _official_checkpoint(
        tmp_path / "odd.pth", "scannet_3detr", extra={"where": pathlib.PurePosixPath("/tmp")}
    )
    line = _refused(capsys, _import(tmp_path / "odd.pth", tmp_path / "out.pt"), tmp_path / "out.pt")
    assert "never loads" in line


def test_an_act_encoder_detector_does_not_export_to_3detrs_layout(tmp_path, capsys):
    cfg = DETECT.load_config(
        "cpu",
        overrides=[
            "detr.encoder=act",
            "student.width=32",
            "student.heads=2",
            "student.decoder_heads=2",
            "student.depth=1",
        ],
    )
    from act3d.models.checkpoint import model_payload, save_checkpoint
    from act3d.train.detect import detector

    model, cfg = detector(cfg)
    arch = zoo.detector_arch(cfg.detr, cfg.student, 4096, ["x"] * 18)
    save_checkpoint(tmp_path / "act.pt", model_payload(zoo.DETECTOR, model.state_dict(), 0, None, arch))
    line = _refused(
        capsys,
        main(["export-official", str(tmp_path / "act.pt"), "--out", str(tmp_path / "e")]),
        tmp_path / "e.pth",
    )
    assert "student" in line
