"""ModelNet-C corruptions and scores against the official code (restated in modelnetc_reference.py)."""

import modelnetc_reference as official
import numpy as np
import pytest

from act3d.errors import ConfigError
from act3d.eval.robust import (
    CORRUPTIONS,
    DGCNN_OA,
    LEVELS,
    SETTINGS,
    cloud_values,
    corrupt,
    corrupted_sets,
    corrupted_size,
    scores,
)


def _cloud(n: int = 1024, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pc = rng.normal(size=(n, 3)).astype(np.float32)
    return pc / np.linalg.norm(pc, axis=1).max()


def test_the_names_are_the_official_ones():
    assert CORRUPTIONS == tuple(official.CORRUPTIONS) and LEVELS == 5 and DGCNN_OA == official.DGCNN
    assert SETTINGS[0] == "scale_0" and SETTINGS[-1] == "add_local_4" and len(SETTINGS) == 35


@pytest.mark.parametrize("corruption", CORRUPTIONS)
@pytest.mark.parametrize("level", range(LEVELS))
def test_each_corruption_equals_the_official_function_drawn_from_the_same_seed(corruption, level):
    for n, seed in ((1024, 11), (700, 12)):
        pc = _cloud(n, seed)
        np.random.seed(seed)
        theirs = official.CORRUPTIONS[corruption](pc.copy(), level).astype(np.float32)  # as the loader reads
        ours = corrupt(pc, corruption, level, seed)
        assert ours.dtype == np.float32 and ours.shape == theirs.shape == (
            corrupted_size(n, corruption, level),
            3,
        )
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
        if corruption not in ("scale", "rotate"):  # the same arithmetic: equal bit for bit
            assert np.array_equal(ours, theirs)


def test_the_counts_are_the_official_ones():
    expected = {
        "dropout_global": [768, 640, 512, 384, 256],
        "dropout_local": [924, 824, 724, 624, 524],
        "add_global": [1034, 1044, 1054, 1064, 1074],
        "add_local": [1124, 1224, 1324, 1424, 1524],
    }
    for corruption, sizes in expected.items():
        assert [corrupted_size(1024, corruption, level) for level in range(5)] == sizes
    assert corrupted_size(300, "add_local", 4) == 600  # the official buffer holds at most N added points
    np.random.seed(0)
    assert len(official.add_local(_cloud(300), 4)) == 600


def test_scale_normalises_and_added_points_stay_in_the_unit_ball():
    out = corrupt(_cloud(), "scale", 4, 0)
    assert np.abs(out.mean(axis=0)).max() < 1e-5 and np.linalg.norm(out, axis=1).max() == pytest.approx(
        1, abs=1e-6
    )
    added = corrupt(_cloud(), "add_local", 4, 0)[1024:]
    assert np.linalg.norm(added, axis=1).max() <= 1 + 1e-6


def test_a_seed_damages_a_cloud_the_same_way_and_another_seed_does_not():
    pc = _cloud()
    assert np.array_equal(corrupt(pc, "jitter", 2, 5), corrupt(pc, "jitter", 2, 5))
    assert not np.array_equal(corrupt(pc, "jitter", 2, 5), corrupt(pc, "jitter", 2, 6))
    clouds = np.stack([_cloud(600, s) for s in range(3)])
    first, again = corrupted_sets(clouds, 0), corrupted_sets(clouds[:2], 0)
    assert set(first) == set(SETTINGS) and first["add_local_1"].shape == (3, 800, 3)
    assert all(np.array_equal(first[k][:2], again[k]) for k in SETTINGS)  # per cloud, whatever else is drawn


@pytest.mark.parametrize(
    "args,message",
    [
        (("blur", 0), "unknown corruption 'blur'; expected one of scale, jitter"),
        (("jitter", 5), "level must be an integer 0-4"),
        (("jitter", -1), "level must be an integer 0-4"),
    ],
)
def test_an_unknown_corruption_or_level_is_one_clear_error(args, message):
    with pytest.raises(ConfigError, match=message):
        corrupt(_cloud(), *args, seed=0)


def test_a_cloud_the_corruption_would_empty_is_refused():
    with pytest.raises(ConfigError, match="dropout_local level 4 removes every point of a 400-point cloud"):
        corrupt(_cloud(400), "dropout_local", 4, 0)


def test_scores_equal_the_official_formula():
    rng = np.random.default_rng(0)
    oa = {c: [float(x) for x in rng.uniform(0.4, 0.95, 5)] for c in CORRUPTIONS}
    clean = 0.9137
    ours = scores(oa, clean)
    theirs = official.official_scores(
        lambda split: clean if split == "clean" else oa[split[:-2]][int(split[-1])]
    )
    assert (ours["mCE"], ours["RmCE"], ours["mOA"]) == (theirs["mCE"], theirs["RmCE"], theirs["mOA"])
    assert [ours["corruptions"][c]["CE"] for c in CORRUPTIONS] == theirs["CE"]
    assert [ours["corruptions"][c]["RCE"] for c in CORRUPTIONS] == theirs["RCE"]
    # DGCNN's own accuracies give mCE 1 and RmCE 1, by construction
    dgcnn = scores({c: [DGCNN_OA[c]] * 5 for c in CORRUPTIONS}, DGCNN_OA["clean"])
    assert dgcnn["mCE"] == 1.0 and dgcnn["RmCE"] == 1.0


def test_per_cloud_values_average_to_the_unrounded_scores():
    rng = np.random.default_rng(1)
    correct = {c: (rng.random((5, 40)) < 0.7).astype(np.int64) for c in CORRUPTIONS}
    clean = (rng.random(40) < 0.9).astype(np.int64)
    values = cloud_values(correct, clean)
    oa = {c: correct[c].mean(axis=1).tolist() for c in CORRUPTIONS}
    mce = np.mean([(1 - np.mean(oa[c])) / (1 - DGCNN_OA[c]) for c in CORRUPTIONS])
    assert values["mCE"].mean() == pytest.approx(mce)
    assert abs(scores(oa, clean.mean())["mCE"] - mce) < 2e-3  # the official rounding, to 3 decimals
