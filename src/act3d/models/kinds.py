"""The four models act3d trains, by name, and the `kind` their checkpoints carry: `teacher` (Stage I's
autoencoder), `student` (Stage II), `classifier` and `segmenter` (Stage III). Each is also the name of its
official ACT checkpoint layout (`act3d.models.official`) and is trained by one stage (`act3d.stages`).
Names only: no torch, so the command line reads them cheaply."""

from __future__ import annotations

from typing import Literal, get_args

ModelName = Literal["teacher", "student", "classifier", "segmenter"]
MODELS: tuple[ModelName, ...] = get_args(ModelName)
KIND_PREFIX = "act3d-"


def kind_of(model: ModelName) -> str:
    """The `kind` a checkpoint of `model` carries: `act3d-<model>`."""
    return KIND_PREFIX + model


def model_of(kind: str) -> ModelName:
    """The model a checkpoint `kind` holds (the inverse of `kind_of`)."""
    model = kind.removeprefix(KIND_PREFIX)
    if kind == model or model not in MODELS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; one of {[kind_of(m) for m in MODELS]}")
    return model  # type: ignore[return-value]
