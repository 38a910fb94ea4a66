"""DeviceClouds: the training set held on the device, batches drawn with tensor ops."""

import numpy as np
import torch

from act3d.data.dataset import DeviceClouds
from act3d.data.sample import Sample


class Source:
    """Clouds of different sizes; cloud i's points all have x == i (so a point tells its cloud)."""

    name, class_names = "toy", ["a", "b"]

    def __init__(self, sizes, normalize_subset=False):
        rng = np.random.default_rng(0)
        self.clouds = [
            np.c_[np.full(n, i), rng.normal(size=(n, 2))].astype(np.float32) for i, n in enumerate(sizes)
        ]
        self.normalize_subset = normalize_subset

    def __len__(self):
        return len(self.clouds)

    def __getitem__(self, i):
        return Sample(self.clouds[i], i % 2)


def test_batches_are_fresh_subsets_of_each_cloud_without_repeats():
    data = DeviceClouds(Source([300, 200, 250]), num_points=64)
    assert data.points.shape == (3, 200, 3)  # the smallest cloud's size; longer clouds keep a subset
    torch.manual_seed(0)
    points, labels = data.take(torch.tensor([2, 0, 2]))
    assert points.shape == (3, 64, 3) and labels.tolist() == [0, 0, 0]
    assert (points[:, :, 0] == torch.tensor([2.0, 0.0, 2.0])[:, None]).all()  # each from its own cloud
    for cloud in points:
        assert len(torch.unique(cloud, dim=0)) == 64  # without replacement
    again, _ = data.take(torch.tensor([2, 0, 2]))
    assert not torch.equal(points, again)  # a new subset each draw
    torch.manual_seed(0)
    assert torch.equal(data.take(torch.tensor([2, 0, 2]))[0], points)  # the seed decides it


def test_short_clouds_are_resampled_and_subsets_normalised_when_asked():
    data = DeviceClouds(Source([40, 100], normalize_subset=True), num_points=64)
    assert data.points.shape == (2, 64, 3)  # the 40-point cloud resampled up to num_points
    points, _ = data.take(torch.tensor([1]))
    assert torch.allclose(points.mean(1), torch.zeros(1, 3), atol=1e-6)
    assert torch.isclose(points.norm(dim=-1).max(), torch.tensor(1.0))
