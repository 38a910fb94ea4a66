"""`act3d demo`: the main job."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from act3d.cli.common import positive_int
from act3d.models.peft import METHODS

log = logging.getLogger("act3d")


def _demo(args: argparse.Namespace) -> int:
    from act3d.demo.configs import DemoOptions
    from act3d.demo.pipeline import run_demo

    opts = DemoOptions(
        Path(args.out),
        quick=args.quick,
        seeds=args.seeds if args.seeds else (1 if args.quick else 3),
        overrides=tuple(args.overrides),
        own_data=Path(args.own_data) if args.own_data else None,
        preset=args.preset,
        peft=tuple(METHODS) if args.peft == [] else tuple(args.peft or ()),
        robust=args.robust,
    )
    results = run_demo(opts)
    log.info("")
    log.info("%-36s %18s %10s %10s", "arm", "fine-tune OA %", "SVM scan", "5w10s")
    for arm in results.arms:
        log.info(
            "%-36s %10.1f ± %5.1f %10.1f %10.1f",
            arm.label,
            100 * arm.finetune_scan_acc_mean,
            100 * arm.finetune_scan_acc_std,
            100 * arm.svm_scan_acc,
            100 * arm.fewshot["5w10s"]["mean"],
        )
    log.info("paired differences, 95% paired bootstrap intervals (those that exclude zero are marked *):")
    for c in results.comparisons:
        log.info("  %s %s", "*" if c.distinguishable else " ", c.text)
    if results.peft:
        log.info("")
        log.info("the ACT student under each transfer:")
        log.info("%-18s %22s %12s %18s", "transfer", "trainable", "ms / step", "fine-tune OA %")
        for p in results.peft:
            log.info(
                "%-18s %22s %12.0f %10.1f ± %5.1f",
                p.method,
                f"{p.trainable:,}",
                1e3 * p.seconds_per_step,
                100 * p.finetune_scan_acc_mean,
                100 * p.finetune_scan_acc_std,
            )
        for c in results.peft_comparisons:
            log.info("  %s %s", "*" if c.distinguishable else " ", c.text)
    if results.own_data is not None:
        log.info("")
        log.info("on %s:", results.own_data.data)
        log.info("%-36s %18s %10s", "arm", "fine-tune OA %", "SVM")
        for arm in results.own_data.arms:
            log.info(
                "%-36s %10.1f ± %5.1f %10.1f",
                arm.label,
                100 * arm.finetune_acc_mean,
                100 * arm.finetune_acc_std,
                100 * arm.svm_acc,
            )
        for c in results.own_data.comparisons + results.own_data.peft_comparisons:
            log.info("  %s %s", "*" if c.distinguishable else " ", c.text)
    for where, rows, comparisons in _robust_tables(results):
        log.info("")
        log.info("robustness%s (ModelNet-C corruptions, drawn by act3d; DGCNN = 1):", where)
        log.info("%-36s %10s %14s %8s", "arm", "clean OA %", "mCE", "RmCE")
        for r in rows:
            log.info(
                "%-36s %10.1f %7.3f ± %5.3f %8.3f",
                r.label,
                100 * r.clean_oa_mean,
                r.mce_mean,
                r.mce_std,
                r.rmce_mean,
            )
        for c in comparisons:
            log.info("  %s %s", "*" if c.distinguishable else " ", c.text)
    log.info("report: %s (wall %.1f min)", Path(args.out) / "report.html", results.wall_seconds / 60)
    return 0


def _robust_tables(results) -> list[tuple[str, list, list]]:
    """`--robust`'s rows and comparisons: on the default data, and on the user's data."""
    tables = [("", results.robust, results.robust_comparisons)] if results.robust else []
    if results.own_data is not None and results.own_data.robust:
        tables.append(
            (f" on {results.own_data.data}", results.own_data.robust, results.own_data.robust_comparisons)
        )
    return tables


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="run the whole ACT pipeline (I -> II -> III) on the embedded data, with a report"
    )
    demo.add_argument(
        "--out",
        default="runs/demo",
        help="output folder (default runs/demo); re-running reuses finished stages",
    )
    demo.add_argument("--quick", action="store_true", help="a 1-2 minute smoke version")
    demo.add_argument(
        "--preset",
        default="cpu",
        choices=["cpu", "gpu"],
        help="cpu (default): small models, minutes on 2 CPU cores; gpu: the paper's model sizes, bf16, a budget "
        "of about 10 minutes on one GPU (presets teacher.gpu, pretrain.gpu, finetune.gpu)",
    )
    demo.add_argument(
        "--seeds", type=positive_int, help="fine-tuning seeds per arm (default 3, 1 with --quick)"
    )
    demo.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="STAGE:KEY=VALUE",
        help="change one value of a stage's preset, STAGE = teacher | pretrain | finetune, e.g. "
        "--set pretrain:optim.epochs=4 (repeatable; use a new --out, finished stages are reused)",
    )
    demo.add_argument(
        "--own-data",
        metavar="DIR",
        help="also measure every arm on your own dataset (a folder written by `act3d data prepare`): "
        "SVM probe, few-shot and fine-tuning, in the same report and results.json",
    )
    demo.add_argument(
        "--peft",
        nargs="*",
        choices=list(METHODS),
        metavar="METHOD",
        help="also fine-tune the ACT student under parameter-efficient methods (all five without a name: "
        f"{', '.join(METHODS)}), each with the arms' seeds, and report their parameters, time per "
        "step and paired differences against full fine-tuning (off by default; about a minute per method "
        "and seed on the CPU preset)",
    )
    demo.add_argument(
        "--robust",
        action="store_true",
        help="also score every fine-tuned classifier on its test clouds damaged as ModelNet-C damages them "
        "(7 corruptions x 5 levels, drawn once): mCE and RmCE per arm, paired against ACT (off by default; "
        "about a minute per classifier on the CPU preset)",
    )
    demo.set_defaults(run=_demo)
