"""What several commands share: the config flags of training commands, and results.json rows."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from act3d.config import list_presets


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


def config_hash(config: dict) -> str:
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def write_results(out: Path, rows: list[dict], extra: dict) -> Path:
    """`results.json`: one row per metric (metric, value, split, seed, config hash) plus context."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps({"results": rows, **extra}, indent=2))
    return path
