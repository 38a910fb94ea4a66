"""`OUT/summary.json`: what one command measured, as typed records.

Every command's summary is a `Summary`: its `command`, one `ScoreRow` per score, the `protocol` two runs
must share for their units to pair, the `paired_values` another run pairs with (`--compare-to`), the
`paired` differences it printed, and the `environment` the bits depend on. Each command family adds its own
fields in a subclass (`DownstreamSummary`, `SvmSummary`, `FewshotSummary`); the file is the flat
`dataclasses.asdict` of the record, so one key per field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from act3d.atomic import write_text_atomic
from act3d.environment import environment
from act3d.errors import Act3dError

FILE = "summary.json"
# measure -> unit (seed, fit, episode) -> one number, or that unit's 1/0 outcome per cloud
PairedValues = dict[str, dict[str, float | list[int]]]


def config_hash(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class ScoreRow:
    """One score (a fraction) with what produced it."""

    metric: str
    value: float
    split: str
    seed: int
    config_hash: str

    @staticmethod
    def of(metric: str, value: float, split: str, seed: int, config: dict) -> ScoreRow:
        return ScoreRow(metric, value, split, seed, config_hash(config))


@dataclass
class Summary:
    command: str
    results: list[ScoreRow]
    protocol: dict[str, Any]  # what a run compared to this one must share (`--compare-to`)
    paired_values: PairedValues
    paired: list[dict[str, Any]]  # `--compare-to`'s paired differences (`PairedDifference.to_dict`)
    environment: dict[str, Any] = field(default_factory=environment)

    def write(self, out: Path) -> Path:
        """`out/summary.json`, written atomically."""
        path = out / FILE
        write_text_atomic(path, json.dumps(asdict(self), indent=2))
        return path

    @staticmethod
    def read_pairing(folder: str | Path) -> tuple[dict[str, Any], PairedValues]:
        """The `protocol` and `paired_values` of an earlier run's `folder/summary.json`: what
        `--compare-to` pairs with."""
        path = Path(folder) / FILE
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise Act3dError(
                f"--compare-to {folder}: cannot read {path} ({err}); expected an earlier run's --out"
            ) from None
        if not isinstance(saved, dict) or not isinstance(saved.get("paired_values"), dict):
            raise Act3dError(
                f"--compare-to {folder}: {path} holds no paired values; expected a run of this command"
            )
        return saved.get("protocol") or {}, saved["paired_values"]


@dataclass
class DownstreamSummary(Summary):
    """`finetune`, `segment`: every seed's scores, and their mean and std per `split measure`."""

    seeds: int = 1
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # "test oa" -> {"mean", "std"}


@dataclass
class SvmSummary(Summary):
    """`eval svm`: the student checkpoint, and the C the cross-validation chose."""

    checkpoint: str = ""
    svm_C: float = 0.0
    cross_validated_acc: float = 0.0


@dataclass
class FewshotSummary(Summary):
    """`eval fewshot`: the student checkpoint, and per setting (`5w10s`) the folds' scores."""

    checkpoint: str = ""
    table: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RobustSummary(Summary):
    """`eval robust`: the classifier, whether the clouds are the official ModelNet-C files, and the scores
    (`act3d.eval.robust.scores`) of the accuracies averaged over the draws, then each draw's own."""

    checkpoint: str = ""
    official: bool = False  # the released files; False: a test split corrupted by act3d (not the benchmark)
    clean_oa: float = 0.0
    oa: dict[str, list[float]] = field(default_factory=dict)  # corruption -> the five levels' accuracies
    corruptions: dict[str, dict[str, float]] = field(default_factory=dict)  # corruption -> OA, CE, RCE
    mCE: float = 0.0
    RmCE: float = 0.0
    mOA: float = 0.0
    per_seed: list[dict[str, Any]] = field(default_factory=list)
