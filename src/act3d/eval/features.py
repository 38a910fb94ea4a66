"""Frozen features of many clouds: the student backbone over every patch, pooled, in batches."""

from __future__ import annotations

import numpy as np
import torch

from act3d.models.layers import Pooling
from act3d.models.precision import Precision, inference_autocast
from act3d.models.student import StudentEncoder, pooled_features
from act3d.ops.grouping import PatchConfig


@torch.no_grad()
def extract_features(
    encoder: StudentEncoder,
    points: torch.Tensor,
    patching: PatchConfig,
    pooling: Pooling = "max+mean",
    batch_size: int = 64,
    precision: Precision = "float32",
) -> np.ndarray:
    """`(M, N, 3)` clouds -> `(M, 2W)` float32 features, pooled by `pooling` (the SVM probe's: `max+mean`);
    the encoder runs under `precision` (`models.precision`), the grouping in float32."""
    encoder.eval()
    device = next(encoder.parameters()).device
    feats = []
    for chunk in points.split(batch_size):
        patches = patching.group(chunk.to(device))
        with inference_autocast(precision, device):
            feats.append(pooled_features(encoder, patches, pooling).float().cpu())
    return torch.cat(feats).numpy()
