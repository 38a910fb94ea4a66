"""ScanNet detection scenes as 3DETR reads them, against a restatement of its dataset (detr_reference.py)."""

import detr_reference as official
import numpy as np
import pytest
from layouts import write_scannet_detection

from act3d.data.scannet import MAX_BOXES, detection_sample, read_scene, scan_names
from act3d.errors import DataError


@pytest.fixture
def scannet(tmp_path):
    return write_scannet_detection(tmp_path, scenes=3, points=80_000)


def test_the_split_lists_keep_the_scans_the_folder_holds(scannet):
    data, meta = scannet
    assert scan_names(data, meta, "train") == ["scene0000_00", "scene0001_00"]  # scene9999_00 is not there
    assert scan_names(data, meta, "val") == ["scene0002_00"]


@pytest.mark.parametrize("augment", [False, True])
def test_a_sample_equals_the_official_getitem_drawn_from_the_same_seed(scannet, augment):
    data, _ = scannet
    scene = read_scene(data, "scene0001_00")
    vert, bbox = np.load(data / "scene0001_00_vert.npy"), np.load(data / "scene0001_00_bbox.npy")
    cropped = 0
    for seed in range(6):
        np.random.seed(seed)
        theirs = official.getitem(vert, bbox, augment)
        ours = detection_sample(scene, np.random.RandomState(seed), augment)
        for key, value in theirs.items():
            assert ours[key].dtype == value.dtype or key == "gt_box_sem_cls_label", key
            assert np.array_equal(ours[key], value), key
        assert ours["point_clouds"].shape == (40_000, 3) and ours["gt_box_present"].sum() <= len(bbox)
        cropped += ours["gt_box_present"].sum() < len(bbox) or np.ptp(ours["point_clouds"][:, 2]) < 2.4
    if augment:
        assert cropped  # the random cuboid did crop some of the draws


def test_corners_are_in_the_upright_camera_frame(scannet):
    data, _ = scannet
    sample = detection_sample(read_scene(data, "scene0000_00"), np.random.RandomState(0), augment=False)
    corners, center, size = (
        sample["gt_box_corners"][0],
        sample["gt_box_centers"][0],
        sample["gt_box_sizes"][0],
    )
    # camera x, y, z = depth x, -z, y
    np.testing.assert_allclose(corners.mean(0), [center[0], -center[2], center[1]], atol=1e-6)
    np.testing.assert_allclose(np.ptp(corners, axis=0), [size[0], size[2], size[1]], atol=1e-6)


def test_bad_layouts_are_one_clear_error(scannet, tmp_path):
    data, meta = scannet
    with pytest.raises(DataError, match="scannetv2_test.txt: missing"):
        scan_names(data, meta, "test")
    np.save(data / "scene0000_00_bbox.npy", np.zeros((MAX_BOXES + 1, 7)) + [0, 0, 0, 1, 1, 1, 3])
    with pytest.raises(DataError, match="65 boxes, more than the 64 box slots"):
        read_scene(data, "scene0000_00")
    np.save(data / "scene0000_00_bbox.npy", np.array([[0, 0, 0, 1, 1, 1, 2.0]]))
    with pytest.raises(DataError, match=r"NYU40 id\(s\) \[2\] are not among the 18 detection classes"):
        read_scene(data, "scene0000_00")
    (data / "scene0001_00_sem_label.npy").unlink()
    with pytest.raises(DataError, match="scene0001_00_sem_label.npy: missing"):
        read_scene(data, "scene0001_00")
    np.save(data / "scene0002_00_vert.npy", np.array([[0.0, 0, float("nan"), 1, 1, 1]]))
    with pytest.raises(DataError, match="labels of shape|NaN"):
        read_scene(data, "scene0002_00")
    (data / "scene0002_00_ins_label.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(DataError, match="not a readable .npy array"):
        read_scene(data, "scene0002_00")


def test_data_check_summarises_a_scannet_folder_and_names_a_bad_file(scannet, capsys):
    import json

    from test_bad_inputs import fails

    from act3d.cli import main

    data, meta = scannet
    assert main(["data", "check", str(data), "--format", "scannet-detection", "--split", "test"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scans"] == 1 and summary["boxes_min"] == 4 and summary["points_max"] == 80_000
    np.save(data / "scene0000_00_bbox.npy", np.array([[0, 0, 0, 1, 1, 1, 2.0]]))
    fails(
        capsys,
        ["data", "check", data, "--format", "scannet-detection", "--meta", meta],
        "scene0000_00_bbox.npy",
    )


def test_the_embedded_rooms_are_scannet_scenes_with_tight_boxes(tmp_path):
    from act3d.data.rooms import room, write_rooms

    data, meta = write_rooms(tmp_path / "rooms", train=3, val=2, points=3000)
    assert scan_names(data, meta, "train") == ["scene0000_00", "scene0001_00", "scene0002_00"]
    for i, name in enumerate(scan_names(data, meta, "train") + scan_names(data, meta, "val")):
        scene = read_scene(data, name)
        assert len(scene.points) == 3000 and len(scene.boxes) == 3 + i % 4
        for k, box in enumerate(scene.boxes, start=1):  # each box is the extent of its object's points
            own = scene.points[scene.instances == k]
            np.testing.assert_allclose(own.min(0), box[:3] - box[3:6] / 2, atol=1e-5)
            np.testing.assert_allclose(own.max(0), box[:3] + box[3:6] / 2, atol=1e-5)
            assert own[:, 2].min() == pytest.approx(0, abs=1e-6)  # standing on the floor
        lo, hi = scene.boxes[:, :2] - scene.boxes[:, 3:5] / 2, scene.boxes[:, :2] + scene.boxes[:, 3:5] / 2
        overlap = (lo[:, None] < hi[None]) & (lo[None] < hi[:, None])
        assert not np.any(np.all(overlap, axis=-1) & ~np.eye(len(lo), dtype=bool))
    assert all(np.array_equal(a, b) for a, b in zip(room(3, 3000), room(3, 3000)))
    sample = detection_sample(read_scene(data, "scene0004_00"), np.random.RandomState(0), augment=True)
    assert sample["gt_box_present"].sum() >= 1
