"""Frozen features of many clouds: the student backbone over every patch, pooled, in batches."""

from __future__ import annotations

import numpy as np
import torch

from act3d.models.layers import Pooling
from act3d.models.student import StudentEncoder, pooled_features
from act3d.ops.grouping import PatchConfig


@torch.no_grad()
def extract_features(
    encoder: StudentEncoder,
    points: torch.Tensor,
    patching: PatchConfig,
    pooling: Pooling = "max+mean",
    batch_size: int = 64,
) -> np.ndarray:
    """`(M, N, 3)` clouds -> `(M, 2W)` features, pooled by `pooling` (the SVM probe's: `max+mean`)."""
    encoder.eval()
    device = next(encoder.parameters()).device
    feats = [
        pooled_features(encoder, patching.group(chunk.to(device)), pooling).cpu()
        for chunk in points.split(batch_size)
    ]
    return torch.cat(feats).numpy()
