"""The five models act3d trains, by name, and the `kind` their checkpoints carry: `teacher` (Stage I's
autoencoder), `student` (Stage II), `classifier` and `segmenter` (Stage III), and `detector` (3DETR, on its
own encoder or the student). Each is also the name of its official checkpoint layout (ACT's,
`act3d.models.official`; 3DETR's, `act3d.models.detr.official`) and is trained by one stage
(`act3d.stages`).
Names only: no torch, so the command line reads them cheaply."""

from __future__ import annotations

from typing import Literal, get_args

ModelName = Literal["teacher", "student", "classifier", "segmenter", "detector"]
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
