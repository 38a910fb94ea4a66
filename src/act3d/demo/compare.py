"""The demo's paired comparisons: each pair of arms, on each measure, over the units the arms share.

Every arm is fine-tuned with the same seeds, probed on the same few-shot episodes and scored on the same
test clouds, so the differences are paired: by seed (fine-tuning), by episode (few-shot) and by test cloud
(the SVM probe, a 0/1 correctness per cloud). `act3d.eval.paired` gives each mean difference its 95% t
interval.
"""

from __future__ import annotations

from act3d.eval.paired import PairedDifference, paired_difference

# (a, b): the question each pair asks of ACT's claim
PAIRS = [
    ("act", "act-random-teacher"),  # does the image-pretrained teacher matter?
    ("act", "point-mae"),  # distillation against raw-point reconstruction
    ("act", "scratch"),  # pretraining against none
    ("point-mae", "scratch"),
]


def arm_measures(
    finetune_val: list[float],
    finetune_test: list[float],
    svm_correct: list[int] | None,
    fewshot: dict[str, dict],
) -> dict[str, dict]:
    """One arm's paired values: measure -> {"unit": ..., "values": [...]} (few-shot: one per episode)."""
    measures = {
        "fine-tune val OA": {"unit": "seed", "values": finetune_val},
        "fine-tune test OA": {"unit": "seed", "values": finetune_test},
    }
    if svm_correct is not None:
        measures["SVM test OA"] = {"unit": "test cloud", "values": svm_correct}
    for key, fs in fewshot.items():
        if "folds" in fs:
            measures[f"few-shot {key}"] = {"unit": "episode", "values": fs["folds"]}
    return measures


def compare_arms(measures: dict[str, dict[str, dict]], labels: dict[str, str]) -> list[PairedDifference]:
    """Every pair of `PAIRS` present in `measures` (arm -> `arm_measures`), on every measure both arms
    have: the paired difference, its interval and the sentence the report prints."""
    rows = []
    for a, b in PAIRS:
        if a not in measures or b not in measures:
            continue
        for name, ma in measures[a].items():
            mb = measures[b].get(name)
            if mb is None or len(mb["values"]) != len(ma["values"]) or not ma["values"]:
                continue
            rows.append(
                paired_difference(
                    ma["values"], mb["values"], a, b, name, ma["unit"], labels=(labels[a], labels[b])
                )
            )
    return rows
