"""DAPT, dynamic adapters with internal prompts (Zhou et al., CVPR 2024).

Official: LMD0311/DAPT @41aa0bc, models/DAPT.py. Every block of the frozen backbone gains a dynamic adapter
beside its MLP (`Adapter`, l.174-227: LayerNorm, a ReLU'd per-token scale, a rank-`rank` bottleneck with its
up-projection zero-initialised), whose output, GELU'd and averaged over the tokens, enters the sequence as a
new prompt token after the cls token (`Block.forward`, l.159-171); and learnable scale-and-shift pairs
(`init_tfts` / `apply_tfts`, l.446-461) follow the patch embedding, every block's norms, qkv, attention
projection and MLP layers, and the final norm. Unlike the Point-MAE / ACT backbone's own forward, DAPT adds
the positions once, before the first block (`PointTransformer_DAPT.forward`, l.378-379).

Parameter names follow the official ones (`tfts_gamma_*`, `Adapter_MLP`) so that official checkpoints map
one to one (`act3d.models.official`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from act3d.errors import require
from act3d.models.peft.method import BackboneShape, PeftMethod, register
from act3d.models.student import StudentEncoder
from act3d.models.transformer import Attention, Block, Mlp
from act3d.ops.grouping import Patches


@dataclass
class DaptConfig:
    rank: int = 64  # the adapter's bottleneck (ModelNet40's official config: 72)
    adapter_dropout: float = 0.0  # official `drop_adapter_rate`: 0.2 PB_T50_RS, 0.5 OBJ_BG, 0 otherwise
    # what the head reads (official class_token / prompt_token / patch_token, l.384-419): the cls token, the
    # prompts pooled, the patches max-pooled
    cls: bool = True
    prompts: Literal["mean", "max", "none"] = "mean"
    patches: Literal["max", "none"] = "max"

    def __post_init__(self) -> None:
        require(self.rank >= 1, "rank", "an integer >= 1", self.rank)
        require(0 <= self.adapter_dropout < 1, "adapter_dropout", "a rate in [0, 1)", self.adapter_dropout)
        require(
            self.cls or self.prompts != "none" or self.patches != "none",
            "cls / prompts / patches",
            "at least one feature for the head",
            (self.cls, self.prompts, self.patches),
        )


def scale_shift(dim: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Official `init_tfts` (l.446-451): gamma ~ N(1, 0.02), beta ~ N(0, 0.02), `(dim,)` each."""
    gamma, beta = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))
    nn.init.normal_(gamma, mean=1, std=0.02)
    nn.init.normal_(beta, std=0.02)
    return gamma, beta


