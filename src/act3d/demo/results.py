"""The demo's results as typed values: what `run_demo` returns, `results.json` holds (`to_dict`) and the
report renders (`from_dict` reads a saved one back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from act3d.eval.paired import PairedDifference


@dataclass
class ArmResult:
    """One arm on the embedded data: fine-tuning (per seed), SVM probes, few-shot, its Stage II run."""

    name: str
    label: str
    finetune_scan_acc_mean: float
    finetune_scan_acc_std: float
    finetune_scan_accs: list[float]
    finetune_scan_val_acc_mean: float
    finetune_scan_val_accs: list[float]
    svm_scan_acc: float
    svm_clean_acc: float
    fewshot: dict[str, dict[str, float]]  # "5w10s" -> {"mean", "std"}
    stage2: dict[str, Any]  # checkpoint, first and last loss


@dataclass
class OwnDataArm:
    """One arm on the user's prepared dataset (`--own-data`)."""

    name: str
    label: str
    svm_acc: float
    fewshot: dict[str, dict[str, float]]
    finetune_acc_mean: float
    finetune_acc_std: float
    finetune_accs: list[float]
    finetune_val_acc_mean: float


@dataclass
class PeftResult:
    """The ACT arm's student under one transfer (`full`, or a PEFT method of `--peft`), over the seeds."""

    method: str
    trainable: int
    parameters: int
    seconds_per_step: float  # mean over the seeds
    finetune_scan_acc_mean: float
    finetune_scan_acc_std: float
    finetune_scan_accs: list[float]
    finetune_scan_val_acc_mean: float


@dataclass
class RobustRow:
    """One arm (or the ACT student under a PEFT method) on its test clouds damaged as ModelNet-C damages them
    (`act3d demo --robust`), over its fine-tuning seeds; accuracies as fractions."""

    name: str
    label: str
    clean_oa_mean: float
    mce_mean: float
    mce_std: float
    rmce_mean: float
    oa: dict[str, float]  # corruption -> accuracy over its five levels, mean over seeds
    mces: list[float]  # mCE per seed


@dataclass
class OwnDataResults:
    data: str
    source: str
    classes: list[str]
    counts: dict[str, dict[str, int]]
    fewshot_folds: int
    arms: list[OwnDataArm]
    comparisons: list[PairedDifference]
    # `--peft`: the ACT student's full fine-tuning and each method on it, and each against full fine-tuning
    peft: list[PeftResult] = field(default_factory=list)
    peft_comparisons: list[PairedDifference] = field(default_factory=list)
    robust: list[RobustRow] = field(default_factory=list)  # `--robust`
    robust_comparisons: list[PairedDifference] = field(default_factory=list)


@dataclass
class DemoResults:
    """Everything one demo run measured, and how it ran."""

    quick: bool
    preset: str
    seeds: int
    overrides: list[str]
    wall_seconds: float
    torch: str
    threads: int
    data: str
    teachers: dict[str, dict[str, Any]]  # "pretrained" / "random" -> checkpoint, steps, Chamfer first/last
    arms: list[ArmResult]
    comparisons: list[PairedDifference]
    timings: dict[str, float]
    confusion_act: list[list[int]]
    class_names: list[str]
    embedding_act: dict[str, Any]  # features, labels, class names of the clean test split
    fewshot_folds: int
    own_data: OwnDataResults | None = None
    reused_stages: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)  # act3d.environment: what the bits depend on
    # `--peft`: each method on the ACT student, and its paired differences against full fine-tuning
    peft: list[PeftResult] = field(default_factory=list)
    peft_comparisons: list[PairedDifference] = field(default_factory=list)
    # `--robust`: every arm (and `--peft` method) on the damaged test clouds, and against the ACT arm
    robust: list[RobustRow] = field(default_factory=list)
    robust_comparisons: list[PairedDifference] = field(default_factory=list)
    act3d_demo: int = 2  # the layout version of results.json (2: `transfer` renamed `own_data`)

    def to_dict(self) -> dict[str, Any]:
        """The `results.json` layout (no `own_data` key without `--own-data`, no `peft` keys without
        `--peft`, no `robust` keys without `--robust`)."""
        out = asdict(self)
        out["comparisons"] = [c.to_dict() for c in self.comparisons]
        if self.peft:
            out["peft_comparisons"] = [c.to_dict() for c in self.peft_comparisons]
        else:
            del out["peft"], out["peft_comparisons"]
        if self.robust:
            out["robust_comparisons"] = [c.to_dict() for c in self.robust_comparisons]
        else:
            del out["robust"], out["robust_comparisons"]
        if self.own_data is None:
            del out["own_data"]
        else:
            out["own_data"]["comparisons"] = [c.to_dict() for c in self.own_data.comparisons]
            out["own_data"]["robust_comparisons"] = [c.to_dict() for c in self.own_data.robust_comparisons]
            out["own_data"]["peft_comparisons"] = [c.to_dict() for c in self.own_data.peft_comparisons]
        return out

    @staticmethod
    def from_dict(d: dict[str, Any]) -> DemoResults:
        """A saved `results.json` read back."""
        known = {f.name for f in fields(DemoResults)}
        values = {k: v for k, v in d.items() if k in known}
        values["arms"] = [ArmResult(**a) for a in d["arms"]]
        values["comparisons"] = [PairedDifference.from_dict(c) for c in d.get("comparisons", [])]
        values["peft"] = [PeftResult(**p) for p in d.get("peft", [])]
        values["peft_comparisons"] = [PairedDifference.from_dict(c) for c in d.get("peft_comparisons", [])]
        values["robust"] = [RobustRow(**r) for r in d.get("robust", [])]
        values["robust_comparisons"] = [
            PairedDifference.from_dict(c) for c in d.get("robust_comparisons", [])
        ]
        if own := d.get("own_data", d.get("transfer")):  # `transfer` before layout 2
            t = dict(own)
            t["arms"] = [OwnDataArm(**a) for a in t["arms"]]
            t["comparisons"] = [PairedDifference.from_dict(c) for c in t.get("comparisons", [])]
            t["robust"] = [RobustRow(**r) for r in t.get("robust", [])]
            t["peft"] = [PeftResult(**p) for p in t.get("peft", [])]
            t["peft_comparisons"] = [PairedDifference.from_dict(c) for c in t.get("peft_comparisons", [])]
            t["robust_comparisons"] = [PairedDifference.from_dict(c) for c in t.get("robust_comparisons", [])]
            values["own_data"] = OwnDataResults(**t)
        return DemoResults(**values)
