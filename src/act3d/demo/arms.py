"""The demo's teachers and arms, and the name of every run folder it writes: the one place that names them.

A demo run folder holds one folder per run (`act3d.demo.runs.Runs`): a Stage I teacher, an arm's Stage II
student, its probes, each fine-tuning seed, with `--peft` each PEFT method's seeds on the ACT student and,
with `--own-data`, the arms' runs on the user's data; with `--robust`, each fine-tuned classifier's
corruption robustness.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    name: str
    label: str
    teacher: str | None  # one of TEACHERS, or None
    target: str  # act | mae | none
    short: str  # the arm in a sentence of the report


# Stage I around the shipped ViT-S/14, and around a random ViT of its shape
TEACHERS = ("pretrained", "random")
ARMS = [
    Arm("act", "ACT (pretrained ViT-S/14 teacher)", "pretrained", "act", "ACT"),
    Arm("act-random-teacher", "ACT, randomly initialised teacher", "random", "act", "ACT (random teacher)"),
    Arm("point-mae", "Point-MAE-style target", None, "mae", "Point-MAE"),
    Arm("scratch", "no pretraining (scratch)", None, "none", "scratch"),
]
ACT, ACT_RANDOM_TEACHER, POINT_MAE, SCRATCH = ARMS  # ACT: the arm the PEFT methods (`--peft`) transfer
TRAINED_ARMS = [arm for arm in ARMS if arm.target != "none"]  # the arms whose students train in Stage II
FEWSHOT_SETTINGS = [(5, 10), (5, 20), (10, 10), (10, 20)]


def teacher_folder(teacher: str) -> str:
    """The run folder of a Stage I teacher (one of `TEACHERS`)."""
    return f"stage1-{teacher}-teacher"


def student_folder(arm: Arm) -> str:
    """The run folder of an arm's Stage II student."""
    return f"stage2-{arm.name}"


def probe_folder(arm: Arm) -> str:
    """The run folder of an arm's SVM and few-shot probes on the default data."""
    return f"probe-{arm.name}"


def finetune_folder(arm: Arm, seed: int) -> str:
    """The run folder of one fine-tuning seed of an arm on the default data."""
    return f"finetune-{arm.name}-seed{seed}"


def peft_folder(method: str, seed: int) -> str:
    """The run folder of one seed of a PEFT method (`act3d.models.peft`) on the ACT arm's student."""
    return f"finetune-{ACT.name}-{method}-seed{seed}"


def own_data_probe_folder(arm: Arm) -> str:
    """The run folder of an arm's probes on the user's dataset (`--own-data`)."""
    return f"own-data-probe-{arm.name}"


def own_data_finetune_folder(arm: Arm, seed: int) -> str:
    """The run folder of one fine-tuning seed of an arm on the user's dataset."""
    return f"own-data-finetune-{arm.name}-seed{seed}"


def own_data_peft_folder(method: str, seed: int) -> str:
    """The run folder of one seed of a PEFT method on the ACT arm's student, on the user's dataset."""
    return f"own-data-{peft_folder(method, seed)}"


def robust_folder(finetune: str) -> str:
    """The run folder of the corruption robustness (`act3d.eval.robust`) of a fine-tuning run's classifier."""
    return f"robust-{finetune}"
