"""The demo's paired comparisons: each pair of arms, on each measure, over the units the arms share.

Every arm is fine-tuned with the same seeds, probed on the same few-shot episodes and scored on the same
test clouds, so the differences are paired. Each measure is an accuracy made of per-cloud outcomes within
units: fine-tuning's validation or test clouds within each seed, few-shot's query clouds within each
episode, the SVM probe's test clouds (one unit). `act3d.eval.paired.paired_bootstrap` resamples both
levels and gives each mean difference its 95% interval.
"""

from __future__ import annotations

from act3d.demo.arms import ACT, ACT_RANDOM_TEACHER, POINT_MAE, SCRATCH
from act3d.eval.paired import PairedDifference, paired_bootstrap

# (a, b): the question each pair asks of ACT's claim
PAIRS = [
    (ACT.name, ACT_RANDOM_TEACHER.name),  # does the image-pretrained teacher matter?
    (ACT.name, POINT_MAE.name),  # distillation against raw-point reconstruction
    (ACT.name, SCRATCH.name),  # pretraining against none
    (POINT_MAE.name, SCRATCH.name),
]


def arm_measures(
    finetune_val: list[list[int]],
    finetune_test: list[list[int]],
    svm_correct: list[int] | None,
    fewshot: dict[str, dict],
) -> dict[str, dict]:
    """One arm's per-cloud outcomes, measure -> {"unit": ..., "outcomes": one list of 1/0 per unit}:
    fine-tuning per seed (its validation and test clouds), the SVM probe (one fit, its test clouds),
    few-shot per episode (its query clouds)."""
    measures = {
        "fine-tune val OA": {"unit": "seed", "outcomes": finetune_val},
        "fine-tune test OA": {"unit": "seed", "outcomes": finetune_test},
    }
    if svm_correct is not None:
        measures["SVM test OA"] = {"unit": "fit", "outcomes": [svm_correct]}
    for key, fs in fewshot.items():
        if "correct" in fs:
            measures[f"few-shot {key}"] = {"unit": "episode", "outcomes": fs["correct"]}
    return measures


def compare_arms(measures: dict[str, dict[str, dict]], labels: dict[str, str]) -> list[PairedDifference]:
    """Every pair of `PAIRS` present in `measures` (arm -> `arm_measures`), on every measure both arms
    have on the same units and clouds: the paired difference, its interval and the sentence the report
    prints."""
    rows = []
    for a, b in PAIRS:
        if a not in measures or b not in measures:
            continue
        for name, ma in measures[a].items():
            mb = measures[b].get(name)
            same = mb is not None and [len(o) for o in mb["outcomes"]] == [len(o) for o in ma["outcomes"]]
            if not same or not ma["outcomes"]:
                continue
            rows.append(
                paired_bootstrap(
                    ma["outcomes"], mb["outcomes"], a, b, name, ma["unit"], labels=(labels[a], labels[b])
                )
            )
    return rows


def compare_to_full(full: list[dict], methods: dict[str, list[dict]]) -> list[PairedDifference]:
    """Each PEFT method (`--peft`) against full fine-tuning of the same student, seed by seed, on the
    validation and the test clouds: `<method>` − `act`."""
    rows = []
    for method, seeds in methods.items():
        for split, measure in (("val", "fine-tune val OA"), ("test", "fine-tune test OA")):
            rows.append(
                paired_bootstrap(
                    [r[f"{split}_correct"] for r in seeds],
                    [r[f"{split}_correct"] for r in full],
                    method,
                    ACT.name,
                    measure,
                    "seed",
                    labels=(f"ACT + {method}", "ACT, full fine-tuning"),
                )
            )
    return rows
