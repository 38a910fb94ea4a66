"""FoldingNet-style patch decoder (Point-BERT's dVAE decoder)."""

from __future__ import annotations

import torch
from torch import nn

from act3d.errors import ConfigError
from act3d.models.layers import PointwiseMLP


class FoldingDecoder(nn.Module):
    """Per patch feature `(B, G, C)` -> `coarse (B, G, K/4, 3)` and `fine (B, G, K, 3)`.

    An MLP gives K/4 coarse points; each is folded with a 2x2 grid seed (+-0.05) and the patch feature
    through 1x1 convolutions into 4 fine points (offsets around the coarse point).
    """

    def __init__(self, in_dim: int, num_fine: int, hidden: int = 1024, fold_hidden: int = 512):
        super().__init__()
        if num_fine % 4:
            raise ConfigError(f"group size must be divisible by 4 for the 2x2 folding grid, got {num_fine}")
        self.num_fine, self.num_coarse = num_fine, num_fine // 4
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 3 * self.num_coarse),
        )
        self.final_conv = PointwiseMLP(in_dim + 2 + 3, fold_hidden, fold_hidden, 3)
        step = torch.linspace(-0.05, 0.05, 2)
        grid = torch.stack(torch.meshgrid(step, step, indexing="xy"), dim=-1).reshape(4, 2)  # (4, 2)
        self.register_buffer("folding_seed", grid, persistent=False)

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, g, c = feature.shape
        feature = feature.reshape(b * g, c)
        coarse = self.mlp(feature).reshape(b * g, self.num_coarse, 3)
        # fine point n = 4 m + s folds coarse point m with grid seed s
        centers = coarse.unsqueeze(2).expand(-1, -1, 4, -1).reshape(b * g, self.num_fine, 3)
        seed = self.folding_seed.repeat(self.num_coarse, 1).expand(b * g, -1, -1)  # (BG, N, 2)
        feat = torch.cat([feature.unsqueeze(1).expand(-1, self.num_fine, -1), seed, centers], dim=-1)
        fine = self.final_conv(feat) + centers
        return coarse.reshape(b, g, self.num_coarse, 3), fine.reshape(b, g, self.num_fine, 3)
