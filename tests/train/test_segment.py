import json

import pytest
import torch
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
            "patching": TINY_PATCHES,
            "student": {**TINY_STUDENT, "depth": 3},
            "propagation": [24, 16],
            "hidden": [16, 16],
            "sample_rate": 0.25,
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
    cfg.optim.epochs, cfg.optim.lr = 30, 3e-3
    res = segment(cfg, tmp_path / "part").downstream
    losses = _losses(tmp_path / "part")
    # labels are random among each category's parts: learning to name only the category's parts takes the
    # loss from ~log(50) towards log(parts per category)
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3]), losses
    assert set(res.test) == set(res.val) == {"class_miou", "instance_miou"}
    assert 0 <= res.test["instance_miou"] <= 1 and res.val_samples == 4  # ShapeNetPart's own val split
    assert (tmp_path / "part" / "predictions.png").stat().st_size > 1000
    assert json.loads((tmp_path / "part" / "results.json").read_text())["task"] == "part"


def test_semantic_segmentation_on_official_layout(tmp_path):
    cfg = _cfg("semantic", write_s3dis(tmp_path), "s3dis", 128)
    res = segment(cfg, tmp_path / "sem").downstream
    assert set(res.test) == {"oa", "macc", "miou"} and res.test_samples > 0
    assert res.val_samples > 0  # blocks of the held-out training room


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
        blocks = RoomBlocks(rooms, 256, train, block=1.0, sample_rate=0.1)
        for i in range(len(blocks)):
            xyz = blocks[i][0].numpy()
            assert np.abs(xyz[:, :2]).max() <= 0.5 + 1e-5  # within the 1 m block around its centre
            assert np.isin(xyz[:, 2], heights).all()  # heights untouched: not centred, not scaled


def test_s3dis_epochs_follow_the_official_rule():
    """An epoch holds int(sum of points x sample_rate / num_points) blocks, each room's share of them in
    proportion to its points (semantic_segmentation/dataset.py l.104-109)."""
    from act3d.data.segmentation import blocks_per_room

    # int(108,000 / 2048) = 52 blocks over 9 rooms of 12,000 points: 5.78 each -> 6 (the case of issue 19)
    assert blocks_per_room([12000] * 9, 2048) == [6] * 9
    counts = blocks_per_room([90000, 30000, 60000], 1000, sample_rate=0.5)  # 90 blocks, 3 : 1 : 2
    assert counts == [45, 15, 30]


def test_s3dis_rooms_are_drawn_in_proportion_to_their_points(tmp_path):
    import numpy as np

    from act3d.data.segmentation import RoomBlocks

    rooms = [_room(30000, 0), _room(10000, 1)]
    blocks = RoomBlocks(_Rooms(rooms), 512, True, sample_rate=0.1)
    assert len(blocks) == int(40000 * 0.1 / 512) == 7
    assert np.bincount(blocks.room_of).tolist() == [5, 2]  # round(7 * 3/4), round(7 * 1/4)
    a, b = blocks[0][0], blocks[0][0]
    assert torch.equal(a, b)  # the same epoch draws the same block
    blocks.set_epoch(1)
    assert not torch.equal(a, blocks[0][0])  # a new epoch draws new blocks
    # a block holds more than 1024 points before its 512 are drawn, without replacement
    labels = blocks[3][2].numpy()
    assert len(np.unique(blocks[3][0].numpy(), axis=0)) == 512 and labels.shape == (512,)


def test_s3dis_class_weights_are_the_official_cube_root_ratio():
    import numpy as np

    from act3d.data.segmentation import label_weights

    labels = np.array([0] * 800 + [1] * 100 + [2] * 100)  # frequencies 0.8, 0.1, 0.1; class 3 absent
    room = _room(len(labels), 0)
    room.point_labels = labels
    w = label_weights([room], 4)
    np.testing.assert_allclose(w, [1.0, 8 ** (1 / 3), 8 ** (1 / 3), 0.0], rtol=1e-6)


