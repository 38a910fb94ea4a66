"""The paper presets end to end on small official-format fixtures: each preset's own protocol (per-epoch
timm schedule, the official FPS kernel's rule, selection, readings), only the sizes made tiny."""

import pytest
from conftest import TINY_STUDENT
from layouts import write_s3dis, write_shapenetpart, write_tiny_scan_h5

from act3d.config import load_config
from act3d.train.finetune import FinetuneRunConfig, finetune
from act3d.train.segment import SegmentRunConfig, segment

TINY = [f"student.{k}={v}" for k, v in TINY_STUDENT.items()] + [
    "patching.num_groups=8",
    "patching.group_size=8",
    "optim.epochs=2",
    "optim.cosine_epochs=2",
    "runtime.precision=float32",
    "runtime.progress=false",
]


def test_scanobjectnn_paper_preset(tmp_path):
    root = write_tiny_scan_h5(tmp_path, count=40)
    over = [f"data.root={root}", "data.num_points=64", "data.load_points=96", "data.on_device=false"]
    over += TINY + ["student.depth=2", "optim.batch_size=8", "votes=2"]
    cfg = load_config(FinetuneRunConfig, "finetune", "scanobjectnn_pb_t50_rs", overrides=over)
    assert (cfg.patching.fps, cfg.optim.schedule, cfg.sampling) == ("pointnet2", "epochs", "fps")
    res = finetune(cfg, tmp_path / "ft").downstream
    assert res.val_samples > 0 and set(res.test) == {"oa", "macc"} and res.protocol["votes"] == 2


@pytest.mark.parametrize("official_data", [False, True])
def test_part_segmentation_paper_preset(tmp_path, official_data):
    over = [f"data.root={write_shapenetpart(tmp_path)}", "data.num_points=128", "student.depth=3"]
    over += TINY + ["propagation=[24,16]", "hidden=[16,16]", "optim.batch_size=2", "runtime.log_every=1"]
    over += ["val_fraction=0"] if official_data else []
    cfg = load_config(SegmentRunConfig, "segment", "paper_part", overrides=over)
    res = segment(cfg, tmp_path / "part").downstream
    assert set(res.test_selected_on_test) == {"class_miou", "instance_miou"}  # on in the preset
    assert (res.val_samples == 0) == official_data and res.test_samples == 4


def test_semantic_segmentation_paper_preset(tmp_path):
    over = [
        f"data.root={write_s3dis(tmp_path)}",
        "data.num_points=128",
        "student.depth=3",
        "sample_rate=0.25",
    ]
    over += TINY + ["propagation=[24,16]", "hidden=[16,16]", "optim.batch_size=2", "votes=1"]
    cfg = load_config(SegmentRunConfig, "segment", "paper_semantic", overrides=over)
    res = segment(cfg, tmp_path / "sem").downstream
    assert res.protocol["test"] == "whole_rooms" and set(res.test_selected_on_test) == {"miou"}
    assert set(res.test) == {"oa", "macc", "miou"} and res.val_samples > 0
