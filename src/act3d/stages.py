"""The five training stages, one record each. The CLI and the demo read a stage's names from here; the model
each trains is named in `act3d.models.kinds` (which the zoo and checkpoint import and export read).

| stage      | command         | trains (zoo model = official layout) | code                                     |
|------------|-----------------|--------------------------------------|------------------------------------------|
| `teacher`  | `train-teacher` | `teacher` (kind `act3d-teacher`)     | train/stage1: TeacherRunConfig, train_teacher |
| `pretrain` | `pretrain`      | `student` (kind `act3d-student`)     | train/stage2: PretrainRunConfig, pretrain |
| `finetune` | `finetune`      | `classifier` (kind `act3d-classifier`) | train/finetune: FinetuneRunConfig, finetune |
| `segment`  | `segment`       | `segmenter` (kind `act3d-segmenter`) | train/segment: SegmentRunConfig, segment |
| `detect`   | `detect`        | `detector` (kind `act3d-detector`)   | train/detect: DetectRunConfig, detect     |

A stage's name is also its preset family (`presets/<name>.<preset>.yaml`) and the prefix of a demo override
(`act3d demo --set <name>:KEY=VALUE`). This module imports no torch: the command line reads it to build its
parsers, and a stage's config class and run function are imported when first asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from act3d.config import load_config
from act3d.models.kinds import ModelName, kind_of


@dataclass(frozen=True)
class Stage:
    name: str  # preset family and demo override prefix
    command: str  # the CLI command that runs it
    model: ModelName  # what it trains: the zoo model, its checkpoint kind and its official layout
    default_preset: str  # the CLI's default
    official_preset: str  # the preset `import-official --layout <model>` takes the architecture from
    code: Callable[[], tuple[type, Callable[..., Any]]]  # imports (run config class, run function)

    @property
    def kind(self) -> str:
        """The checkpoint kind of the model it trains."""
        return kind_of(self.model)

    @property
    def config(self) -> type:
        """The run config dataclass."""
        return self.code()[0]

    @property
    def run(self) -> Callable[..., Any]:
        """`run(cfg, out_dir, resume=False, overwrite=False) -> StageResult`."""
        return self.code()[1]

    def load_config(
        self, preset: str | None = None, file: str | None = None, overrides: Sequence[str] = ()
    ) -> Any:
        """This stage's run config: its dataclass defaults, the preset, the YAML file, then `KEY=VALUE`."""
        return load_config(self.config, self.name, preset, file, list(overrides))


def _teacher():
    from act3d.train.stage1 import TeacherRunConfig, train_teacher

    return TeacherRunConfig, train_teacher


def _pretrain():
    from act3d.train.stage2 import PretrainRunConfig, pretrain

    return PretrainRunConfig, pretrain


def _finetune():
    from act3d.train.finetune import FinetuneRunConfig, finetune

    return FinetuneRunConfig, finetune


def _segment():
    from act3d.train.segment import SegmentRunConfig, segment

    return SegmentRunConfig, segment


def _detect():
    from act3d.train.detect import DetectRunConfig, detect

    return DetectRunConfig, detect


TEACHER = Stage("teacher", "train-teacher", "teacher", "cpu", "paper", _teacher)
PRETRAIN = Stage("pretrain", "pretrain", "student", "cpu", "paper", _pretrain)
FINETUNE = Stage("finetune", "finetune", "classifier", "cpu", "scanobjectnn_pb_t50_rs", _finetune)
SEGMENT = Stage("segment", "segment", "segmenter", "paper_part", "paper_part", _segment)
DETECT = Stage("detect", "detect", "detector", "cpu", "scannet_3detr", _detect)
STAGES = (TEACHER, PRETRAIN, FINETUNE, SEGMENT, DETECT)


def stage_training(model: str) -> Stage:
    """The stage that trains the zoo model (= official layout) `model`."""
    return next(s for s in STAGES if s.model == model)
