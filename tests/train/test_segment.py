import json

import pytest
from conftest import TINY_PATCHES, TINY_RUNTIME, TINY_STUDENT
from layouts import write_s3dis, write_shapenetpart

from act3d.config import from_dict
from act3d.errors import DataError
from act3d.train.segment import SegmentRunConfig, segment


def _cfg(task, root, fmt, points):
    return from_dict(
        SegmentRunConfig,
        {
            "task": task,
            "data": {"format": fmt, "root": str(root), "num_points": points},
            "patches": TINY_PATCHES,
            "student": {**TINY_STUDENT, "depth": 3},
            "head_hidden": 16,
            "blocks_per_room": 2,
            "optim": {"epochs": 1, "batch_size": 2, "warmup_epochs": 0.5},
            "runtime": TINY_RUNTIME,
            "pictures": 2,
        },
    )


def _losses(run) -> list[float]:
    import csv

    return [float(r["loss"]) for r in csv.DictReader(open(run / "metrics.csv")) if r.get("loss")]


def test_part_segmentation_on_official_layout(tmp_path):
    cfg = _cfg("part", write_shapenetpart(tmp_path), "shapenetpart", 128)
    cfg.optim.epochs, cfg.optim.lr = 15, 3e-3
    res = segment(cfg, tmp_path / "part")
    losses = _losses(tmp_path / "part")
    # labels are random among each category's parts: learning to name only the category's parts takes the
    # loss from ~log(50) towards log(parts per category)
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3]), losses
    assert set(res["metrics"]) == {"test_class_miou", "test_instance_miou"}
    assert (
        0 <= res["metrics"]["test_instance_miou"] <= 1 and res["val_samples"] == 4
    )  # ShapeNetPart's own val split
    assert (tmp_path / "part" / "predictions.png").stat().st_size > 1000
    assert json.loads((tmp_path / "part" / "results.json").read_text())["task"] == "part"


def test_semantic_segmentation_on_official_layout(tmp_path):
    cfg = _cfg("semantic", write_s3dis(tmp_path), "s3dis", 128)
    res = segment(cfg, tmp_path / "sem")
    assert set(res["metrics"]) == {"test_oa", "test_macc", "test_miou"} and res["test_samples"] > 0
    assert res["val_samples"] > 0  # blocks of the held-out training room


def test_semantic_without_area_5_is_an_error(tmp_path):
    cfg = _cfg("semantic", write_s3dis(tmp_path, areas=(1,)), "s3dis", 128)
    with pytest.raises(DataError, match="no rooms for areas \\[5\\]"):
        segment(cfg, tmp_path / "sem")


def test_s3dis_blocks_as_the_official_loader_cuts_them(tmp_path):
    """xy centred on the block, z kept in metres (semantic_segmentation/dataset.py), training and test."""
    import numpy as np

    from act3d.data.s3dis import S3DISRooms
    from act3d.data.segmentation import RoomBlocks

    rooms = S3DISRooms(write_s3dis(tmp_path), [1])
    heights = np.concatenate([rooms[i].points[:, 2] for i in range(len(rooms))])
    for train in (True, False):
        blocks = RoomBlocks(rooms, 256, train, block=1.0, blocks_per_room=3)
        for i in range(len(blocks)):
            xyz = blocks[i][0].numpy()
            assert np.abs(xyz[:, :2]).max() <= 0.5 + 1e-5  # within the 1 m block around its centre
            assert np.isin(xyz[:, 2], heights).all()  # heights untouched: not centred, not scaled
