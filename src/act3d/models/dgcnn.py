"""The DGCNN over patch centres used inside ACT's dVAE (from Point-BERT): edge convolutions on the kNN
graph of the centres, GroupNorm + LeakyReLU(0.2)."""

from __future__ import annotations

import torch
from torch import nn

from act3d.ops.knn import knn


def _edge_features(feat: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """`feat (B, G, C)`, `idx (B, G, k)` -> `(B, G, k, 2C)`: [neighbour - self, self] per edge."""
    b, g, c = feat.shape
    k = idx.shape[-1]
    neighbours = feat.gather(1, idx.reshape(b, g * k, 1).expand(-1, -1, c)).reshape(b, g, k, c)
    center = feat.unsqueeze(2).expand(-1, -1, k, -1)
    return torch.cat([neighbours - center, center], dim=-1)


class GroupNormLast(nn.GroupNorm):
    """`nn.GroupNorm` for channels-last input `(B, ..., C)`: statistics per sample and channel group over
    all other positions, as GroupNorm on the channels-first layout computes them."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[0], x.shape[-1]
        grouped = x.reshape(b, -1, self.num_groups, c // self.num_groups)
        var, mean = torch.var_mean(grouped, dim=(1, 3), keepdim=True, unbiased=False)
        x = ((grouped - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)
        return x * self.weight + self.bias


def _edge_layer(cin: int, cout: int) -> nn.Sequential:
    # a 1x1 convolution over edges is a per-edge linear map; channels-last keeps it a plain matmul
    return nn.Sequential(nn.Linear(cin, cout, bias=False), GroupNormLast(4, cout), nn.LeakyReLU(0.2))


class DGCNN(nn.Module):
    """`tokens (B, G, C_in)`, `center (B, G, 3)` -> `(B, G, C_out)`.

    Four edge convolutions (widths 256, 512, 512, 1024 at `hidden=1`) whose max-pooled outputs are
    concatenated and projected to `out_dim`.
    """

    def __init__(self, in_dim: int, out_dim: int, k: int = 4, hidden: float = 1.0):
        super().__init__()
        w0, w1, w2, w3, w4 = (int(c * hidden) for c in (128, 256, 512, 512, 1024))
        self.k = k
        self.input_trans = nn.Linear(in_dim, w0)
        self.layer1 = _edge_layer(2 * w0, w1)
        self.layer2 = _edge_layer(2 * w1, w2)
        self.layer3 = _edge_layer(2 * w2, w3)
        self.layer4 = _edge_layer(2 * w3, w4)
        self.layer5 = nn.Sequential(
            nn.Linear(w1 + w2 + w3 + w4, out_dim, bias=False), GroupNormLast(4, out_dim), nn.LeakyReLU(0.2)
        )

    def forward(self, tokens: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        _, idx = knn(center, center, min(self.k, center.shape[1]))
        f = self.input_trans(tokens)
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            f = layer(_edge_features(f, idx)).max(dim=2).values  # (B, G, C_i)
            outs.append(f)
        return self.layer5(torch.cat(outs, dim=-1))
