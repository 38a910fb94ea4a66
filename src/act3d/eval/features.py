"""Frozen features of many clouds, in batches: the student backbone over every patch, pooled
(`extract_features`), or any network's features of the patches (`batched_features`)."""

from __future__ import annotations

from collections.abc import Callable

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
    return batched_features(
        lambda clouds: pooled_features(encoder, patching.group(clouds), pooling),
        points,
        device,
        batch_size,
        precision,
    )


@torch.no_grad()
def batched_features(
    features: Callable[[torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    device: torch.device,
    batch_size: int = 64,
    precision: Precision = "float32",
) -> np.ndarray:
    """`(M, N, 3)` clouds -> `features(clouds)` of each batch on `device`, under `precision` (the grouping in
    float32 under any: `act3d.ops.float32`) -> `(M, F)` float32."""
    feats = []
    for chunk in points.split(batch_size):
        with inference_autocast(precision, device):
            feats.append(features(chunk.to(device)).float().cpu())
    return torch.cat(feats).numpy()
