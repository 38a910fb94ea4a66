import os
import pickle

import numpy as np
import pytest
import torch
from layouts import (
    write_fewshot,
    write_modelnet40,
    write_s3dis,
    write_scanobjectnn,
    write_shapenet55,
    write_shapenetpart,
)

from act3d.data.dataset import DataConfig, PointClouds, describe, open_source
from act3d.data.files import read_cloud
from act3d.data.modelnet import ModelNet40Txt, modelnet40_dat, modelnet40_fewshot
from act3d.data.s3dis import S3DISRooms
from act3d.data.safe_pickle import load_pickle
from act3d.data.scanobjectnn import scanobjectnn
from act3d.data.shapenet import ShapeNet55, ShapeNetPart
from act3d.errors import DataError


def test_shapenet55(tmp_path):
    root = write_shapenet55(tmp_path)
    data = ShapeNet55(root, "train")
    assert len(data) == 3 and data.class_names == ["02691150", "02691151"]
    s = data[1]
    assert s.points.shape == (8192, 3) and s.points.dtype == np.float32 and s.label == 1


def test_modelnet40_txt_and_dat(tmp_path):
    root = write_modelnet40(tmp_path)
    txt = ModelNet40Txt(root, "test")
    assert len(txt) == 6 and txt.class_names == ["airplane", "night_stand", "chair"]
    s = txt[2]  # night_stand: the class name itself contains an underscore
    assert s.label == 1 and s.points.shape == (200, 3)
    dat = modelnet40_dat(root, "train")
    assert len(dat) == 6 and dat[5].label == 2 and dat[5].points.shape == (8192, 3)


def test_modelnet40_fewshot(tmp_path):
    root = write_fewshot(tmp_path)
    train, test = modelnet40_fewshot(root, 5, 10, 1)
    assert len(train) == 50 and len(test) == 20
    assert {train[i].label for i in range(50)} == set(range(5))
    # the same episode through the data config that fine-tuning reads
    cfg = DataConfig(format="modelnet40-fewshot", root=str(root), variant="5way10shot", fold=1)
    assert len(open_source(cfg, "train")) == 50 and len(open_source(cfg, "test")) == 20
    with pytest.raises(DataError, match="5way10shot"):
        open_source(DataConfig(format="modelnet40-fewshot", root=str(root), variant="five-way"), "train")


def _assert_unit_sphere(points: np.ndarray) -> None:
    np.testing.assert_allclose(points.mean(0), 0, atol=1e-5)
    assert np.linalg.norm(points, axis=1).max() == pytest.approx(1, abs=1e-5)


def _shift_and_scale(path, shift: float = 5.0, scale: float = 3.0) -> None:
    """Rewrite every cloud of a pickle with its points moved off the unit sphere."""
    data = load_pickle(path)
    if isinstance(data, dict):
        data = {k: [(np.asarray(p) * scale + shift, *rest) for p, *rest in v] for k, v in data.items()}
    else:
        data = [[np.concatenate([c[:, :3] * scale + shift, c[:, 3:]], 1) for c in data[0]], data[1]]
    with open(path, "wb") as f:
        pickle.dump(data, f)


def test_readers_normalise_as_the_official_ones(tmp_path):
    """ModelNet40 (txt, .dat, few-shot) clouds reach the model centred in the unit sphere, whatever their
    stored placement; ShapeNet-55 normalises each sampled subset; ScanObjectNN is used as stored."""
    mn = write_modelnet40(tmp_path / "mn")
    _shift_and_scale(mn / "modelnet40_test_8192pts_fps.dat")
    for source in (modelnet40_dat(mn, "test"), ModelNet40Txt(mn, "test")):
        _assert_unit_sphere(source[0].points)
    fs = write_fewshot(tmp_path / "fs")
    _shift_and_scale(fs / "5way_10shot" / "0.pkl")
    train, test = modelnet40_fewshot(fs, 5, 10, 0)
    _assert_unit_sphere(train[3].points)
    _assert_unit_sphere(test[1].points)
    sn = write_shapenet55(tmp_path / "sn")
    clouds = PointClouds(ShapeNet55(sn, "train"), 1024, train=True)
    _assert_unit_sphere(clouds[0][0].numpy())
    sc = write_scanobjectnn(tmp_path / "sc")
    stored = scanobjectnn(sc, "obj_bg", "test")[0].points
    assert np.linalg.norm(stored, axis=1).max() > 2  # the fixture's Gaussian clouds, untouched


