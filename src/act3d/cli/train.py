"""The training commands: `act3d train-teacher` (Stage I), `pretrain` (Stage II), `finetune` and `segment`
(Stage III), and `detect` (3DETR on scenes)."""

from __future__ import annotations

import argparse
import logging

from act3d.cli.common import (
    add_compare_arg,
    add_config_args,
    compare_to,
    output_folder,
    pairing_differences,
    positive_int,
)
from act3d.cli.summary import DownstreamSummary, ScoreRow
from act3d.config import to_dict
from act3d.models.peft import METHODS
from act3d.stages import DETECT, FINETUNE, PRETRAIN, SEGMENT, TEACHER, Stage

log = logging.getLogger("act3d")


def _train_teacher(args: argparse.Namespace) -> int:
    cfg = TEACHER.load_config(args.preset, args.config, args.overrides)
    result = TEACHER.run(
        cfg, output_folder(args.out, keep=False), resume=args.resume, overwrite=args.overwrite
    )
    log.info(
        "Stage I done: %d steps in %.0fs; checkpoint %s", result.steps, result.seconds, result.checkpoint
    )
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.teacher:
        overrides.append(f"teacher_checkpoint={args.teacher}")
    cfg = PRETRAIN.load_config(args.preset, args.config, overrides)
    result = PRETRAIN.run(
        cfg, output_folder(args.out, keep=False), resume=args.resume, overwrite=args.overwrite
    )
    log.info(
        "Stage II done: %d steps in %.0fs; student checkpoint %s",
        result.steps,
        result.seconds,
        result.checkpoint,
    )
    return 0


def _finetune(args: argparse.Namespace) -> int:
    overrides = list(args.overrides) + ([f"checkpoint={args.checkpoint}"] if args.checkpoint else [])
    return _transfer(FINETUNE, args, overrides, args.preset)


def _segment(args: argparse.Namespace) -> int:
    # --task picks its paper preset when no --preset is given; a preset's own task and data stand unless
    # the user says otherwise (then the config check names what does not fit)
    preset = args.preset or f"paper_{args.task or 'part'}"
    overrides = list(args.overrides) + ([f"task={args.task}"] if args.task else [])
    if args.root:
        overrides.append(f"data.root={args.root}")
    if args.checkpoint:
        overrides.append(f"checkpoint={args.checkpoint}")
    return _transfer(SEGMENT, args, overrides, preset)


