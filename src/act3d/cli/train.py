"""The training commands: `act3d train-teacher` (Stage I), `pretrain` (Stage II), `finetune` and `segment`
(Stage III)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from act3d.cli.common import (
    add_compare_arg,
    add_config_args,
    compare_to,
    config_hash,
    output_folder,
    positive_int,
    write_results,
)
from act3d.config import to_dict
from act3d.stages import FINETUNE, PRETRAIN, SEGMENT, TEACHER

log = logging.getLogger("act3d")


def _train_teacher(args: argparse.Namespace) -> int:
    cfg = TEACHER.load_config(args.preset, args.config, args.overrides)
    result = TEACHER.run(cfg, output_folder(args.out), resume=args.resume, overwrite=args.overwrite)
    log.info(
        "Stage I done: %d steps in %.0fs; checkpoint %s", result.steps, result.seconds, result.checkpoint
    )
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.teacher:
        overrides.append(f"teacher_checkpoint={args.teacher}")
    cfg = PRETRAIN.load_config(args.preset, args.config, overrides)
    result = PRETRAIN.run(cfg, output_folder(args.out), resume=args.resume, overwrite=args.overwrite)
    log.info(
        "Stage II done: %d steps in %.0fs; student checkpoint %s",
        result.steps,
        result.seconds,
        result.checkpoint,
    )
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from act3d.eval.metrics import mean_std

    overrides = list(args.overrides) + ([f"checkpoint={args.checkpoint}"] if args.checkpoint else [])
    configs = [
        FINETUNE.load_config(args.preset, args.config, overrides + [f"runtime.seed={seed}"])
        for seed in range(args.seeds)
    ]
    # seeds pair runs of two checkpoints only on the same data, split and training recipe
    protocol = to_dict(configs[0]) | {"checkpoint": None, "runtime": None}
    output_folder(args.out)
    accs, rows, paired = [], [], {"val OA": {}, "test OA": {}}
    for seed, cfg in enumerate(configs):
        out = Path(args.out) / f"seed{seed}" if args.seeds > 1 else Path(args.out)
        res = FINETUNE.run(cfg, out, resume=args.resume, overwrite=args.overwrite).scores
        accs.append(res["test_acc"])
        paired["val OA"][str(seed)], paired["test OA"][str(seed)] = res["val_acc"], res["test_acc"]
        h = config_hash(to_dict(cfg))
        rows += [
            {
                "metric": "overall_accuracy",
                "value": res["val_acc"],
                "split": "val",
                "seed": seed,
                "config_hash": h,
            },
            {
                "metric": "overall_accuracy",
                "value": res["test_acc"],
                "split": "test",
                "seed": seed,
                "config_hash": h,
            },
            {
                "metric": "mean_class_accuracy",
                "value": res["test_macc"],
                "split": "test",
                "seed": seed,
                "config_hash": h,
            },
        ]
        log.info(
            "seed %d: OA %.2f%%, mAcc %.2f%% (votes %d)",
            seed,
            100 * res["test_acc"],
            100 * res["test_macc"],
            res["votes"],
        )
    mean, std = mean_std(accs)
    comparison = compare_to(args.compare_to, paired, protocol, "seed") if args.compare_to else []
    extra = {"overall_accuracy_mean": mean, "overall_accuracy_std": std, "seeds": args.seeds}
    extra |= {"protocol": protocol, "paired_values": paired, "paired": comparison}
    write_results(Path(args.out), rows, extra)
    log.info("overall accuracy: %.2f ± %.2f %% over %d seed(s)", 100 * mean, 100 * std, args.seeds)
    for c in comparison:
        log.info("%s", c["text"])
    return 0


def _segment(args: argparse.Namespace) -> int:
    # --task picks its paper preset when no --preset is given; a preset's own task and data stand unless
    # the user says otherwise (then the config check names what does not fit)
    preset = args.preset or f"paper_{args.task or 'part'}"
    overrides = list(args.overrides) + ([f"task={args.task}"] if args.task else [])
    if args.root:
        overrides.append(f"data.root={args.root}")
    if args.checkpoint:
        overrides.append(f"checkpoint={args.checkpoint}")
    cfg = SEGMENT.load_config(preset, args.config, overrides)
    res = SEGMENT.run(cfg, output_folder(args.out), resume=args.resume, overwrite=args.overwrite).scores
    log.info("%s", ", ".join(f"{k} {100 * v:.2f}%" for k, v in res["metrics"].items()))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    teacher = commands.add_parser(
        TEACHER.command, help="Stage I: prompt-tune a pretrained Transformer into a 3D autoencoder"
    )
    add_config_args(teacher, TEACHER)
    teacher.set_defaults(run=_train_teacher)

    student = commands.add_parser(
        PRETRAIN.command, help="Stage II: masked point modelling of the 3D student, taught by Stage I"
    )
    add_config_args(student, PRETRAIN)
    student.add_argument("--teacher", help="Stage I checkpoint (the act target needs one)")
    student.set_defaults(run=_pretrain)

    ft = commands.add_parser(
        FINETUNE.command,
        help="Stage III: fine-tune (full) or probe (linear / mlp3) a student on a classification set",
    )
    add_config_args(ft, FINETUNE)
    ft.add_argument("--checkpoint", help="Stage II student checkpoint (omit to train from scratch)")
    ft.add_argument(
        "--seeds", type=positive_int, default=1, help="repeat with seeds 0..N-1 and report mean ± std"
    )
    add_compare_arg(ft, "seeds")
    ft.set_defaults(run=_finetune)

    seg = commands.add_parser(
        SEGMENT.command,
        help="part segmentation (ShapeNetPart) or semantic segmentation (S3DIS, Area 5 held out)",
    )
    add_config_args(seg, SEGMENT)
    seg.set_defaults(preset=None)  # chosen from --task (see _segment)
    seg.add_argument(
        "--task",
        choices=["part", "semantic"],
        help="part (ShapeNetPart) or semantic (S3DIS); without --preset it picks paper_<task>, "
        "with one it overrides the preset's task (default: the preset's)",
    )
    seg.add_argument(
        "--root",
        help="dataset folder (shapenetcore_partanno_segmentation_benchmark_v0_normal or stanford_indoor3d)",
    )
    seg.add_argument("--checkpoint", help="Stage II student checkpoint (omit to train from scratch)")
    seg.set_defaults(run=_segment)
