"""A small Python API over trained checkpoints: embed clouds, classify them.

    model = act3d.load_model("runs/x/checkpoints/last.pt")
    features = model.embed(points)            # (N, 3) or (B, N, 3) -> (B, 2W)
    top = model.predict(points, k=3)           # classifier checkpoints only
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from act3d.data.files import read_cloud
from act3d.data.sample import normalize_unit_sphere, resample_indices
from act3d.errors import CheckpointError, DataError
from act3d.eval.probe import extract_features
from act3d.models.autoencoder import PatchConfig
from act3d.models.classifier import PointClassifier
from act3d.models.student import StudentEncoder
from act3d.ops.grouping import group_patches
from act3d.train.checkpoint import load_checkpoint


@dataclass
class Prediction:
    labels: list[str]
    probabilities: list[float]


class Act3dModel:
    """A loaded student (for embeddings) or classifier (for embeddings and predictions)."""

    def __init__(self, encoder: StudentEncoder, patches: PatchConfig, num_points: int, path: str,
                 classifier: PointClassifier | None = None, class_names: list[str] | None = None):
        self.encoder, self.patches, self.num_points, self.path = encoder.eval(), patches, num_points, path
        self.classifier = classifier.eval() if classifier is not None else None
        self.class_names = class_names or []

    def prepare(self, points: np.ndarray | torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Clouds of any size -> `(B, num_points, 3)`: unit-sphere normalised, resampled."""
        arr = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points, dtype=np.float32)
        clouds = arr[None] if arr.ndim == 2 else arr
        if clouds.ndim != 3 or clouds.shape[-1] != 3:
            raise DataError(f"expected points of shape (N, 3) or (B, N, 3), got {arr.shape}")
        if not np.isfinite(clouds).all():
            raise DataError(f"{int((~np.isfinite(clouds)).any(-1).sum())} points have NaN/inf coordinates")
        rng = np.random.default_rng(seed)
        out = [normalize_unit_sphere(c[resample_indices(len(c), self.num_points, rng)]) for c in clouds]
        return torch.from_numpy(np.stack(out))

    def embed(self, points: np.ndarray | torch.Tensor) -> np.ndarray:
        """`(B, 2W)` features: max- and mean-pooled student tokens."""
        return extract_features(self.encoder, self.prepare(points), self.patches)

    @torch.no_grad()
    def predict(self, points: np.ndarray | torch.Tensor, k: int = 5) -> list[Prediction]:
        """Top-`k` classes with probabilities for each cloud (classifier checkpoints only)."""
        if self.classifier is None:
            raise CheckpointError(f"{self.path} is a pretrained student, not a fine-tuned classifier: "
                                  "predict needs a checkpoint from `act3d finetune`")
        clouds = self.prepare(points)
        probs = torch.softmax(self.classifier(group_patches(clouds, self.patches.num_groups, self.patches.group_size)), -1)
        top = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [Prediction([self.class_names[i] for i in idx.tolist()], p.tolist()) for p, idx in zip(top.values, top.indices)]


def load_model(path: str | Path) -> Act3dModel:
    """Load a Stage II student or a fine-tuned classifier checkpoint."""
    from act3d.train.finetune import load_classifier
    from act3d.train.stage2 import load_student_encoder

    ckpt = load_checkpoint(path, ("act3d-student", "act3d-classifier"))
    if ckpt["kind"] == "act3d-classifier":
        clf, cfg, names = load_classifier(path, ckpt)
        return Act3dModel(clf.encoder, cfg.patches, cfg.data.num_points, str(path), clf, names)
    encoder, cfg = load_student_encoder(path, ckpt)
    return Act3dModel(encoder, cfg.patches, cfg.data.num_points, str(path))


def read_clouds(files: list[str | Path]) -> list[np.ndarray]:
    """Read point-cloud or mesh files (errors name the file)."""
    return [read_cloud(f) for f in files]