def _detect(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.root:
        overrides.append(f"scenes.root={args.root}")
    if args.meta:
        overrides.append(f"scenes.meta={args.meta}")
    if args.checkpoint:
        overrides.append(f"checkpoint={args.checkpoint}")
    return _transfer(DETECT, args, overrides, args.preset)


def _transfer(stage: Stage, args: argparse.Namespace, overrides: list[str], preset: str) -> int:
    """Run a transfer stage once per seed 0..N-1, in OUT with one seed and in OUT/seed<i> with several (each
    run folder with its `results.json`, a `DownstreamResult`); then OUT/summary.json: every score of every
    seed, their mean and std, and with `--compare-to` the paired differences to an earlier run."""
    from act3d.eval.metrics import mean_std

    configs = [
        stage.load_config(preset, args.config, overrides + [f"runtime.seed={seed}"])
        for seed in range(args.seeds)
    ]
    # seeds pair runs of two checkpoints only on the same data, split and training recipe
    protocol = to_dict(configs[0]) | {"checkpoint": None, "runtime": None}
    recipe, compared = getattr(stage.config, "RECIPE", ()), getattr(stage.config, "COMPARED", ())
    defaults = to_dict(stage.config())  # what an earlier run's protocol lacks, it ran with
    if args.compare_to:  # refused before anything trains
        pairing_differences(args.compare_to, protocol, "seed", recipe, compared, defaults)
    out = output_folder(args.out, keep=False)  # each seed's run makes its folder (and OUT) when it starts
    rows, values, paired = [], {}, {}
    for cfg in configs:
        seed = cfg.runtime.seed
        folder = out / f"seed{seed}" if args.seeds > 1 else out
        result = stage.run(cfg, folder, resume=args.resume, overwrite=args.overwrite).downstream
        config = to_dict(cfg)
        for split, scores in (("val", result.val), ("test", result.test)):
            for metric, value in scores.items():
                rows.append(ScoreRow.of(metric, value, split, seed, config))
                values.setdefault(f"{split} {metric}", {})[str(seed)] = value
                # an accuracy pairs cloud by cloud (its outcomes), any other score seed by seed
                outcome = result.outcomes.get(split) if metric == "oa" else None
                paired.setdefault(f"{split} {metric}", {})[str(seed)] = value if outcome is None else outcome
        log.info("seed %d: %s", seed, _percentages(result.test))
    spread = {
        measure: dict(zip(("mean", "std"), mean_std(list(v.values())))) for measure, v in values.items()
    }
    comparison = (
        compare_to(args.compare_to, paired, protocol, "seed", recipe, compared=compared, defaults=defaults)
        if args.compare_to
        else []
    )
    DownstreamSummary(
        stage.command, rows, protocol, paired, comparison, seeds=args.seeds, scores=spread
    ).write(out)
    log.info(
        "test, over %d seed(s): %s",
        args.seeds,
        ", ".join(
            f"{m} {100 * s['mean']:.2f} ± {100 * s['std']:.2f}%" for m, s in spread.items() if "test" in m
        ),
    )
    for c in comparison:
        log.info("%s", c["text"])
    return 0


def _percentages(scores: dict[str, float]) -> str:
    return ", ".join(f"{name} {100 * value:.2f}%" for name, value in scores.items())


def register(commands: argparse._SubParsersAction) -> None:
    teacher = commands.add_parser(
        TEACHER.command,
        help="Stage I: prompt-tune a pretrained Transformer into a 3D autoencoder",
        description="Stage I: prompt-tune a frozen pretrained Transformer into a 3D autoencoder (the "
        "cross-modal teacher). The Transformer is model.transformer.kind: vit-s14-imgfocus (default, shipped), "
        "minilm-l6 (shipped), timm (a timm ViT / DeiT / DINOv2 file: --set model.transformer.path=FILE), "
        "hf (a save_pretrained folder built by transformers: ViT, DeiT, ViT-MAE, DINOv2, CLIP or SigLIP vision, "
        "BERT, RoBERTa, DistilBERT, MiniLM: --set model.transformer.path=DIR) or random. "
        "Example: --set model.transformer.kind=hf --set model.transformer.path=/models/dinov2-small",
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
        help="Stage III: fine-tune (full, or a PEFT method) or probe (linear / mlp3) a student on a "
        "classification set",
        description="Stage III on a classification set. transfer: full (every weight), linear / mlp3 (frozen "
        "backbone, a linear / 3-layer head), or a parameter-efficient method on the frozen backbone, each as "
        f"its official code: {', '.join(METHODS)} (docs/method.md 4b). Pick one with a preset "
        "(finetune.<set>_<method>, cpu_<method>) or --set transfer=METHOD, and change its own settings with "
        "--set peft.<setting>=VALUE (e.g. peft.rank=32 under dapt); the run prints what trains. Example: "
        "--preset scanobjectnn_pb_t50_rs_dapt --checkpoint student.pt --seeds 3 "
        "--compare-to runs/full",
    )
    add_config_args(ft, FINETUNE)
    ft.add_argument("--checkpoint", help="Stage II student checkpoint (omit to train from scratch)")
    _seed_args(ft)
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
    _seed_args(seg)
    seg.set_defaults(run=_segment)

    det = commands.add_parser(
        DETECT.command,
        help="3D object detection in scenes: 3DETR on ScanNetV2 or the embedded rooms, on its own encoder "
        "or on an act3d student",
        description="Train and evaluate 3DETR (facebookresearch/3detr) on ScanNetV2 (the folder VoteNet's "
        "batch_load_scannet_data.py writes) or on the embedded rooms (preset cpu). The checkpoint is selected on "
        "held-out training rooms (mAP25) and the val list is scored once; OUT gets results.json (mAP25, mAP50, "
        "AR), per_class_ap.json and detections.png. Presets: cpu, scannet_3detr, scannet_3detr_masked (3DETR-m), "
        "scannet_act (--checkpoint: a Stage II student, or a Stage III classifier / segmenter, as the encoder). "
        "Example: --preset scannet_3detr --root scannet/scannet_train_detection_data --seeds 3",
    )
    add_config_args(det, DETECT)
    det.add_argument("--root", help="ScanNet detection folder (<scan>_vert.npy, _bbox.npy, ...)")
    det.add_argument("--meta", help="the folder of scannetv2_{train,val}.txt (default: ROOT/../meta_data)")
    det.add_argument(
        "--checkpoint", help="act3d student, classifier or segmenter checkpoint: its student is the encoder"
    )
    _seed_args(det)
    det.set_defaults(run=_detect)


def _seed_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        help="repeat with seeds 0..N-1 (in OUT/seed<i>) and report mean ± std in OUT/summary.json",
    )
    add_compare_arg(parser, "seeds")
