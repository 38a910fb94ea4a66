"""3DETR's pre-encoder: one PointNet++ set abstraction (`third_party/pointnet2/pointnet2_modules.py`
`PointnetSAModuleVotes` l.161-268, built by `models/model_3detr.py` `build_preencoder` l.342-351): FPS to
`npoint` centres (the CUDA kernel's rule), a ball query of `radius` with `nsample` neighbours, their offsets
from the centre divided by the radius (beside any point features), a shared 1x1 conv MLP with batch norm and
ReLU, and a max over the neighbours."""

from __future__ import annotations

import torch
from torch import nn

from act3d.ops.ball_query import ball_query
from act3d.ops.fps import farthest_point_sampling
from act3d.ops.indexing import gather_points


class SetAbstraction(nn.Module):
    """`(B, N, 3)` points (+ `(B, C, N)` features) -> `npoint` centres `(B, npoint, 3)`, their features
    `(B, mlp[-1], npoint)` and their indices `(B, npoint)` into the points."""

    def __init__(self, mlp: list[int], npoint: int = 2048, radius: float = 0.2, nsample: int = 64):
        super().__init__()
        self.npoint, self.radius, self.nsample = npoint, radius, nsample
        dims = [mlp[0] + 3, *mlp[1:]]  # the offsets come first (use_xyz)
        layers: list[nn.Module] = []
        for cin, cout in zip(dims[:-1], dims[1:]):  # pytorch_utils.py Conv2d: no bias beside batch norm
            conv = nn.Conv2d(cin, cout, 1, bias=False)
            nn.init.kaiming_normal_(conv.weight)
            layers += [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*layers)

    def forward(
        self, xyz: torch.Tensor, features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inds = farthest_point_sampling(xyz, self.npoint, rule="pointnet2")
        centers = gather_points(xyz, inds)
        idx = ball_query(xyz, centers, self.radius, self.nsample)  # (B, npoint, nsample)
        grouped = (gather_points(xyz, idx) - centers.unsqueeze(2)) / self.radius  # (B, npoint, nsample, 3)
        grouped = grouped.permute(0, 3, 1, 2)  # (B, 3, npoint, nsample)
        if features is not None:
            neighbours = gather_points(features.transpose(1, 2), idx).permute(0, 3, 1, 2)
            grouped = torch.cat([grouped, neighbours], dim=1)
        return centers, self.mlp(grouped.contiguous()).amax(dim=3), inds  # the official layout, its sums
