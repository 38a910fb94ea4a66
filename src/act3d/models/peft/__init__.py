"""Parameter-efficient transfer (PEFT) on a frozen student backbone: the methods ACT's users publish with.

Each method is one module here, an `nn.Module` holding only what the method adds to the backbone (prompts, a
prompt generator, adapters) and computing the classifier's input features from the backbone's own frozen
pieces, op for op as its official code does (file and line cited in each module):

- `vpt_deep`: VPT-deep as IDPT's code defines it, learnable prompts replaced before every block;
- `idpt`: IDPT (ICCV 2023), a DGCNN prompt generator before one block;
- `dapt`: DAPT (CVPR 2024), a dynamic adapter in every block, its output a new prompt, and scale-and-shift
  pairs throughout;
- `pointgst`: PointGST (TPAMI 2025), a spectral adapter in every block, filtering in the graph Fourier bases
  of the patch centres;
- `ppt`: PPT (2024), prompt MLPs on the patch tokens and on the tokens of a second grouping, and in every
  block.

`PointClassifier` builds the method `ClassifierHead.transfer` names; the backbone stays frozen but for what
the method's official freezing rule trains (`BACKBONE_TRAINABLE`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import nn

from act3d.errors import ConfigError
from act3d.models.peft.dapt import DaptConfig, DynamicAdapters
from act3d.models.peft.idpt import IdptConfig, InstancePrompt
from act3d.models.peft.pointgst import PointGstConfig, SpectralTuning
from act3d.models.peft.ppt import PositionalPrompts, PptConfig
from act3d.models.peft.vpt_deep import DeepPrompts, VptDeepConfig
from act3d.models.student import StudentConfig
from act3d.ops.grouping import PatchConfig

PEFT_METHODS = ("vpt_deep", "idpt", "dapt", "pointgst", "ppt")

# the official freezing rules train, of the backbone, the parameters whose name contains `cls`: the cls token
# and its position (IDPT tools/builder.py l.48-55 `only_new`; DAPT tools/builder.py l.53-60 `dapt`: `cls`,
# `tfts` or `Adapter`; PointGST tools/builder.py l.138-146 `adapt`: `adapt` or `cls`); PPT trains more
# (`PositionalPrompts.BACKBONE_TRAINABLE_PREFIXES`)
BACKBONE_TRAINABLE = ("cls_token", "cls_pos")


@dataclass
class PeftConfig:
    """Every method's settings; the one `transfer` names is used."""

    vpt_deep: VptDeepConfig = field(default_factory=VptDeepConfig)
    idpt: IdptConfig = field(default_factory=IdptConfig)
    dapt: DaptConfig = field(default_factory=DaptConfig)
    pointgst: PointGstConfig = field(default_factory=PointGstConfig)
    ppt: PptConfig = field(default_factory=PptConfig)


def build_method(method: str, cfg: PeftConfig, student: StudentConfig, patching: PatchConfig) -> nn.Module:
    """The modules `method` adds to a backbone of `student`'s shape cutting clouds as `patching`; each has
    `feature_dim` (what its head reads) and `forward(encoder, patches, points) -> (B, feature_dim)`, where
    `points (B, N, 3)` are the clouds the patches were cut from (only PPT reads them)."""
    if method == "vpt_deep":
        return DeepPrompts(cfg.vpt_deep, student.width, student.depth)
    if method == "idpt":
        return InstancePrompt(cfg.idpt, student.width, student.depth, patching.num_groups)
    if method == "dapt":
        return DynamicAdapters(cfg.dapt, student.width, student.depth, student.mlp_ratio)
    if method == "pointgst":
        return SpectralTuning(cfg.pointgst, student.width, student.depth, patching.num_groups)
    if method == "ppt":
        return PositionalPrompts(cfg.ppt, student.width, patching.fps)
    raise ConfigError(f"unknown PEFT method {method!r}; one of {PEFT_METHODS}")


def backbone_trainable(method: nn.Module | None, name: str) -> bool:
    """Whether the backbone parameter `name` trains under `method`'s official rule (None: the probes')."""
    return name in BACKBONE_TRAINABLE or name.startswith(getattr(method, "BACKBONE_TRAINABLE_PREFIXES", ()))


def optimized_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """`(name, parameter)` of what the optimiser updates: the parameters with gradients, but for those a model
    lists in `optimizer_skips` (frozen parameters that keep their gradients, as the official IDPT and
    VPT-deep runs keep them; `PointClassifier`)."""
    skips = getattr(model, "optimizer_skips", frozenset())
    return ((n, p) for n, p in model.named_parameters() if p.requires_grad and n not in skips)
