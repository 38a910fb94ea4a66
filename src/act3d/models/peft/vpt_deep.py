"""VPT-deep on a point Transformer, as IDPT's code defines it (the common PEFT baseline).

Official: zyh16143998882/ICCV23-IDPT @bf152f2, models/Point_MAE.py `PointTransformerPromptDeep` (l.1230-1385)
and `TransformerEncoderDeep` (l.237-265). Before every block the previous block's prompts are dropped and
that block's own `prompts` (zeros + trunc-normal 0.02) are appended with their positions; the head reads the
cls token beside the max over the patch tokens (prompts excluded).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from act3d.errors import require
from act3d.models.peft.method import BackboneShape, PeftMethod, register
from act3d.models.student import StudentEncoder
from act3d.ops.grouping import Patches


@dataclass
class VptDeepConfig:
    prompts: int = 10  # prompt tokens per block (`prompt_nums`: 10, few-shot 20)
    # as the official runs (IDPT's `only_new`, tools/builder.py l.45-55): the frozen parameters keep their
    # gradients, which count in the gradient clipping norm; false: no gradients for them (a faster step)
    backbone_gradients: bool = True

    def __post_init__(self) -> None:
        require(self.prompts >= 1, "prompts", "an integer >= 1", self.prompts)


@register
class DeepPrompts(PeftMethod):
    """`depth` sets of `prompts` learnable tokens and positions, `(1, P, W)` each (official
    `cls_prompt_list` / `cls_prompt_pos_list`, l.1282-1293)."""

    name = "vpt_deep"
    Config = VptDeepConfig
    official_names = (("prompts.", "cls_prompt_list."), ("prompt_pos.", "cls_prompt_pos_list."))
    official_mark = "cls_prompt_list."
    training_only = frozenset({"backbone_gradients"})

    def __init__(self, cfg: VptDeepConfig, backbone: BackboneShape):
        super().__init__()
        width, depth = backbone.width, backbone.depth
        self.feature_dim = 2 * width
        self.backbone_gradients = cfg.backbone_gradients
        self.prompts = nn.ParameterList(
            nn.Parameter(torch.zeros(1, cfg.prompts, width)) for _ in range(depth)
        )
        self.prompt_pos = nn.ParameterList(
            nn.Parameter(torch.zeros(1, cfg.prompts, width)) for _ in range(depth)
        )
        for p in [*self.prompts, *self.prompt_pos]:
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, encoder: StudentEncoder, patches: Patches, points: torch.Tensor) -> torch.Tensor:
        """-> `(B, 2W)`: the normalised cls token beside the max over the patch tokens."""
        n = 1 + patches.center.shape[1]  # cls and patches

        def enter(i: int, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            b = x.shape[0]  # block i's prompts in place of block i - 1's (l.256-262)
            x = torch.cat([x[:, :n], self.prompts[i].expand(b, -1, -1)], dim=1)
            pos = torch.cat([pos[:, :n], self.prompt_pos[i].expand(b, -1, -1)], dim=1)
            return x + pos, pos

        x = encoder.run(patches, enter=enter)
        return torch.cat([x[:, 0], x[:, 1:n].max(dim=1).values], dim=-1)  # l.1382
