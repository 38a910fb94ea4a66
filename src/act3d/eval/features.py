"""Frozen features of many clouds, in batches: the student backbone over every patch, pooled
(`extract_features`), or any network's features of the patches (`batched_features`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from act3d.models.layers import Pooling
from act3d.models.precision import Precision, inference_autocast
from act3d.models.student import StudentEncoder, pooled_features
from act3d.ops.grouping import PatchConfig, Patches


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
        lambda patches, _: pooled_features(encoder, patches, pooling),
        points,
        patching,
        device,
        batch_size,
        precision,
    )


@torch.no_grad()
def batched_features(
    features: Callable[[Patches, torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    patching: PatchConfig,
    device: torch.device,
    batch_size: int = 64,
    precision: Precision = "float32",
) -> np.ndarray:
    """`(M, N, 3)` clouds -> `features(patches, clouds)` of each batch, `(M, F)` float32: each batch cut into
    patches in float32 on `device`, the network under `precision`."""
    feats = []
    for chunk in points.split(batch_size):
        chunk = chunk.to(device)
        patches = patching.group(chunk)
        with inference_autocast(precision, device):
            feats.append(features(patches, chunk).float().cpu())
    return torch.cat(feats).numpy()
