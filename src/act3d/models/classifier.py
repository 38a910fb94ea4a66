"""Stage III heads on the student backbone: object classification with the paper's transfer modes and the
parameter-efficient methods of `act3d.models.peft`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from act3d.errors import require
from act3d.models.layers import optimized_parameters
from act3d.models.peft import METHODS, BackboneShape, PeftMethod, settings_of
from act3d.models.student import StudentEncoder, pooled_features
from act3d.ops.grouping import PatchConfig

# how a classifier's backbone transfers: the paper's modes (full fine-tuning; a linear or 3-layer head on the
# frozen backbone), or a PEFT method's name (`act3d.models.peft.METHODS`)
PAPER_TRANSFERS = ("full", "linear", "mlp3")
# of the backbone, what every frozen transfer trains (the official freezing rules train the parameters
# whose name contains `cls`: IDPT tools/builder.py l.48-55 `only_new`; DAPT tools/builder.py l.53-60;
# PointGST tools/builder.py l.138-146); a PEFT method may add prefixes (`backbone_trainable_prefixes`)
BACKBONE_TRAINABLE = ("cls_token", "cls_pos")


def transfers() -> tuple[str, ...]:
    """Every transfer act3d knows: the paper's, then each registered PEFT method."""
    return PAPER_TRANSFERS + tuple(METHODS)


def check_transfer(transfer: str) -> None:
    require(transfer in transfers(), "transfer", f"one of {list(transfers())}", transfer)


@dataclass
class ClassifierHead:
    """A `PointClassifier`'s head and how its backbone trains (a checkpoint's `arch["head"]`)."""

    num_classes: int
    transfer: str = "full"  # one of `transfers()`
    dropout: float = 0.5
    frozen_mode: Literal["train", "eval"] = "train"
    peft: Any = None  # the settings of the transfer's PEFT method (its `Config`); None for the paper's

    def __post_init__(self) -> None:
        check_transfer(self.transfer)
        self.peft = settings_of(self.transfer, self.peft)


def mlp3_head(in_dim: int, num_classes: int, dropout: float = 0.5, activation: str = "relu") -> nn.Sequential:
    """The official `cls_head_finetune`; PPT's uses GELU."""

    def act() -> nn.Module:
        return nn.GELU() if activation == "gelu" else nn.ReLU(inplace=True)

    return nn.Sequential(
        nn.Linear(in_dim, 256),
        nn.BatchNorm1d(256),
        act(),
        nn.Dropout(dropout),
        nn.Linear(256, 256),
        nn.BatchNorm1d(256),
        act(),
        nn.Dropout(dropout),
        nn.Linear(256, num_classes),
    )


class PointClassifier(nn.Module):
    """`(B, N, 3)` clouds -> patches (`patching`, as the model was trained) -> student encoder -> `cls+max`
    pooling -> head -> `(B, classes)` logits.

    `transfer`: `full` trains everything with the `mlp3` head; `linear` / `mlp3` freeze the backbone
    (only the cls token and the head learn) under a linear / 3-layer head; a PEFT method (`vpt_deep`,
    `idpt`, `dapt`, `pointgst`, `ppt`) adds its modules as `peft`, which compute the head's input from the
    frozen backbone, under the `mlp3` head, and trains what its official freezing rule trains. A frozen
    backbone trains in `frozen_mode`: `train` (the official code: batch statistics, drop path) or `eval`.
    The linear head is `Sequential(Linear)`, as the official `cls_head_finetune`.
    """

    def __init__(self, encoder: StudentEncoder, head: ClassifierHead, patching: PatchConfig):
        super().__init__()
        self.encoder, self.transfer, self.frozen_mode = encoder, head.transfer, head.frozen_mode
        self.patching = patching
        self.peft: PeftMethod | None = (
            METHODS[head.transfer](head.peft, BackboneShape.of(encoder.cfg, patching))
            if head.transfer in METHODS
            else None
        )
        features = self.peft.feature_dim if self.peft is not None else 2 * encoder.cfg.width
        activation = self.peft.head_activation if self.peft is not None else "relu"
        self.head = (
            nn.Sequential(nn.Linear(features, head.num_classes))
            if head.transfer == "linear"
            else mlp3_head(features, head.num_classes, head.dropout, activation)
        )
        if self.peft is not None:
            self.peft.init_head(self.head)
        if head.transfer != "full":
            prefixes = self.peft.backbone_trainable_prefixes if self.peft is not None else ()
            for name, p in encoder.named_parameters():
                p.requires_grad_(name in BACKBONE_TRAINABLE or name.startswith(prefixes))
        if self.peft is not None:
            for name, p in self.peft.named_parameters():
                p.requires_grad_(name not in self.peft.frozen)
        # what the optimiser leaves alone though it has gradients: under IDPT's and VPT-deep's official
        # `only_new` rule every parameter keeps its gradient (in the clipping norm), only what the rule names
        # is updated (`act3d.models.layers.optimized_parameters`)
        self.optimizer_skips: frozenset[str] = frozenset()
        if self.peft is not None and self.peft.backbone_gradients:
            self.optimizer_skips = frozenset(n for n, p in self.named_parameters() if not p.requires_grad)
            self.requires_grad_(True)

    def train(self, mode: bool = True) -> PointClassifier:
        super().train(mode)
        if self.transfer != "full" and self.frozen_mode == "eval":
            self.encoder.eval()  # a frozen backbone keeps its BatchNorm statistics and no drop path
        return self

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """`(B, N, 3)` clouds -> `(B, F)`, what the head reads: the PEFT method's features (computed with its
        prompts or adapters from the patches and, for a method that groups them again, the clouds), else the
        backbone's `cls+max`."""
        patches = self.patching.group(points)
        if self.peft is not None:
            return self.peft(self.encoder, patches, points)
        return pooled_features(self.encoder, patches, "cls+max")

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """`(B, N, 3)` clouds -> `(B, classes)` logits."""
        return self.head(self.features(points))

    def parameter_line(self) -> str:
        """What trains, as the PEFT papers count it: `transfer idpt: 1,696,783 parameters train (7.68% of full
        fine-tuning's 22,093,327); 23,522,191 in all`. Full fine-tuning counts the backbone and its `mlp3`
        head on `cls+max` features."""
        params = list(self.parameters())
        trainable = sum(p.numel() for _, p in optimized_parameters(self))
        full = sum(p.numel() for p in self.encoder.parameters()) + sum(
            p.numel() for p in mlp3_head(2 * self.encoder.cfg.width, self.head[-1].out_features).parameters()
        )
        return (
            f"transfer {self.transfer}: {trainable:,} parameters train ({100 * trainable / full:.2f}% of full "
            f"fine-tuning's {full:,}); {sum(p.numel() for p in params):,} in all"
        )
