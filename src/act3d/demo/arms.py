"""The demo's four arms (which teacher, which Stage II target) and where each one's stages live."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    teacher: str | None  # "pretrained" | "random" | None
    target: str  # act | mae | none
    short: str  # the arm in a sentence of the report


ARMS = [
    Arm("act", "ACT (pretrained ViT-S/14 teacher)", "pretrained", "act", "ACT"),
    Arm("act-random-teacher", "ACT, randomly initialised teacher", "random", "act", "ACT (random teacher)"),
    Arm("point-mae", "Point-MAE-style target", None, "mae", "Point-MAE"),
    Arm("scratch", "no pretraining (scratch)", None, "none", "scratch"),
]
FEWSHOT_SETTINGS = [(5, 10), (5, 20), (10, 10), (10, 20)]


def teacher_folder(kind: str) -> str:
    """The run folder of a Stage I teacher (`pretrained` or `random`) inside the demo's output."""
    return f"stage1-{kind}-teacher"


def student_folder(arm: Arm) -> str:
    """The run folder of an arm's Stage II student inside the demo's output."""
    return f"stage2-{arm.name}"
