"""IDPT, instance-aware dynamic prompt tuning (Zha et al., ICCV 2023).

Official: zyh16143998882/ICCV23-IDPT @bf152f2. models/Point_MAE.py `PointTransformer` (l.890-1057) with
`TransformerPromptEncoderLayerI` (l.289-362); the prompt generator `DGCNNView` is models/dgcnn.py l.78-136.
Before block `prompt_layer` (0-based; 11 = the last of 12) a DGCNN over the patch tokens makes one prompt
token per cloud, placed after the cls token with its own learnable position; the head reads the normalised
cls, prompt and max-pooled patch tokens (`head_features`, official `cls_type`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from act3d.errors import ConfigError, require
from act3d.models.peft.method import BackboneShape, PeftMethod, register
from act3d.models.student import StudentEncoder
from act3d.ops.float32 import in_float32
from act3d.ops.grouping import Patches

# official `cls_type` (l.1049-1056): `all` cls + prompt + max of patches; `promptonly`; `promptcls`;
# `pointcls` cls + max of patches
HeadFeatures = Literal["all", "promptonly", "promptcls", "pointcls"]
_FEATURE_COUNT = {"all": 3, "promptonly": 1, "promptcls": 2, "pointcls": 2}


@dataclass
class IdptConfig:
    prompt_layer: int = 11  # the block the prompt enters before (0-based)
    head_features: HeadFeatures = "all"  # OBJ_BG's official config: promptonly
    neighbours: int = 20  # the DGCNN's k (official `Args.k`, l.318)
    # as the official runs: the frozen parameters keep their gradients (the `only_new` optimiser part only
    # leaves them out of the optimiser, tools/builder.py l.45-55), which count in the gradient clipping norm;
    # false: no gradients for them (a faster step; the clipping norm is the trained parameters' alone)
    backbone_gradients: bool = True

    def __post_init__(self) -> None:
        require(self.prompt_layer >= 0, "prompt_layer", "an integer >= 0", self.prompt_layer)
        require(self.neighbours >= 1, "neighbours", "an integer >= 1", self.neighbours)


@in_float32
def knn_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """`(B, C, N)` -> `(B, k, N)` indices of each column's `k` nearest columns, itself included: the official
    `knn` (dgcnn.py l.43-49), by the same expanded squared distance (so near-ties fall as there)."""
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    xx = torch.sum(x**2, dim=1, keepdim=True)
    return (-xx - inner - xx.transpose(2, 1)).topk(k=k, dim=-1)[1]


def edge_features(x: torch.Tensor, k: int) -> torch.Tensor:
    """`(B, C, N)` -> `(B, 2C, N, k)`: `[neighbour - centre, centre]` over each column's kNN in feature
    space (official `get_graph_feature`, dgcnn.py l.52-73)."""
    b, c, n = x.shape
    idx = knn_features(x, k)  # (B, N, k)
    points = x.transpose(2, 1)  # (B, N, C)
    neighbours = torch.gather(points, 1, idx.reshape(b, n * k, 1).expand(-1, -1, c)).reshape(b, n, k, c)
    centre = points.unsqueeze(2).expand(-1, -1, k, -1)
    return torch.cat([neighbours - centre, centre], dim=3).permute(0, 3, 1, 2)


def _edge_conv(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2 * width, width, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2))


class PromptGenerator(nn.Module):
    """Official `DGCNNView` (dgcnn.py l.78-136): three edge convolutions of width `W` over the patch tokens'
    kNN graph, their outputs concatenated, a 1x1 convolution, max over the patches. `(B, W, G) -> (B, 1, W)`."""

    def __init__(self, width: int, k: int):
        super().__init__()
        self.k = k
        self.conv1, self.conv2, self.conv3 = _edge_conv(width), _edge_conv(width), _edge_conv(width)
        self.conv5 = nn.Sequential(
            nn.Conv1d(3 * width, width, 1, bias=False), nn.BatchNorm1d(width), nn.LeakyReLU(0.2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(edge_features(x, self.k)).max(dim=-1).values
        x2 = self.conv2(edge_features(x1, self.k)).max(dim=-1).values
        x3 = self.conv3(edge_features(x2, self.k)).max(dim=-1).values
        x = self.conv5(torch.cat([x1, x2, x3], dim=1))
        return F.adaptive_max_pool1d(x, 1).transpose(1, 2)


@register
class InstancePrompt(PeftMethod):
    """IDPT's additions: the prompt generator (official `blocks.cls`) and the prompt's position (official
    `prompt_pos`, trunc-normal 0.02, l.940-946). The official optimiser trains names containing `cls` only
    (tools/builder.py l.48-55), so `prompt_pos` stays at its random initial value: `frozen`."""

    name = "idpt"
    Config = IdptConfig
    official_names = (("generator.", "blocks.cls."), ("prompt_pos", "prompt_pos"))
    official_mark = "blocks.cls."
    # the official `DGCNNView` registers its BatchNorms as `bn1/2/3/5` and again inside `conv1..conv5`
    # (ICCV23-IDPT models/dgcnn.py l.86-109), so its state dict holds both names
    official_aliases = tuple((f"blocks.cls.bn{n}.", f"blocks.cls.conv{n}.1.") for n in (1, 2, 3, 5))
    training_only = frozenset({"backbone_gradients"})
    frozen = ("prompt_pos",)

    def __init__(self, cfg: IdptConfig, backbone: BackboneShape):
        super().__init__()
        width, depth, num_groups = backbone.width, backbone.depth, backbone.num_groups
        if cfg.prompt_layer >= depth:
            raise ConfigError(
                f"idpt.prompt_layer {cfg.prompt_layer} is past the backbone's {depth} blocks; "
                f"expected 0..{depth - 1}"
            )
        if cfg.neighbours > num_groups:
            raise ConfigError(
                f"idpt.neighbours {cfg.neighbours} is more than the {num_groups} patches per cloud; "
                f"expected at most {num_groups}"
            )
        self.prompt_layer, self.head_features = cfg.prompt_layer, cfg.head_features
        self.backbone_gradients = cfg.backbone_gradients
        self.feature_dim = _FEATURE_COUNT[cfg.head_features] * width
        self.generator = PromptGenerator(width, cfg.neighbours)
        self.prompt_pos = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.trunc_normal_(self.prompt_pos, std=0.02)

    def forward(self, encoder: StudentEncoder, patches: Patches, points: torch.Tensor) -> torch.Tensor:
        """-> `(B, feature_dim)` from the normalised `[cls, prompt, patches]` tokens."""

        def enter(i: int, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if i == self.prompt_layer:  # l.351-358: the prompt from the patch tokens entering this block
                b = x.shape[0]
                prompt = self.generator(x[:, 1:].transpose(1, 2))
                x = torch.cat([x[:, :1], prompt, x[:, 1:]], dim=1)
                pos = torch.cat([pos[:, :1], self.prompt_pos.expand(b, -1, -1), pos[:, 1:]], dim=1)
            return x + pos, pos

        x = encoder.run(patches, enter=enter)
        cls, prompt, patch_max = x[:, 0], x[:, 1], x[:, 2:].max(dim=1).values
        parts = {
            "all": [cls, prompt, patch_max],
            "promptonly": [prompt],
            "promptcls": [cls, prompt],
            "pointcls": [cls, patch_max],
        }[self.head_features]
        return torch.cat(parts, dim=-1)