class Adapter(nn.Module):
    """Official `Adapter` with `adapter_layernorm_option="in"` (l.174-227): `(B, T, W) -> (B, T, W)`."""

    def __init__(self, width: int, rank: int, dropout: float):
        super().__init__()
        self.adapter_layer_norm_before = nn.LayerNorm(width)
        self.scale = nn.Linear(width, 1)
        self.down_proj = nn.Linear(width, rank)
        self.up_proj = nn.Linear(rank, width)
        self.dropout = dropout
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.down_proj.weight, a=math.sqrt(5))
            nn.init.zeros_(self.up_proj.weight)
            nn.init.zeros_(self.down_proj.bias)
            nn.init.zeros_(self.up_proj.bias)
            nn.init.kaiming_uniform_(self.scale.weight, a=math.sqrt(5))
            nn.init.zeros_(self.scale.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.adapter_layer_norm_before(x)
        scale = F.relu(self.scale(x))
        down = F.dropout(F.gelu(self.down_proj(x)), p=self.dropout, training=self.training)
        return self.up_proj(down) * scale


class _AttentionShifts(nn.Module):
    """The scale-and-shift pairs of one block's attention: after qkv (`3W`) and after the projection (`W`)."""

    def __init__(self, width: int):
        super().__init__()
        self.tfts_gamma_1, self.tfts_beta_1 = scale_shift(3 * width)
        self.tfts_gamma_2, self.tfts_beta_2 = scale_shift(width)

    def forward(self, attn: Attention, x: torch.Tensor) -> torch.Tensor:
        """Official `Attention.forward` (l.118-130) on the frozen `attn`'s weights."""
        b, t, d = x.shape
        qkv = attn.qkv(x) * self.tfts_gamma_1 + self.tfts_beta_1
        q, k, v = qkv.reshape(b, t, 3, attn.heads, d // attn.heads).permute(2, 0, 3, 1, 4)
        out = attn.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        return out * self.tfts_gamma_2 + self.tfts_beta_2


class _MlpShifts(nn.Module):
    """The scale-and-shift pairs of one block's MLP: after fc1 (`hidden`) and after fc2 (`W`)."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.tfts_gamma_1, self.tfts_beta_1 = scale_shift(hidden)
        self.tfts_gamma_2, self.tfts_beta_2 = scale_shift(width)

    def forward(self, mlp: Mlp, x: torch.Tensor) -> torch.Tensor:
        """Official `Mlp.forward` (l.92-100) on the frozen `mlp`'s weights."""
        x = mlp.act(mlp.fc1(x) * self.tfts_gamma_1 + self.tfts_beta_1)
        return mlp.fc2(x) * self.tfts_gamma_2 + self.tfts_beta_2


class DynamicAdapterBlock(nn.Module):
    """What DAPT adds to one block: the adapter, and scale-and-shift pairs after `norm1`, `norm2` and on the
    new prompt (official `Block.tfts_*_{1,2,3}`)."""

    def __init__(self, width: int, hidden: int, rank: int, dropout: float):
        super().__init__()
        self.attn, self.mlp = _AttentionShifts(width), _MlpShifts(width, hidden)
        self.Adapter_MLP = Adapter(width, rank, dropout)  # the official name
        self.tfts_gamma_1, self.tfts_beta_1 = scale_shift(width)
        self.tfts_gamma_2, self.tfts_beta_2 = scale_shift(width)
        self.tfts_gamma_3, self.tfts_beta_3 = scale_shift(width)

    def forward(self, block: Block, x: torch.Tensor) -> torch.Tensor:
        """`(B, T, W)` -> `(B, T + 1, W)`: the frozen `block` with the adapter, its new prompt after the cls
        token (official `Block.forward`, l.159-171)."""
        x = x + block.drop_path(self.attn(block.attn, block.norm1(x) * self.tfts_gamma_1 + self.tfts_beta_1))
        h = x
        x = block.norm2(x) * self.tfts_gamma_2 + self.tfts_beta_2
        adapted = self.Adapter_MLP(x)
        x = h + block.drop_path(self.mlp(block.mlp, x) + adapted)
        prompt = F.gelu(adapted).mean(dim=1, keepdim=True) * self.tfts_gamma_3 + self.tfts_beta_3
        return torch.cat([x[:, :1], prompt, x[:, 1:]], dim=1)


@register
class DynamicAdapters(PeftMethod):
    """DAPT's additions to a `depth`-block backbone of width `W`: one `DynamicAdapterBlock` per block (`blocks`) and
    the scale-and-shift pairs after the patch embedding (`tfts_*_1`) and the final norm (`tfts_*_2`)."""

    name = "dapt"
    Config = DaptConfig
    # the per-block parameters keep their official names inside the official encoder
    official_names = (
        ("blocks.", "blocks.blocks."),
        *((f"tfts_{p}_{i}", f"tfts_{p}_{i}") for p in ("gamma", "beta") for i in (1, 2)),
    )
    official_mark = "tfts_"
    training_only = frozenset({"adapter_dropout"})

    def __init__(self, cfg: DaptConfig, backbone: BackboneShape):
        super().__init__()
        width, depth, mlp_ratio = backbone.width, backbone.depth, backbone.mlp_ratio
        self.cfg = cfg
        self.feature_dim = width * (int(cfg.cls) + (cfg.prompts != "none") + (cfg.patches != "none"))
        hidden = int(width * mlp_ratio)
        self.blocks = nn.ModuleList(
            DynamicAdapterBlock(width, hidden, cfg.rank, cfg.adapter_dropout) for _ in range(depth)
        )
        self.tfts_gamma_1, self.tfts_beta_1 = scale_shift(width)
        self.tfts_gamma_2, self.tfts_beta_2 = scale_shift(width)

    def forward(self, encoder: StudentEncoder, patches: Patches, points: torch.Tensor) -> torch.Tensor:
        """-> `(B, feature_dim)` from the `[cls, prompts (one per block, newest first), patches]` tokens
        (official `PointTransformer_DAPT.forward`, l.364-422)."""
        g = patches.center.shape[1]
        x = encoder.run(
            patches,
            embedded=lambda tokens: tokens * self.tfts_gamma_1 + self.tfts_beta_1,
            enter=lambda i, x, pos: (x + pos if i == 0 else x, pos),  # positions once (l.378): none in blocks
            run=lambda i, block, x: self.blocks[i](block, x),
        )
        x = x * self.tfts_gamma_2 + self.tfts_beta_2
        parts = [x[:, 0]] if self.cfg.cls else []
        if self.cfg.prompts != "none":
            prompts = x[:, 1:-g]
            parts.append(prompts.mean(dim=1) if self.cfg.prompts == "mean" else prompts.max(dim=1).values)
        if self.cfg.patches == "max":
            parts.append(x[:, -g:].max(dim=1).values)
        return torch.cat(parts, dim=-1)
