"""The demo's options and each stage's config: the stage's preset, the quick run's limits and the user's
`--set STAGE:KEY=VALUE` changes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from act3d.data.dataset import DataConfig
from act3d.errors import ConfigError
from act3d.models.pretrained import IMGFOCUS_VIT_S14
from act3d.stages import FINETUNE, PRETRAIN, TEACHER, Stage
from act3d.train.stage1 import TeacherRunConfig


@dataclass
class DemoOptions:
    out: Path
    quick: bool = False
    seeds: int = 3  # fine-tuning seeds per arm
    fewshot_folds: int = 10
    overrides: tuple[str, ...] = ()  # "teacher:KEY=VALUE", "pretrain:KEY=VALUE" or "finetune:KEY=VALUE"
    own_data: Path | None = None  # a prepared class-folder dataset (`act3d data prepare`)
    preset: str = "cpu"  # cpu: minutes on a 2-core CPU; gpu: the paper's model sizes, ~10 minutes on one GPU
    # PEFT methods (act3d.models.peft) fine-tuned on the ACT arm's student beside its full fine-tuning
    peft: tuple[str, ...] = ()
    # every fine-tuned classifier also scored on the seven ModelNet-C corruptions at five levels (act3d.eval.robust)
    robust: bool = False


DEMO_STAGES = (TEACHER, PRETRAIN, FINETUNE)  # the stages the demo runs
QUICK_LIMITS = {  # the quick run's limits, by stage name
    TEACHER.name: ["optim.max_steps=15", "anneal.steps=15"],
    PRETRAIN.name: ["optim.max_steps=15"],
    FINETUNE.name: ["optim.epochs=1", "optim.max_steps=8"],
}


def stage_overrides(opts: DemoOptions, stage: Stage) -> list[str]:
    """The changes to the demo preset of one stage: the quick run's limits, then the user's."""
    quick = QUICK_LIMITS[stage.name] if opts.quick else []
    return quick + [o.split(":", 1)[1] for o in opts.overrides if o.split(":", 1)[0] == stage.name]


def stage_config(stage: Stage, opts: DemoOptions) -> Any:
    """A stage's run config in the demo: its `opts.preset`, the quick limits and the user's changes (but the
    `finetune:peft.<method>.*` ones, which go to that method's runs alone: `peft_config`)."""
    overrides = [o for o in stage_overrides(opts, stage) if not (stage is FINETUNE and o.startswith("peft."))]
    return stage.load_config(opts.preset, overrides=overrides)


def peft_config(method: str, opts: DemoOptions) -> Any:
    """A PEFT method's fine-tuning config in the demo: `finetune.cpu_<method>` (its settings for the CPU
    backbone) on the CPU preset, the demo preset with `transfer: <method>` (the official settings, for the
    paper-sized backbone) otherwise; then the quick limits and the user's `finetune:` changes, of the PEFT
    settings only this method's (a run refuses another method's settings)."""
    overrides = [
        o.replace(f"peft.{method}.", "peft.", 1)  # a run's `peft` holds its own method's settings
        for o in stage_overrides(opts, FINETUNE)
        if not o.startswith("peft.") or o.startswith(f"peft.{method}.")
    ]
    if opts.preset == "cpu":
        return FINETUNE.load_config(f"cpu_{method}", overrides=overrides)
    return FINETUNE.load_config(opts.preset, overrides=[f"transfer={method}", *overrides])


def check_overrides(overrides: tuple[str, ...]) -> None:
    names = [s.name for s in DEMO_STAGES]
    for o in overrides:
        if o.split(":", 1)[0] not in names or ":" not in o:
            raise ConfigError(
                f"demo override {o!r} must look like STAGE:KEY=VALUE with STAGE one of {', '.join(names)}"
            )


def teacher_config(teacher: str, opts: DemoOptions) -> TeacherRunConfig:
    """The Stage I config of one of the demo's teachers (`TEACHERS`): the shipped ViT or a random one."""
    cfg = stage_config(TEACHER, opts)
    if teacher == "random":
        # the same shape as the shipped ViT-S/14 blocks in use, with random weights
        t = cfg.model.transformer
        vit = IMGFOCUS_VIT_S14
        t.kind, t.width, t.heads, t.layer_scale = "random", vit.width, vit.heads, vit.layer_scale
        t.random_depth = t.depth or vit.depth
        t.depth = None
    return cfg


def own_data_config(root: Path, num_points: int) -> DataConfig:
    return DataConfig(format="class-folders", root=str(root), num_points=num_points)
