"""PPT, positional prompt tuning (Zhang et al., 2024).

Official: zsc000722/PPT @8f87fb8, models/PPT.py (`TransformerEncoder` l.147-193, `Block` l.125-144,
`PointTransformer` l.229-362) and tools/runner_finetune.py (the freezing rule, l.46-52). The clouds are
grouped a second time (`prompt_groups` centres of `prompt_group_size` points), and those extra patches,
embedded by the same mini-PointNet, follow the patches as extra tokens. Before every block, after the
positions are added, a shared MLP adds a prompt to each patch token (`prompt_mlp`) and another to each extra
token (`prompt_pos_mlp`); inside every block a third (`prompt_all_mlp`) of the tokens after the attention is
added beside the MLP. The head reads the cls token, the mean of the patches and the mean of the extra
tokens, through GELU instead of ReLU. The official rule trains, besides these MLPs and the head, the
backbone's cls token and position, the mini-PointNet's first layers and the centre embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from act3d.errors import require
from act3d.models.layers import trunc_normal_init
from act3d.models.peft.method import BackboneShape, PeftMethod, register
from act3d.models.student import StudentEncoder
from act3d.ops.grouping import PatchConfig, Patches


@dataclass
class PptConfig:
    prompt_groups: int = 128  # the second grouping's centres (official `prompt_num_group`)
    prompt_group_size: int = 32  # and its points per patch (official `prompt_group_size`)

    def __post_init__(self) -> None:
        require(self.prompt_groups >= 1, "prompt_groups", "an integer >= 1", self.prompt_groups)
        require(self.prompt_group_size >= 1, "prompt_group_size", "an integer >= 1", self.prompt_group_size)


def _prompt_mlp(width: int) -> nn.Sequential:
    """Official `prompt_*_mlp` (l.162-176): `W -> 256 -> W` with GELU, trunc-normal(0.02) and zero bias."""
    mlp = nn.Sequential(nn.Linear(width, 256), nn.GELU(), nn.Linear(256, width))
    mlp.apply(trunc_normal_init)
    return mlp


@register
class PositionalPrompts(PeftMethod):
    """PPT's additions: three shared prompt MLPs, and the second grouping of the clouds."""

    name = "ppt"
    Config = PptConfig
    official_names = tuple(  # inside the official encoder
        (f"{m}.", f"blocks.{m}.") for m in ("prompt_mlp", "prompt_pos_mlp", "prompt_all_mlp")
    )
    official_mark = "blocks.prompt_mlp."
    # the official rule trains parameters named `cls`, `prompt`, `first_conv` or `pos_embed`: of the
    # backbone, the cls token and position, the mini-PointNet's first layers and the centre embedding
    backbone_trainable_prefixes = ("patch_embed.first_conv.", "pos_embed.")
    head_activation = "gelu"  # official `cls_head_finetune` (l.272-282)

    def __init__(self, cfg: PptConfig, backbone: BackboneShape):
        super().__init__()
        width = backbone.width
        self.extra = PatchConfig(cfg.prompt_groups, cfg.prompt_group_size, backbone.fps)
        self.feature_dim = 3 * width
        self.prompt_mlp, self.prompt_pos_mlp, self.prompt_all_mlp = (_prompt_mlp(width) for _ in range(3))

    @classmethod
    def check_data(cls, cfg: PptConfig, num_points: int) -> None:
        """The second grouping needs clouds of at least `max(prompt_groups, prompt_group_size)` points."""
        need = max(cfg.prompt_groups, cfg.prompt_group_size)
        require(
            num_points >= need,
            "data.num_points",
            f"at least max(peft.prompt_groups, peft.prompt_group_size) = {need}",
            num_points,
        )

    def init_head(self, head: nn.Module) -> None:
        head.apply(trunc_normal_init)  # the official model applies `_init_weights` to everything

    def forward(self, encoder: StudentEncoder, patches: Patches, points: torch.Tensor) -> torch.Tensor:
        """`points (B, N, 3)`, the clouds `patches` were cut from -> `(B, 3W)` (official `forward`,
        l.342-362)."""
        extra = self.extra.group(points)
        g, e = patches.center.shape[1], extra.center.shape[1]

        def enter(i: int, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = x + pos  # TransformerEncoder.forward, l.187-193: then a prompt on each token
            tokens, extra_tokens = x[:, 1 : g + 1], x[:, -e:]
            prompted = [tokens + self.prompt_mlp(tokens), extra_tokens + self.prompt_pos_mlp(extra_tokens)]
            return torch.cat([x[:, :1], *prompted], dim=1), pos

        # Block.forward(x, prompt_mlp), l.140-144: the third MLP beside the block's
        x = encoder.run(
            patches, extra=extra, enter=enter, run=lambda i, block, x: block(x, self.prompt_all_mlp)
        )
        return torch.cat([x[:, 0], x[:, 1 : g + 1].mean(dim=1), x[:, -e:].mean(dim=1)], dim=-1)