def test_whole_rooms_cover_every_point_in_full_pieces():
    import numpy as np

    from act3d.data.segmentation import whole_room_blocks

    room = _room(6000, 0)
    pieces = whole_room_blocks(room.points, 256, np.random.default_rng(0), block=1.0, stride=0.5)
    covered = np.unique(np.concatenate([idx for idx, _ in pieces]))
    assert len(covered) == len(room.points)  # every point is predicted at least once
    assert all(len(idx) == 256 for idx, _ in pieces)
    for idx, centre in pieces:  # each piece lies in its 1 m column (+ 1 mm)
        assert np.abs(room.points[idx, :2] - centre).max() <= 0.5 + 1e-3 + 1e-6


def test_semantic_whole_room_test_protocol(tmp_path):
    cfg = _cfg("semantic", write_s3dis(tmp_path), "s3dis", 128)
    cfg.test_protocol, cfg.votes = "whole_rooms", 2
    res = segment(cfg, tmp_path / "sem").downstream
    assert res.protocol["test"] == "whole_rooms" and res.test_samples == 2 * 5000  # every Area 5 point
    assert 0 <= res.test["miou"] <= 1


def test_a_task_that_does_not_fit_the_data_is_one_line():
    from act3d.errors import ConfigError

    with pytest.raises(ConfigError, match="data.format.*s3dis for task 'semantic'"):
        from_dict(SegmentRunConfig, {"task": "semantic", "data": {"format": "shapenetpart"}})


def test_the_semantic_preset_keeps_its_task(tmp_path, monkeypatch):
    """`act3d segment --preset paper_semantic` runs semantic segmentation (the --task default once won)."""
    from act3d.cli import main
    from act3d.train import segment as segment_module
    from act3d.train.stage import DownstreamResult, StageResult

    result = DownstreamResult("semantic", "s3dis", 0, None, 0, 0.0, 0, {}, {"miou": 0.5}, 0, 1, {})
    seen = {}
    monkeypatch.setattr(
        segment_module,
        "segment",
        lambda cfg, *a, **k: seen.setdefault("cfg", cfg) and StageResult(tmp_path, 0, 0.0, result),
    )
    root = write_s3dis(tmp_path)
    assert (
        main(["segment", "--preset", "paper_semantic", "--root", str(root), "--out", str(tmp_path / "o")])
        == 0
    )
    assert (seen["cfg"].task, seen["cfg"].data.format, seen["cfg"].test_protocol) == (
        "semantic",
        "s3dis",
        "whole_rooms",
    )
    seen.clear()
    assert main(["segment", "--task", "semantic", "--root", str(root), "--out", str(tmp_path / "o2")]) == 0
    assert seen["cfg"].task == "semantic"
    seen.clear()
    assert main(["segment", "--root", str(root), "--out", str(tmp_path / "o3")]) == 0
    assert seen["cfg"].task == "part"
    # a task the preset's data cannot serve: one line, exit 2
    assert (
        main(["segment", "--preset", "paper_part", "--task", "semantic", "--out", str(tmp_path / "o4")]) == 2
    )


def test_part_shapes_draw_with_replacement(tmp_path):
    import numpy as np

    from act3d.data.segmentation import PartShapes
    from act3d.data.shapenet import ShapeNetPart

    shapes = PartShapes(ShapeNetPart(write_shapenetpart(tmp_path), "train"), 64, True)
    points = shapes[0][0].numpy()  # the fixture's shapes hold more than 64 points, yet some repeat
    assert len(np.unique(points, axis=0)) < 64


class _Rooms:
    def __init__(self, rooms):
        self.rooms, self.class_names, self.name = rooms, [], "rooms"

    def __len__(self):
        return len(self.rooms)

    def __getitem__(self, i):
        return self.rooms[i]


