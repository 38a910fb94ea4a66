"""3DETR's modules restated for the tests from facebookresearch/3detr @a5d1aad, with the official module
names (so official state dicts load as they are). FPS and the ball query are act3d's, each tested on its own
against the CUDA kernels' rules (tests/ops)."""

import torch
import torch.nn.functional as F
from torch import nn

from act3d.ops.ball_query import ball_query_naive
from act3d.ops.fps import farthest_point_sampling


class _BN(nn.Sequential):  # pytorch_utils.py _BNBase l.36-43: weight 1, bias 0, named `bn`
    def __init__(self, size):
        super().__init__()
        self.add_module("bn", nn.BatchNorm2d(size))
        nn.init.constant_(self[0].weight, 1.0)
        nn.init.constant_(self[0].bias, 0)


class _Conv2d(nn.Sequential):  # pytorch_utils.py _ConvBase l.65-117 (not preact): conv, bn, activation
    def __init__(self, cin, cout):
        super().__init__()
        conv = nn.Conv2d(cin, cout, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), bias=False)
        nn.init.kaiming_normal_(conv.weight)
        self.add_module("conv", conv)
        self.add_module("bn", _BN(cout))
        self.add_module("activation", nn.ReLU(inplace=True))


class PointnetSAModuleVotes(nn.Module):  # pointnet2_modules.py l.161-268, use_xyz, max pooling
    def __init__(self, mlp, npoint, radius, nsample, normalize_xyz=True):
        super().__init__()
        self.npoint, self.radius, self.nsample, self.normalize_xyz = npoint, radius, nsample, normalize_xyz
        spec = list(mlp)
        spec[0] += 3
        self.mlp_module = nn.Sequential()
        for i in range(len(spec) - 1):  # SharedMLP, pytorch_utils.py l.8-33
            self.mlp_module.add_module(f"layer{i}", _Conv2d(spec[i], spec[i + 1]))

    def forward(self, xyz, features=None):
        inds = farthest_point_sampling(xyz, self.npoint, rule="pointnet2").int()
        xyz_flipped = xyz.transpose(1, 2).contiguous()
        new_xyz = torch.gather(xyz_flipped, 2, inds.long()[:, None, :].expand(-1, 3, -1)).transpose(1, 2)
        idx = ball_query_naive(xyz, new_xyz, self.radius, self.nsample)  # QueryAndGroup l.314-366
        b, m, k = idx.shape
        grouped_xyz = torch.gather(xyz_flipped, 2, idx.reshape(b, 1, m * k).expand(-1, 3, -1)).reshape(
            b, 3, m, k
        )
        grouped_xyz -= new_xyz.transpose(1, 2).unsqueeze(-1)
        if self.normalize_xyz:
            grouped_xyz /= self.radius
        new_features = grouped_xyz
        if features is not None:
            c = features.shape[1]
            grouped = torch.gather(features, 2, idx.reshape(b, 1, m * k).expand(-1, c, -1)).reshape(
                b, c, m, k
            )
            new_features = torch.cat([grouped_xyz, grouped], dim=1)
        new_features = self.mlp_module(new_features)
        new_features = F.max_pool2d(new_features, kernel_size=[1, new_features.size(3)]).squeeze(-1)
        return new_xyz, new_features, inds


def sa_to_act3d(state: dict) -> dict:
    """Official set-abstraction names -> act3d's (`mlp_module.layer{i}.conv` -> `mlp.{3i}`, its `bn.bn` ->
    `mlp.{3i+1}`)."""
    out = {}
    for key, value in state.items():
        _, layer, part, *rest = key.split(".")
        i = int(layer.removeprefix("layer"))
        out[f"mlp.{3 * i + (part == 'bn')}.{rest[-1]}"] = value
    return out
