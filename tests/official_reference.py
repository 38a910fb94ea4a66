"""A reference statement of the official ACT Stage I model (RunpeiDong/ACT, models/dvae.py), for tests.

Written for comparison, not for use: the official module names, channels-first 1x1 convolutions, the
official order of operations, and nothing shared with act3d's own modules, so that a test can load the
same weights into both (through `act3d.models.official`) and hold their outputs equal. The official code needs
CUDA extensions (knn_cuda, pointnet2_ops, chamfer_dist); their results are computed here in plain PyTorch.

Line references are to models/dvae.py at commit 508019c.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _knn_idx(coor: torch.Tensor, k: int) -> torch.Tensor:
    """`coor (B, 3, N)` -> `(B, k, N)` nearest neighbours of every point, itself included (knn_cuda KNN)."""
    d = torch.cdist(coor.transpose(1, 2), coor.transpose(1, 2))
    return d.topk(k, dim=-1, largest=False).indices.transpose(1, 2)


class Encoder(nn.Module):
    """Mini-PointNet (dvae.py `Encoder`, l.182-206)."""

    def __init__(self, channel: int):
        super().__init__()
        self.channel = channel
        self.first_conv = nn.Sequential(
            nn.Conv1d(3, 128, 1), nn.BatchNorm1d(128), nn.ReLU(), nn.Conv1d(128, 256, 1)
        )
        self.second_conv = nn.Sequential(
            nn.Conv1d(512, 512, 1), nn.BatchNorm1d(512), nn.ReLU(), nn.Conv1d(512, channel, 1)
        )

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        b, g, n, _ = groups.shape
        f = self.first_conv(groups.reshape(b * g, n, 3).transpose(2, 1))
        pooled = f.max(dim=2, keepdim=True).values
        f = self.second_conv(torch.cat([pooled.expand(-1, -1, n), f], dim=1))
        return f.max(dim=2).values.reshape(b, g, self.channel)


class DGCNN(nn.Module):
    """Edge convolutions over the centres (dvae.py `DGCNN`, l.26-118), k = 4."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.input_trans = nn.Conv1d(cin, 128, 1)

        def edge(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, 1, bias=False), nn.GroupNorm(4, b), nn.LeakyReLU(0.2))

        self.layer1, self.layer2 = edge(256, 256), edge(512, 512)
        self.layer3, self.layer4 = edge(1024, 512), edge(1024, 1024)
        self.layer5 = nn.Sequential(
            nn.Conv1d(2304, cout, 1, bias=False), nn.GroupNorm(4, cout), nn.LeakyReLU(0.2)
        )

    @staticmethod
    def graph_feature(coor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, N)` -> `(B, 2C, N, k)`: [neighbour - self, self]."""
        idx = _knn_idx(coor, 4)  # (B, k, N)
        b, c, n = x.shape
        neighbours = torch.stack([x.gather(2, idx[:, j : j + 1].expand(-1, c, -1)) for j in range(4)], dim=-1)
        centre = x.unsqueeze(-1).expand(-1, -1, -1, 4)
        return torch.cat([neighbours - centre, centre], dim=1)

    def forward(self, f: torch.Tensor, coor: torch.Tensor) -> torch.Tensor:
        coor, f = coor.transpose(1, 2), self.input_trans(f.transpose(1, 2))
        outs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            f = layer(self.graph_feature(coor, f)).max(dim=-1).values
            outs.append(f)
        return self.layer5(torch.cat(outs, dim=1)).transpose(1, 2)


class Decoder(nn.Module):
    """FoldingNet decoder (dvae.py `Decoder`, l.208-263)."""

    def __init__(self, channel: int, num_fine: int):
        super().__init__()
        self.num_fine, self.num_coarse = num_fine, num_fine // 4
        self.mlp = nn.Sequential(
            nn.Linear(channel, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, 3 * self.num_coarse),
        )
        self.final_conv = nn.Sequential(
            nn.Conv1d(channel + 5, 512, 1),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Conv1d(512, 512, 1),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Conv1d(512, 3, 1),
        )
        s = torch.tensor([-0.05, 0.05])
        self.seed = torch.stack([s.repeat(2), s.repeat_interleave(2)])  # (2, 4): x varies fastest

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, g, c = feat.shape
        feat = feat.reshape(b * g, c)
        coarse = self.mlp(feat).reshape(b * g, self.num_coarse, 3)
        centres = coarse.repeat_interleave(4, dim=1).transpose(1, 2)  # (BG, 3, N): fine n = 4m + s
        seed = self.seed.repeat(1, self.num_coarse).unsqueeze(0).expand(b * g, -1, -1)
        x = torch.cat([feat.unsqueeze(2).expand(-1, -1, self.num_fine), seed, centres], dim=1)
        fine = self.final_conv(x) + centres
        return coarse.reshape(b, g, self.num_coarse, 3), fine.reshape(b, g, 3, self.num_fine).transpose(
            -1, -2
        )


class Block(nn.Module):
    """timm's pre-norm ViT block with optional LayerScale (`ls1.gamma`), as the teacher's `visual_embed.0`."""

    def __init__(self, dim: int, heads: int, layer_scale: bool):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.Module()
        self.attn.qkv, self.attn.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        if layer_scale:
            self.ls1, self.ls2 = nn.Module(), nn.Module()
            self.ls1.gamma, self.ls2.gamma = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.ones(dim))
        self.layer_scale = layer_scale

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.attn.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1)
        return self.attn.proj((a @ v).transpose(1, 2).reshape(b, n, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._attention(self.norm1(x))
        x = x + (y * self.ls1.gamma if self.layer_scale else y)
        y = self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))
        return x + (y * self.ls2.gamma if self.layer_scale else y)


class PromptedDVAE(nn.Module):
    """`ACTPromptedDiscreteVAEwithVIT` with deep prompts (dvae.py l.266-544)."""

    def __init__(
        self,
        channel: int,
        num_tokens: int,
        group_size: int,
        width: int,
        depth: int,
        heads: int,
        num_prompts: int,
        layer_scale: bool = True,
    ):
        super().__init__()
        self.num_prompts, self.depth = num_prompts, depth
        self.encoder = Encoder(channel)
        self.dgcnn_1 = DGCNN(channel, num_tokens)
        self.codebook = nn.Parameter(torch.randn(num_tokens, channel))
        self.dgcnn_2 = DGCNN(channel, channel)
        self.decoder = Decoder(channel, group_size)
        self.visual_embed = nn.Sequential(
            nn.ModuleList(Block(width, heads, layer_scale) for _ in range(depth)),
            nn.LayerNorm(width, eps=1e-6),
        )
        self.proj_pre, self.proj_post = nn.Linear(channel, width), nn.Linear(width, channel)
        self.visual_pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, width))
        self.prompt_dropout = nn.Dropout(0.1)
        self.visual_prompt_token = nn.Parameter(torch.randn(1, num_prompts, width))
        self.visual_prompt_pos = nn.Parameter(torch.randn(1, num_prompts, width))
        self.deep_prompt_tokens = nn.Parameter(torch.randn(depth - 1, num_prompts, width))
        self.deep_prompt_pos = nn.Parameter(torch.randn(depth - 1, num_prompts, width))

    def visual_embedding(self, x: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """dvae.py `visual_embedding_deep_prompt` (l.489-527): positions added before every block."""
        b, p = x.shape[0], self.num_prompts
        pos = torch.cat([self.visual_prompt_pos.expand(b, -1, -1), self.visual_pos_embed(center)], dim=1)
        h = torch.cat(
            [self.prompt_dropout(self.visual_prompt_token.expand(b, -1, -1)), self.proj_pre(x)], dim=1
        )
        for i, block in enumerate(self.visual_embed[0]):
            if i > 0:
                h = torch.cat(
                    [self.prompt_dropout(self.deep_prompt_tokens[i - 1].expand(b, -1, -1)), h[:, p:]], dim=1
                )
                pos = torch.cat([self.deep_prompt_pos[i - 1].expand(b, -1, -1), pos[:, p:]], dim=1)
            h = block(h + pos)
        return self.proj_post(self.visual_embed[1](h)[:, p:])

    def forward(self, neighborhood: torch.Tensor, center: torch.Tensor, tau: float, hard: bool = False):
        """dvae.py `forward` (l.529-544) from given patches: `(coarse, fine, logits)`."""
        logits = self.dgcnn_1(self.encoder(neighborhood), center)
        one_hot = F.gumbel_softmax(logits, tau=tau, dim=2, hard=hard)
        sampled = self.visual_embedding(torch.einsum("bgn,nc->bgc", one_hot, self.codebook), center)
        coarse, fine = self.decoder(self.dgcnn_2(sampled, center))
        return coarse, fine, logits

    def tokenizer_features(self, neighborhood: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """dvae.py `forward_tokenizer_features(return_global=True)`: the Stage II target."""
        logits = self.dgcnn_1(self.encoder(neighborhood), center)
        one_hot = F.gumbel_softmax(logits, tau=1.0, dim=2, hard=True)
        sampled = self.visual_embedding(torch.einsum("bgn,nc->bgc", one_hot, self.codebook), center)
        return self.dgcnn_2(sampled, center)

    @staticmethod
    def get_loss(coarse, fine, neighborhood, logits) -> tuple[torch.Tensor, torch.Tensor]:
        """dvae.py `get_loss`: Chamfer-L1 of coarse and fine, and `F.kl_div(log q, log uniform, batchmean)`."""
        b, g, k, _ = neighborhood.shape
        gt = neighborhood.reshape(b * g, k, 3)

        def cd_l1(x: torch.Tensor) -> torch.Tensor:  # extensions/chamfer_dist ChamferDistanceL1
            d = torch.cdist(x.reshape(b * g, -1, 3), gt) ** 2
            return (d.min(2).values.sqrt().mean() + d.min(1).values.sqrt().mean()) / 2

        log_q = torch.log(F.softmax(logits, dim=-1).mean(dim=1))
        log_uniform = torch.log(torch.tensor([1.0 / logits.shape[-1]]))
        kl = F.kl_div(
            log_q, log_uniform.expand(log_q.size(0), log_q.size(1)), None, None, "batchmean", log_target=True
        )
        return cd_l1(coarse) + cd_l1(fine), kl