def test_shapenet55_train_plus_test_for_stage2(tmp_path):
    root = write_shapenet55(tmp_path)
    cfg = DataConfig(format="shapenet55", root=str(root), pretrain_split="train+test")
    both = open_source(cfg, "pretrain")
    assert len(both) == 6 and both.files[0].startswith("02691150-modeltest")  # the official order: test first
    with pytest.raises(DataError, match="train\\+test"):
        open_source(
            DataConfig(format="scanobjectnn", root=str(root), pretrain_split="train+test"), "pretrain"
        )


def test_scanobjectnn_variants(tmp_path):
    root = write_scanobjectnn(tmp_path)
    for variant in ("obj_bg", "obj_only", "pb_t50_rs"):
        for split in ("train", "test"):
            data = scanobjectnn(root, variant, split)
            assert len(data) == 6 and data[4].points.shape == (2048, 3) and data[4].label == 4
    with pytest.raises(DataError, match="unknown ScanObjectNN variant"):
        scanobjectnn(root, "hardest")


def test_shapenetpart(tmp_path):
    root = write_shapenetpart(tmp_path)
    data = ShapeNetPart(root, "val")
    assert data.class_names == ["Airplane", "Mug"] and len(data) == 4
    s = data[3]
    assert s.label == 1 and set(np.unique(s.point_labels)) <= {36, 37} and s.points.shape == (300, 3)
    _assert_unit_sphere(s.points)


def test_s3dis(tmp_path):
    root = write_s3dis(tmp_path)
    rooms = S3DISRooms(root, [5])
    assert len(rooms) == 2
    s = rooms[0]
    assert s.points.shape == (5000, 3) and s.colors.max() <= 1 and s.point_labels.max() < 13


def test_open_source_and_point_clouds(tmp_path):
    root = write_scanobjectnn(tmp_path)
    cfg = DataConfig(format="scanobjectnn", root=str(root), variant="obj_only", num_points=1024)
    data = PointClouds(open_source(cfg, "test"), 1024, train=True)
    p, label = data[0]
    assert p.shape == (1024, 3) and p.dtype == torch.float32
    data.set_epoch(1)
    assert not torch.equal(p, data[0][0])  # a fresh subset each epoch
    evaluation = PointClouds(open_source(cfg, "test"), 1024, train=False)
    assert torch.equal(evaluation[0][0], evaluation[0][0])
    assert describe(open_source(cfg, "train"))["per_class"]["bag"] == 1


# ---- user files --------------------------------------------------------------------------------


def test_user_cloud_files(tmp_path):
    pts = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", pts)
    np.savez(tmp_path / "b.npz", points=pts)
    np.savetxt(tmp_path / "c.xyz", pts)
    np.savetxt(tmp_path / "d.txt", np.concatenate([pts, pts], 1), delimiter=",")
    for name in ("a.npy", "b.npz", "c.xyz", "d.txt"):
        np.testing.assert_allclose(read_cloud(tmp_path / name), pts, atol=1e-6)


