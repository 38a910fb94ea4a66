"""`act3d demo --robust`: every fine-tuned classifier on its test clouds damaged as ModelNet-C damages them
(`act3d.eval.robust`), one run per fine-tuning seed, and each arm's mCE and RmCE against the ACT arm's,
paired cloud by cloud on the same damaged clouds (drawn once, seed 0) and seed by seed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from act3d.data.dataset import DataConfig
from act3d.demo.arms import ACT, ARMS, Arm, robust_folder
from act3d.demo.configs import DemoOptions
from act3d.demo.results import RobustRow
from act3d.demo.runs import Runs
from act3d.demo.steps import damaged_test_split, robust_step
from act3d.eval.metrics import mean_std
from act3d.eval.paired import PairedDifference, paired_bootstrap
from act3d.eval.robust import CORRUPTIONS, cloud_values, outcomes_by_corruption

MEASURES = ("mCE", "RmCE")  # compared against the ACT arm, per cloud (`act3d.eval.robust.cloud_values`)


def fine_tuned_classifiers(
    opts: DemoOptions, arm_folder: Callable[[Arm, int], str], method_folder: Callable[[str, int], str]
) -> dict[str, tuple[str, list[str]]]:
    """What `robust_stages` scores: every arm's fine-tuning seeds, then each `--peft` method's on the ACT
    student, as name -> (label, run folders); `arm_folder` / `method_folder` name a seed's run folder (on the
    default data or on the user's)."""
    seeds = range(opts.seeds)
    classifiers = {a.name: (a.short, [arm_folder(a, s) for s in seeds]) for a in ARMS}
    for method in opts.peft:
        classifiers[f"{ACT.name}-{method}"] = (f"ACT + {method}", [method_folder(method, s) for s in seeds])
    return classifiers


def robust_stages(
    runs: Runs, classifiers: dict[str, tuple[str, list[str]]], data: DataConfig
) -> tuple[list[RobustRow], list[PairedDifference]]:
    """`classifiers`: name -> (label, its fine-tuning run folders, one per seed), the ACT arm's named `act`.
    Each folder's classifier is scored once (`robust_step`, its record in `done/`); returns a row per name
    and every other name's paired differences against ACT on `MEASURES`."""
    damaged: dict[str, tuple] = {}

    def sets() -> tuple:  # corrupted once per demo process, only if a run needs them
        if not damaged:
            damaged["sets"] = damaged_test_split(data)
        return damaged["sets"]

    rows, values = [], {}
    for name, (label, folders) in classifiers.items():
        records = [
            runs.run(robust_folder(f), lambda d, f=f: robust_step(runs.out / f, sets)) for f in folders
        ]
        rows.append(robust_row(name, label, records))
        values[name] = [per_cloud(r) for r in records]
    comparisons = [
        paired_bootstrap(
            [v[measure] for v in values[ACT.name]],
            [v[measure] for v in values[name]],
            ACT.name,
            name,
            f"robustness {measure}",
            "seed",
            labels=(classifiers[ACT.name][0], label),
            scale=None,  # an mCE, not a fraction
            lower_is_better=True,  # an error
        )
        for name, (label, _) in classifiers.items()
        if name != ACT.name and ACT.name in values
        for measure in MEASURES
    ]
    return rows, comparisons


def per_cloud(record: dict) -> dict[str, list[float]]:
    """A robustness record's per-cloud values (`cloud_values`) as lists."""
    correct = {k: np.asarray(v) for k, v in record["correct"].items()}
    values = cloud_values(outcomes_by_corruption(correct), correct["clean"])
    return {k: v.tolist() for k, v in values.items()}


def robust_row(name: str, label: str, records: list[dict]) -> RobustRow:
    mce_mean, mce_std = mean_std([r["mCE"] for r in records])
    return RobustRow(
        name=name,
        label=label,
        clean_oa_mean=float(np.mean([r["clean_oa"] for r in records])),
        mce_mean=mce_mean,
        mce_std=mce_std,
        rmce_mean=float(np.mean([r["RmCE"] for r in records])),
        oa={c: float(np.mean([r["corruptions"][c]["OA"] for r in records])) for c in CORRUPTIONS},
        mces=[r["mCE"] for r in records],
    )
