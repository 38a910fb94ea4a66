"""What the four stages share: their result, the pretraining data, the call into `fit`, the Stage III
backbone (scratch or pretrained) and the reload of the validation-selected model.

Each stage module (`stage1`, `stage2`, `finetune`, `segment`; their records are in `act3d.stages`) seeds,
builds its model, opens its data, calls `train` inside `run_files`, then evaluates or draws its pictures,
and returns a `StageResult` (a downstream stage's with its `DownstreamResult`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from act3d.atomic import write_text_atomic
from act3d.config import to_dict
from act3d.data.dataset import DeviceClouds, PointClouds, open_source, training_clouds
from act3d.environment import environment
from act3d.models import zoo
from act3d.models.checkpoint import load_checkpoint, load_state_strict
from act3d.models.student import StudentConfig, StudentEncoder
from act3d.train.loop import FitResult, Task, fit

log = logging.getLogger(__name__)


@dataclass
class DownstreamResult:
    """What one downstream run (fine-tuning, part or semantic segmentation) measured: its run folder's
    `results.json` (`to_dict`), one shape for every downstream task. Scores are fractions, keyed by measure (`oa`,
    `macc`, `miou`, `class_miou`, `instance_miou`). `val` holds the selected model's validation scores (empty
    without a validation split), `test` the test split's, read once; `test_selected_on_test` the official
    runners' readings, the best over repeated test evaluations, named apart and never the headline."""

    task: str  # classification | part | semantic
    dataset: str
    seed: int
    pretrained: str | None
    steps: int
    seconds: float
    selected_step: int
    val: dict[str, float]
    test: dict[str, float]
    val_samples: int
    test_samples: int  # clouds, shapes, blocks, or (whole rooms) points
    protocol: dict[str, Any]  # classification: transfer and votes; segmentation: the test protocol
    test_selected_on_test: dict[str, float] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    confusion: list[list[int]] | None = None  # classification: rows true class, columns predicted
    # classification: 1/0 per cloud, whether the selected model classified it right (`val`, `test`): what
    # paired comparisons resample (`eval.paired.paired_bootstrap`)
    outcomes: dict[str, list[int]] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=environment)  # what the bits depend on

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DownstreamResult:
        return DownstreamResult(**d)

    def write(self, out_dir: Path) -> Path:
        """`out_dir/results.json`, written atomically."""
        path = out_dir / "results.json"
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2))
        return path


@dataclass
class StageResult:
    """What every stage returns: its model's checkpoint, the training it ran and, for the downstream stages,
    what it measured (also in its `results.json`)."""

    checkpoint: Path
    steps: int
    seconds: float
    downstream: DownstreamResult | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # metrics.csv's rows (`FitResult.history`)

    @staticmethod
    def of(fitted: FitResult, downstream: DownstreamResult | None = None) -> StageResult:
        return StageResult(fitted.checkpoint, fitted.steps, fitted.seconds, downstream, fitted.history)

    def curve(self, metric: str) -> list[list[float]]:
        """`[step, value]` of every logged row that has `metric`, e.g. the training loss (lists: as JSON)."""
        return [[int(row["step"]), row[metric]] for row in self.history if metric in row]


def pretraining_clouds(cfg: Any) -> PointClouds | DeviceClouds:
    """The training clouds of a pretraining stage (its data's `pretrain` split)."""
    return training_clouds(
        open_source(cfg.data, "pretrain"),
        cfg.data.num_points,
        cfg.data,
        cfg.runtime.seed,
        cfg.runtime.progress,
    )


def train(
    task: Task, data, cfg: Any, out_dir: Path, resume: bool, arch: dict[str, Any], **evaluation: Any
) -> FitResult:
    """`fit` with a stage config's own sections; every checkpoint records the resolved config and `arch`
    (what `zoo` rebuilds the model from). `evaluation`: `evaluate`, `best_metric`, `evaluate_every`."""
    return fit(
        task,
        data,
        cfg.optim,
        cfg.runtime,
        out_dir,
        to_dict(cfg),
        resume=resume,
        arch=arch,
        **evaluation,
    )


def student_backbone(cfg: Any) -> tuple[StudentEncoder, StudentConfig]:
    """The encoder a downstream stage starts from, and the `StudentConfig` describing it: fresh from
    `cfg.student` without `cfg.checkpoint`, else the pretrained student (its own architecture, the run's
    drop path)."""
    if cfg.checkpoint is None:
        return StudentEncoder(cfg.student), cfg.student
    encoder, arch = zoo.load_student(cfg.checkpoint, cfg.student.drop_path)
    if arch["patching"]["group_size"] != cfg.patching.group_size:
        log.warning(
            "the student was pretrained on %d-point patches, this run uses %d",
            arch["patching"]["group_size"],
            cfg.patching.group_size,
        )
    return encoder, zoo.student_config(arch)


def best_on_test(history: list[dict[str, float]], measures: tuple[str, ...]) -> dict[str, float]:
    """The best of each measure over the per-evaluation test readings logged in `history` (`test_<measure>`),
    each maxed on its own as the official mains do (segmentation, 3DETR); empty where none ran."""
    best = {}
    for measure in measures:
        values = [row[f"test_{measure}"] for row in history if f"test_{measure}" in row]
        if values:
            best[measure] = max(values)
    return best


def reload_best(model: nn.Module, out_dir: Path, kind: str, fitted: FitResult) -> bool:
    """Load the validation-selected weights (`checkpoints/best.pt`) into `model`, where the run kept one."""
    if fitted.best is None:
        return False
    best = out_dir / "checkpoints" / "best.pt"
    load_state_strict(model, load_checkpoint(best, kind)["model"], best.name)
    return True