def test_user_mesh_and_ply_files(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.creation.box(extents=(1, 2, 3))
    for suffix in ("off", "obj", "stl", "ply"):
        mesh.export(tmp_path / f"box.{suffix}")
        points = read_cloud(tmp_path / f"box.{suffix}", num_mesh_samples=500)
        assert points.shape == (500, 3)
        np.testing.assert_allclose(np.abs(points).max(0), [0.5, 1, 1.5], atol=1e-5)
    cloud = trimesh.PointCloud(np.random.default_rng(1).normal(size=(64, 3)))
    cloud.export(tmp_path / "cloud.ply")
    assert read_cloud(tmp_path / "cloud.ply").shape == (64, 3)


# ---- bad input -----------------------------------------------------------------------------------


def test_missing_roots_name_the_layout(tmp_path):
    with pytest.raises(DataError, match="expected shapenet_pc"):
        ShapeNet55(tmp_path / "nope")
    with pytest.raises(DataError, match="ModelNet40 root not found.*modelnet40_shape_names"):
        ModelNet40Txt(tmp_path / "nope")
    with pytest.raises(DataError, match="main_split/training_objectdataset_augmentedrot_scale75.h5"):
        scanobjectnn(tmp_path / "nope")
    with pytest.raises(DataError, match="missing synsetoffset2category.txt"):
        tmp_path.joinpath("sp").mkdir()
        ShapeNetPart(tmp_path / "sp")
    with pytest.raises(DataError, match="Area_<k>_<room>.npy"):
        S3DISRooms(tmp_path / "nope", [5])
    with pytest.raises(DataError, match="needs a root folder"):
        open_source(DataConfig(format="scanobjectnn"), "train")


def test_missing_and_truncated_files_are_named(tmp_path):
    root = write_shapenet55(tmp_path)
    victim = root / "shapenet_pc" / (root / "ShapeNet-55" / "train.txt").read_text().split()[0]
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(DataError, match=f"{victim.name}: truncated or corrupt"):
        ShapeNet55(root, "train")[0]
    victim.unlink()
    with pytest.raises(DataError, match=f"file not found: .*{victim.name}"):
        ShapeNet55(root, "train")[0]
    h5 = write_scanobjectnn(tmp_path / "s") / "main_split" / "test_objectdataset.h5"
    h5.write_bytes(h5.read_bytes()[:1000])
    with pytest.raises(DataError, match="test_objectdataset.h5: not a readable HDF5"):
        scanobjectnn(tmp_path / "s" / "h5_files", "obj_bg", "test")
    with pytest.raises(DataError, match="file not found"):
        read_cloud(tmp_path / "none.npy")
    (tmp_path / "x.abc").write_text("1 2 3")
    with pytest.raises(DataError, match="unsupported file type"):
        read_cloud(tmp_path / "x.abc")
    (tmp_path / "bad.xyz").write_text("1 2 three\n")
    with pytest.raises(DataError, match="bad.xyz: not a table of numbers"):
        read_cloud(tmp_path / "bad.xyz")


def test_nonfinite_empty_and_label_errors(tmp_path):
    pts = np.random.default_rng(0).normal(size=(50, 3))
    pts[[3, 7, 9], 1] = np.nan
    pts[11, 0] = np.inf
    np.save(tmp_path / "nan.npy", pts)
    with pytest.raises(DataError, match="4 of 50 points have NaN/inf"):
        read_cloud(tmp_path / "nan.npy")
    assert read_cloud(tmp_path / "nan.npy", nonfinite="drop").shape == (46, 3)
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(DataError, match="empty"):
        read_cloud(tmp_path / "empty.npy")
    np.save(tmp_path / "flat.npy", np.zeros((10, 2)))
    with pytest.raises(DataError, match="shape \\(N, 3\\+\\)"):
        read_cloud(tmp_path / "flat.npy")
    import h5py

    with h5py.File(tmp_path / "bad_label.h5", "w") as f:
        f["data"] = np.zeros((2, 16, 3), np.float32)
        f["label"] = np.array([0, 15])
    (tmp_path / "main_split").mkdir()
    os.replace(tmp_path / "bad_label.h5", tmp_path / "main_split" / "training_objectdataset.h5")
    with pytest.raises(DataError, match="label 15 is out of range for 15 classes"):
        scanobjectnn(tmp_path, "obj_bg", "train")


def test_too_few_points_are_resampled_with_a_warning(tmp_path, caplog):
    np.save(tmp_path / "small.npy", np.random.default_rng(0).normal(size=(10, 3)))
    root = write_scanobjectnn(tmp_path / "s")
    data = PointClouds(scanobjectnn(root, "obj_bg", "test"), 4096, train=False)
    with caplog.at_level("WARNING"):
        p, _ = data[0]
    assert p.shape == (4096, 3) and "fewer than 4096" in caplog.text


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/act3d_pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    root = write_modelnet40(tmp_path)
    path = root / "modelnet40_train_8192pts_fps.dat"
    with open(path, "wb") as f:
        pickle.dump([[_Evil()], [np.array([0])]], f)
    with pytest.raises(DataError, match="refusing to load (posix|os).system"):
        modelnet40_dat(root, "train")
    assert not os.path.exists("/tmp/act3d_pwned")
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="truncated or corrupt pickle|unsafe or corrupt"):
        load_pickle(path)


