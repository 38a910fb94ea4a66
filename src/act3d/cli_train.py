"""`act3d train-teacher` (Stage I) and `act3d pretrain` (Stage II)."""

from __future__ import annotations

import argparse
import logging

from act3d.config import list_presets, load_config

log = logging.getLogger("act3d")


def add_config_args(parser: argparse.ArgumentParser, kind: str, default_preset: str) -> None:
    presets = list_presets(kind)
    parser.add_argument("--preset", default=default_preset, choices=presets, metavar="NAME",
                        help=f"named configuration, default {default_preset}; one of: {', '.join(presets)} "
                             "('cpu' fits a laptop in minutes, the others have the paper's sizes and want a GPU)")
    parser.add_argument("--config", help="YAML file overriding the preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one value, e.g. --set optim.lr=1e-3 (repeatable)")
    parser.add_argument("--out", required=True, help="output folder (config, log, metrics, checkpoints, pictures)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")


def _train_teacher(args: argparse.Namespace) -> int:
    from act3d.train.stage1 import TeacherRunConfig, train_teacher

    cfg = load_config(TeacherRunConfig, "teacher", args.preset, args.config, args.overrides)
    result = train_teacher(cfg, args.out, resume=args.resume)
    log.info("Stage I done: %d steps in %.0fs; checkpoint %s", result.steps, result.seconds, result.checkpoint)
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from act3d.train.stage2 import PretrainRunConfig, pretrain

    overrides = list(args.overrides)
    if args.teacher:
        overrides.append(f"teacher_checkpoint={args.teacher}")
    cfg = load_config(PretrainRunConfig, "pretrain", args.preset, args.config, overrides)
    path = pretrain(cfg, args.out, resume=args.resume)
    log.info("Stage II done; student checkpoint %s", path)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    teacher = commands.add_parser("train-teacher", help="Stage I: prompt-tune a pretrained Transformer into a 3D autoencoder")
    add_config_args(teacher, "teacher", "cpu")
    teacher.set_defaults(run=_train_teacher)

    student = commands.add_parser("pretrain", help="Stage II: masked point modelling of the 3D student, taught by Stage I")
    add_config_args(student, "pretrain", "cpu")
    student.add_argument("--teacher", help="Stage I checkpoint (the act target needs one)")
    student.set_defaults(run=_pretrain)
