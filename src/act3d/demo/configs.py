"""The demo's options and each stage's config: the stage's preset, the quick run's limits and the user's
`--set STAGE:KEY=VALUE` changes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from act3d.config import load_config
from act3d.data.dataset import DataConfig
from act3d.errors import ConfigError
from act3d.models.pretrained import IMGFOCUS_VIT_S14
from act3d.train.stage1 import TeacherRunConfig


@dataclass
class DemoOptions:
    out: Path
    quick: bool = False
    seeds: int = 3  # fine-tuning seeds per arm
    fewshot_folds: int = 10
    overrides: tuple[str, ...] = ()  # "teacher:KEY=VALUE", "pretrain:KEY=VALUE" or "finetune:KEY=VALUE"
    transfer_data: Path | None = None  # a prepared class-folder dataset (`act3d data prepare`)
    preset: str = "cpu"  # cpu: minutes on a 2-core CPU; gpu: the paper's model sizes, ~10 minutes on one GPU


STAGE_KINDS = ("teacher", "pretrain", "finetune")


def stage_overrides(opts: DemoOptions, kind: str) -> list[str]:
    """The changes to the demo preset of one stage kind: the quick run's limits, then the user's."""
    quick = (
        {
            "teacher": ["optim.max_steps=15", "anneal.steps=15"],
            "pretrain": ["optim.max_steps=15"],
            "finetune": ["optim.epochs=1", "optim.max_steps=8"],
        }[kind]
        if opts.quick
        else []
    )
    return quick + [o.split(":", 1)[1] for o in opts.overrides if o.split(":", 1)[0] == kind]


def check_overrides(overrides: tuple[str, ...]) -> None:
    for o in overrides:
        if o.split(":", 1)[0] not in STAGE_KINDS or ":" not in o:
            raise ConfigError(
                f"demo override {o!r} must look like STAGE:KEY=VALUE with STAGE one of {', '.join(STAGE_KINDS)}"
            )


def teacher_config(kind: str, opts: DemoOptions) -> TeacherRunConfig:
    cfg = load_config(TeacherRunConfig, "teacher", opts.preset, overrides=stage_overrides(opts, "teacher"))
    if kind == "random":
        # the same shape as the shipped ViT-S/14 blocks in use, with random weights
        t = cfg.model.transformer
        vit = IMGFOCUS_VIT_S14
        t.kind, t.width, t.heads, t.layer_scale = "random", vit["width"], vit["heads"], vit["layer_scale"]
        t.random_depth = t.depth or vit["depth"]
        t.depth = None
    return cfg


def transfer_data_config(root: Path, num_points: int) -> DataConfig:
    return DataConfig(format="class-folders", root=str(root), num_points=num_points)