def _room(n: int, seed: int):
    import numpy as np

    from act3d.data.sample import Sample

    rng = np.random.default_rng(seed)
    return Sample(
        rng.uniform(0, [3, 2, 3], size=(n, 3)).astype(np.float32),
        colors=rng.uniform(size=(n, 3)).astype(np.float32),
        point_labels=rng.integers(0, 13, n),
        origin=f"room{seed}",
    )


def test_step_twice_takes_two_adamw_steps_per_batch(tmp_path):
    """The official segmentation loops call optimizer.step() before and after clipping (main.py l.211-219)."""
    from act3d.models.checkpoint import load_checkpoint

    steps = {}
    for twice in (False, True):
        cfg = _cfg("part", write_shapenetpart(tmp_path / str(twice)), "shapenetpart", 128)
        cfg.optim.max_steps, cfg.optim.step_twice = 2, twice
        segment(cfg, tmp_path / f"run{twice}")
        state = load_checkpoint(tmp_path / f"run{twice}" / "checkpoints" / "last.pt", "act3d-segmenter")
        steps[twice] = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert steps == {False: {2}, True: {4}}


def test_official_data_and_test_selected_readings(tmp_path):
    """val_fraction 0 trains as the official mains: ShapeNetPart on train + val (part_segmentation/main.py
    l.109), S3DIS on every training room; report_test_selected scores the test split after every epoch and
    keeps each measure's best on its own (main.py l.332-337), apart from act3d's once-read test."""
    import csv

    part = _cfg("part", write_shapenetpart(tmp_path), "shapenetpart", 128)
    part.val_fraction, part.report_test_selected, part.optim.epochs = 0.0, True, 3
    res = segment(part, tmp_path / "part").downstream
    assert res.val == {} and res.val_samples == 0 and res.selected_step == res.steps
    assert res.steps == 3 * (2 * 2 * len(res.class_names)) // 2  # train + val shapes, batch 2, 3 epochs
    rows = [r for r in csv.DictReader(open(tmp_path / "part" / "metrics.csv")) if r.get("test_class_miou")]
    assert len(rows) == 3
    for measure in ("class_miou", "instance_miou"):  # each the best of its own column
        assert res.test_selected_on_test[measure] == pytest.approx(
            max(float(r[f"test_{measure}"]) for r in rows)
        )

    semantic = _cfg("semantic", write_s3dis(tmp_path / "s3dis"), "s3dis", 128)
    semantic.val_fraction, semantic.report_test_selected = 0.0, True
    res = segment(semantic, tmp_path / "sem").downstream
    assert res.val_samples == 0 and set(res.test_selected_on_test) == {"miou"}


def test_shapenetpart_trainval_is_train_and_val(tmp_path):
    from act3d.data.shapenet import ShapeNetPart

    root = write_shapenetpart(tmp_path)
    train, val, both = (ShapeNetPart(root, s) for s in ("train", "val", "trainval"))
    assert both.items == train.items + val.items and len(both) == 2 * len(train)


def test_held_out_sets_draw_anew_only_for_the_per_epoch_test_readings(tmp_path):
    """The official loaders draw ShapeNetPart points and S3DIS blocks anew each epoch, test sets too
    (part_segmentation/dataset.py l.155, semantic_segmentation/dataset.py l.119-130): the per-epoch
    test-selected readings take draws 1, 2, ...; every score act3d reports reads draw 0."""
    from act3d.data.s3dis import S3DISRooms
    from act3d.data.segmentation import PartShapes, RoomBlocks
    from act3d.data.shapenet import ShapeNetPart

    shapes = PartShapes(ShapeNetPart(write_shapenetpart(tmp_path / "p"), "test"), 64, False)
    blocks = RoomBlocks(S3DISRooms(write_s3dis(tmp_path / "s"), [5]), 256, False, block=1.0, sample_rate=0.1)
    for data in (shapes, blocks):
        first = data[0][0].clone()
        data.set_epoch(3)  # the training epoch does not move a held-out set
        assert torch.equal(data[0][0], first)
        data.draw = 1
        assert not torch.equal(data[0][0], first)
        data.draw = 0
        assert torch.equal(data[0][0], first)
