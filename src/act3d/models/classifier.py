"""Stage III heads on the student backbone: object classification with the paper's transfer modes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from act3d.models.student import StudentEncoder, pooled_features
from act3d.ops.grouping import PatchConfig, Patches

Transfer = Literal["full", "linear", "mlp3"]


@dataclass
class ClassifierHead:
    """A `PointClassifier`'s head and how its backbone trains (a checkpoint's `arch["head"]`)."""

    num_classes: int
    transfer: Transfer = "full"
    dropout: float = 0.5
    frozen_mode: Literal["train", "eval"] = "train"


def mlp3_head(in_dim: int, num_classes: int, dropout: float = 0.5) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, 256),
        nn.BatchNorm1d(256),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(256, 256),
        nn.BatchNorm1d(256),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(256, num_classes),
    )


class PointClassifier(nn.Module):
    """Student encoder over all patches -> `cls+max` pooling -> head -> `(B, classes)` logits.

    `forward` takes the patches training cuts from its augmented clouds; `logits(points)` cuts `(B, N, 3)`
    clouds into patches itself, as the model was trained (`patching`).

    `transfer`: `full` trains everything with the `mlp3` head; `linear` / `mlp3` freeze the backbone
    (only the cls token and the head learn) under a linear / 3-layer head. A frozen backbone trains in
    `frozen_mode`: `train` (the official code: batch statistics, drop path) or `eval`.
    The linear head is `Sequential(Linear)`, as the official `cls_head_finetune`.
    """

    def __init__(self, encoder: StudentEncoder, head: ClassifierHead, patching: PatchConfig):
        super().__init__()
        self.encoder, self.transfer, self.frozen_mode = encoder, head.transfer, head.frozen_mode
        self.patching = patching
        width = encoder.cfg.width
        self.head = (
            nn.Sequential(nn.Linear(2 * width, head.num_classes))
            if head.transfer == "linear"
            else mlp3_head(2 * width, head.num_classes, head.dropout)
        )
        if head.transfer != "full":
            for name, p in encoder.named_parameters():
                p.requires_grad_(name in ("cls_token", "cls_pos"))

    def train(self, mode: bool = True) -> PointClassifier:
        super().train(mode)
        if self.transfer != "full" and self.frozen_mode == "eval":
            self.encoder.eval()  # a frozen backbone keeps its BatchNorm statistics and no drop path
        return self

    def forward(self, patches: Patches) -> torch.Tensor:
        return self.head(pooled_features(self.encoder, patches, "cls+max"))

    def logits(self, points: torch.Tensor) -> torch.Tensor:
        """`(B, N, 3)` clouds -> `(B, classes)` logits."""
        return self(self.patching.group(points))
