"""A small Python API over trained checkpoints: embed clouds, classify them.

model = act3d.load_model("runs/x/checkpoints/last.pt")   # precision="bf16" / "auto": faster, ~1% apart
features = model.embed(points)            # (N, 3) or (B, N, 3) -> (B, 2W), max+mean pooling
head_input = model.embed(points, "head")  # classifiers: exactly what the head reads (PEFT methods too)
top = model.predict(points, k=3)           # classifier checkpoints only
points, labels = model.segment(points)     # segmenter checkpoints only
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from act3d.data.files import read_cloud
from act3d.data.sample import check_points, normalize_unit_sphere, resample_indices
from act3d.errors import CheckpointError, DataError
from act3d.eval.features import batched_features, extract_features
from act3d.models import zoo
from act3d.models.classifier import PointClassifier
from act3d.models.layers import POOLINGS
from act3d.models.precision import Precision, inference_autocast, resolve_precision
from act3d.models.segmenter import PointSegmenter
from act3d.models.student import MaskedPointModel

EmbedPooling = Literal["max+mean", "cls+max", "head"]
EMBED_POOLINGS: tuple[str, ...] = (*POOLINGS, "head")


@dataclass
class Prediction:
    labels: list[str]
    probabilities: list[float]


class Act3dModel:
    """A loaded student (embeddings), classifier (embeddings, class predictions) or segmenter (embeddings,
    per-point labels). `model` cuts clouds into patches itself (`model.patching`); `num_points` is the cloud
    size it was trained on, to which `prepare` resamples. `precision` (`models.precision`): the number format
    of `embed` and `predict` (`segment` computes in float32)."""

    def __init__(
        self,
        model: MaskedPointModel | PointClassifier | PointSegmenter,
        num_points: int,
        path: str,
        class_names: list[str] | None = None,
        precision: Precision = "float32",
    ):
        self.model, self.num_points, self.path = model.eval(), num_points, path
        self.class_names = class_names or []
        self.device = next(model.parameters()).device
        self.precision = resolve_precision(precision, self.device)

    def prepare(self, points: np.ndarray | torch.Tensor, seed: int = 0) -> torch.Tensor:
        """Clouds of any size -> `(B, num_points, 3)`: unit-sphere normalised, resampled."""
        arr = (
            points.detach().cpu().numpy()
            if isinstance(points, torch.Tensor)
            else np.asarray(points, dtype=np.float32)
        )
        clouds = arr[None] if arr.ndim == 2 else arr
        if clouds.ndim != 3 or clouds.shape[-1] != 3:
            raise DataError(f"expected points of shape (N, 3) or (B, N, 3), got {arr.shape}")
        rng = np.random.default_rng(seed)
        out = []
        for i, cloud in enumerate(clouds):
            cloud = check_points(cloud, f"cloud {i}")
            out.append(normalize_unit_sphere(cloud[resample_indices(len(cloud), self.num_points, rng)]))
        return torch.from_numpy(np.stack(out))

    def _finite(self, values: torch.Tensor | np.ndarray, what: str) -> None:
        if not np.isfinite(np.asarray(values)).all():
            raise CheckpointError(
                f"{self.path} gave non-finite {what}; its weights or these clouds are broken"
            )

    @property
    def peft_method(self) -> str | None:
        """The PEFT method of a classifier trained with one (`act3d.models.peft`), else None."""
        return self.model.transfer if getattr(self.model, "peft", None) is not None else None

    def feature_description(self, pooling: EmbedPooling) -> str:
        """What `embed(points, pooling)` returns, in words."""
        if pooling == "head":
            method = f"the {self.peft_method} method's features" if self.peft_method else "cls+max"
            return f"what the classifier's head reads ({method})"
        plain = f"{pooling} pooling of the backbone's tokens"
        if self.peft_method:
            return (
                plain
                + f", without the {self.peft_method} method's prompts/adapters (its head reads pooling 'head')"
            )
        return plain

    @torch.no_grad()
    def embed(self, points: np.ndarray | torch.Tensor, pooling: EmbedPooling = "max+mean") -> np.ndarray:
        """`(B, F)` features of each cloud. `max+mean` (default) and `cls+max` pool the backbone's tokens over
        every patch, the same rule for every kind of checkpoint (`(B, 2W)`; a PEFT classifier's backbone
        without its method's additions); `max+mean` is the SVM probe's. `head` (classifiers only) is exactly
        what the classifier's head reads: `cls+max` after full fine-tuning or a probe, the method's own
        features after a PEFT method (e.g. DAPT's `(B, 3W)`)."""
        if pooling not in EMBED_POOLINGS:
            raise DataError(f"pooling must be one of {', '.join(EMBED_POOLINGS)}, got {pooling!r}")
        clouds = self.prepare(points)
        if pooling == "head":
            self.require_classifier("pooling 'head'")
            features = batched_features(self.model.features, clouds, self.device, precision=self.precision)
        else:
            features = extract_features(
                self.model.encoder, clouds, self.model.patching, pooling, precision=self.precision
            )
        self._finite(features, "features")
        return features

    def require_classifier(self, what: str) -> None:
        if not isinstance(self.model, PointClassifier):
            raise CheckpointError(
                f"{self.path} is not a fine-tuned classifier: {what} needs a checkpoint from `act3d finetune`"
            )

    @torch.no_grad()
    def predict(self, points: np.ndarray | torch.Tensor, k: int = 5) -> list[Prediction]:
        """Top-`k` classes with probabilities for each cloud (classifier checkpoints only)."""
        self.require_classifier("predict")
        clouds = self.prepare(points).to(self.device)
        with inference_autocast(self.precision, self.device):  # the geometry in float32 (`ops.float32`)
            logits = self.model(clouds)
        probs = torch.softmax(logits.float(), -1).cpu()
        self._finite(probs, "class probabilities")
        top = probs.topk(min(k, probs.shape[-1]), dim=-1)
        return [
            Prediction([self.class_names[i] for i in idx.tolist()], p.tolist())
            for p, idx in zip(top.values, top.indices)
        ]

    @torch.no_grad()
    def segment(
        self, points: np.ndarray | torch.Tensor, category: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-point labels `(B, num_points)` of the resampled clouds `(B, num_points, 3)` (segmenter
        checkpoints only); part segmentation needs the object `category` (an index into the categories)."""
        if not isinstance(self.model, PointSegmenter):
            raise CheckpointError(
                f"{self.path} is not a segmenter: segment needs a checkpoint from `act3d segment`"
            )
        clouds = self.prepare(points)
        cats = None
        if self.model.num_categories:
            if category is None or not 0 <= category < self.model.num_categories:
                raise DataError(
                    f"part segmentation needs category in 0..{self.model.num_categories - 1}, got {category}"
                )
            cats = torch.full((len(clouds),), category, dtype=torch.long)
        logits = self.model(clouds, None, cats)
        self._finite(logits, "part scores")
        return clouds.numpy(), logits.argmax(-1).numpy()


def load_model(path: str | Path, precision: Precision = "float32") -> Act3dModel:
    """Load a Stage II student, a fine-tuned classifier or a segmenter checkpoint; `precision`: float32
    (default, bit-reproducible), bf16 autocast, or auto (bf16 where the hardware computes it natively)."""
    model, ckpt = zoo.load(path, (zoo.STUDENT, zoo.CLASSIFIER, zoo.SEGMENTER))
    arch = ckpt["arch"]
    return Act3dModel(model, arch["num_points"], str(path), arch.get("class_names"), precision)


def read_clouds(files: list[str | Path]) -> list[np.ndarray]:
    """Read point-cloud or mesh files (errors name the file)."""
    return [read_cloud(f) for f in files]
