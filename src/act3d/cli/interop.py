"""`act3d import-official` and `act3d export-official`: the ACT authors' checkpoint layout <-> act3d, and
3DETR's for the detector."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from act3d.config import to_dict
from act3d.stages import STAGES, stage_training

log = logging.getLogger("act3d")


def _import(args: argparse.Namespace) -> int:
    from act3d.cli.common import check_outputs
    from act3d.models.official import import_official

    check_outputs([Path(args.out)], [Path(args.checkpoint)], args.overwrite)
    stage = stage_training(args.layout)
    cfg = stage.load_config(args.preset or stage.official_preset, args.config, args.overrides)
    if args.layout == "detector":  # 3DETR's layout, not ACT's
        from act3d.models.detr.official import import_detector

        log.info(
            "wrote act3d detector checkpoint %s", import_detector(args.checkpoint, to_dict(cfg), args.out)
        )
        return 0
    path, ignored = import_official(args.checkpoint, args.layout, to_dict(cfg), args.out)
    if ignored:
        groups = sorted(
            {
                k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("ACT_encoder.") else "")
                for k in ignored
            }
        )
        log.info(
            "set aside %d official weights the act3d %s does not use: %s",
            len(ignored),
            args.layout,
            ", ".join(groups),
        )
    log.info("wrote act3d %s checkpoint %s", args.layout, path)
    return 0


def _export(args: argparse.Namespace) -> int:
    from act3d.cli.common import check_outputs
    from act3d.models import zoo
    from act3d.models.checkpoint import load_checkpoint
    from act3d.models.detr.official import export_detector, export_path
    from act3d.models.official import export_official, export_paths

    if load_checkpoint(args.checkpoint, zoo.KINDS)["kind"] == zoo.DETECTOR:  # 3DETR's layout: one .pth
        check_outputs([export_path(args.out)], [Path(args.checkpoint)], args.overwrite)
        log.info("wrote %s", export_detector(args.checkpoint, args.out))
        return 0
    check_outputs(list(export_paths(args.out)), [Path(args.checkpoint)], args.overwrite)
    weights, meta = export_official(args.checkpoint, args.out)
    log.info("wrote %s and %s", weights, meta)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    imp = commands.add_parser(
        "import-official",
        help="convert an official ACT or 3DETR checkpoint (.pth / .safetensors) into an act3d checkpoint",
        description="Read a checkpoint released by the ACT authors (weights under 'base_model', official key "
        "names; loaded with weights_only=True) into the act3d model that a preset or config describes.",
    )
    imp.add_argument("checkpoint", help="official checkpoint file")
    imp.add_argument(
        "--layout",
        required=True,
        choices=[s.model for s in STAGES],
        help="teacher = Stage I dVAE with its ViT, student = Stage II, classifier = fine-tuned, "
        "segmenter = an act3d segmenter exported by export-official (official backbone names, act3d head), "
        "detector = a 3DETR checkpoint as its main.py saves it (--preset detect.scannet_3detr or "
        "detect.scannet_3detr_masked)",
    )
    imp.add_argument(
        "--preset",
        help="act3d preset giving the architecture, of the stage that trains the layout's model "
        "(default: its paper preset)",
    )
    imp.add_argument("--config", help="YAML file overriding the preset")
    imp.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override one value"
    )
    imp.add_argument("--out", required=True, help="act3d checkpoint to write (.pt)")
    imp.add_argument("--overwrite", action="store_true", help="replace --out if it exists (never the input)")
    imp.set_defaults(run=_import)

    exp = commands.add_parser(
        "export-official",
        help="write an act3d checkpoint in the official ACT layout (safetensors + JSON), a detector in 3DETR's",
        description="Rename an act3d teacher / student / classifier / segmenter checkpoint's weights to the "
        "official ACT names and shapes, writing OUT.safetensors and OUT.json (metadata, act3d config); a detector "
        "(3DETR encoders) to 3DETR's names, writing OUT.pth as 3DETR's main.py --test_ckpt reads it.",
    )
    exp.add_argument("checkpoint", help="act3d checkpoint (.pt)")
    exp.add_argument(
        "--out",
        required=True,
        help="output path; OUT.safetensors and OUT.json are written (the suffixes are added to the name)",
    )
    exp.add_argument(
        "--overwrite", action="store_true", help="replace the two files if they exist (never the input)"
    )
    exp.set_defaults(run=_export)