CUBE = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)]
QUADS = ["4 0 1 2 3", "4 4 5 6 7", "4 0 1 5 4", "4 2 3 7 6", "4 1 2 6 5", "4 0 3 7 4"]


@pytest.mark.parametrize("quirk", ["run-on header", "comments", "colours after faces", "plain"])
def test_princeton_off_quirks_read_as_the_right_surface(tmp_path, quirk):
    """The OFF files of the Princeton ModelNet archives: counts run into the header (`OFF8 6 0`), comments,
    colour values after the face indices, polygon (here quad) faces; the unit cube must come back sampled on
    its six faces."""
    verts = "\n".join(" ".join(map(str, v)) for v in CUBE)
    faces = "\n".join(q + (" 255 0 0" if quirk == "colours after faces" else "") for q in QUADS)
    header = {"run-on header": "OFF8 6 0", "comments": "OFF\n# exported\n8 6 0\n# vertices"}.get(
        quirk, "OFF\n8 6 0"
    )
    (tmp_path / "cube.off").write_text(f"{header}\n{verts}\n{faces}\n")
    points = read_cloud(tmp_path / "cube.off", num_mesh_samples=600)
    on_a_face = (np.isclose(points, 0, atol=1e-5) | np.isclose(points, 1, atol=1e-5)).any(axis=1)
    assert points.shape == (600, 3) and on_a_face.all()
    counts = [((np.isclose(points[:, a], v, atol=1e-5)).sum()) for a in range(3) for v in (0, 1)]
    assert min(counts) > 50  # all six faces sampled (~100 each): no face lost to the polygon triangulation


def test_a_flat_mesh_is_named(tmp_path):
    (tmp_path / "flat.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")
    with pytest.raises(DataError, match="flat.off: the mesh has zero surface area"):
        read_cloud(tmp_path / "flat.off")


def test_pb_t50_rs_validation_keeps_an_objects_copies_together(tmp_path):
    """PB_T50_RS stores ~5 perturbed copies of each object; validating on copies of training objects would
    flatter the selection. Objects stored copy after copy stay on one side of the split."""
    import h5py

    from act3d.data.dataset import split_validation
    from act3d.data.scanobjectnn import consecutive_runs

    assert consecutive_runs(np.array([0, 0, 1, 1, 1, 0]), run=2).tolist() == [0, 0, 1, 1, 2, 3]
    rng = np.random.default_rng(0)
    objects = rng.integers(0, 15, 60)  # 60 objects, their labels in file order
    copies = rng.integers(4, 6, 60)  # 4 or 5 perturbed copies each, stored one after the other
    labels = np.repeat(objects, copies)
    owner = np.repeat(np.arange(60), copies)
    path = tmp_path / "h5_files" / "main_split" / "training_objectdataset_augmentedrot_scale75.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=rng.normal(size=(len(labels), 32, 3)).astype(np.float32))
        f.create_dataset("label", data=labels.astype(np.uint8))
    source = scanobjectnn(tmp_path / "h5_files", "pb_t50_rs", "train")
    train, val = split_validation(source, 0.1, seed=0)
    val_objects, train_objects = set(owner[val.indices]), set(owner[train.indices])
    assert len(val) >= 0.1 * len(labels) - 15 and not val_objects & train_objects
    # a plain random split (no groups) would have validated on copies of training objects
    source.groups = None
    train, val = split_validation(source, 0.1, seed=0)
    assert set(owner[val.indices]) & set(owner[train.indices])
