"""What several commands share: the config flags of training commands, `--out` checks, `--compare-to`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from act3d.atomic import names_a_folder
from act3d.cli.summary import Summary
from act3d.config import list_presets
from act3d.errors import Act3dError
from act3d.stages import Stage


def add_config_args(parser: argparse.ArgumentParser, stage: Stage) -> None:
    presets = list_presets(stage.name)
    parser.add_argument(
        "--preset",
        default=stage.default_preset,
        type=lambda name: name.removeprefix(stage.name + "."),  # `detect.cpu` names the preset `cpu` too
        choices=presets,
        metavar="NAME",
        help=f"named configuration, default {stage.default_preset}; one of: {', '.join(presets)} "
        "('cpu' fits a laptop in minutes, the others have the paper's sizes and want a GPU)",
    )
    parser.add_argument("--config", help="YAML file overriding the preset")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one value, e.g. --set optim.lr=1e-3 (repeatable)",
    )
    parser.add_argument(
        "--out", required=True, help="output folder (config, log, metrics, checkpoints, pictures)"
    )
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument(
        "--resume", action="store_true", help="continue the run in OUT from OUT/checkpoints/last.pt"
    )
    runs.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in OUT (without --resume or --overwrite, a folder holding a run is refused)",
    )


VARIANT_HELP = "scanobjectnn: obj_bg | obj_only | pb_t50_rs (default); the default dataset: clean | scan"


def dataset_variant(args: argparse.Namespace, default: str = "clean") -> str:
    """`--variant`, else PB_T50_RS for ScanObjectNN and `default` for the embedded dataset."""
    return args.variant or ("pb_t50_rs" if args.format == "scanobjectnn" else default)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def output_folder(path: str, keep: bool = True) -> Path:
    """`--out` as a folder that exists and can be written, checked before any work starts. `keep=False`: a
    folder made for the check is removed again (a training stage makes its folder when it starts writing,
    so a run refused before that leaves nothing)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise Act3dError(f"--out {out}: exists and is not a folder")
    probe = out / f".act3d-write-check-{os.getpid()}"
    made = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise Act3dError(f"--out {out}: cannot write there ({err.strerror})") from None
    for folder in made if not keep else ():  # deepest first
        folder.rmdir()
    return out


def output_file(path: str, suffix: str) -> Path:
    """An output file path with `suffix` (added when the name does not end with it: `model.v2` ->
    `model.v2.npy`), whose folder exists or can be made and written. Nothing is made here: the writer makes
    the folder, so a command refused later leaves none behind."""
    out = Path(path)
    if names_a_folder(path):
        raise Act3dError(
            f"--out {path}: is a folder; expected a file name (e.g. {Path(path) / ('out' + suffix)})"
        )
    out = out if out.suffix == suffix else out.with_name(out.name + suffix)
    output_folder(str(out.parent), keep=False)
    return out


def check_outputs(outputs: list[Path], inputs: list[Path], overwrite: bool) -> None:
    """Refuse, before any work, to write over an input (never, whatever the flags) or over an existing file
    without `overwrite` (the one line names the file and the flag)."""
    sources = {p.resolve() for p in inputs if p.exists()}
    for out in outputs:
        if out.resolve() in sources:
            raise Act3dError(f"--out would write {out}, which is one of the inputs; choose another --out")
        if out.is_dir():
            raise Act3dError(f"--out would write {out}, which is a folder; choose another --out")
    if not overwrite and (held := [str(p) for p in outputs if p.exists()]):
        raise Act3dError(
            f"{', '.join(held)} already exist{'s' if len(held) == 1 else ''}; replace with --overwrite, or "
            "choose another --out"
        )


def eval_output(args: argparse.Namespace) -> Path:
    """An eval command's `--out`, checked before any work and made only when the summary is written: a
    folder whose `summary.json` holds an earlier evaluation is refused without `--overwrite`."""
    out = output_folder(args.out, keep=False)
    check_outputs([out / "summary.json"], [], args.overwrite)
    return out


def add_precision_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--precision",
        choices=["float32", "bf16", "auto"],
        default="float32",
        help="number format of the network: float32 (default; bit-reproducible), bf16 (autocast: 1.8-2.3x the "
        "clouds/s of a paper-size student on a CPU with native bf16, features ~0.7%% apart; emulated "
        "elsewhere), auto (bf16 where the CPU has AVX-512 BF16 or AMX, or on a bf16 GPU; else "
        "float32)",
    )


def add_compare_arg(parser: argparse.ArgumentParser, units: str) -> None:
    parser.add_argument(
        "--compare-to",
        metavar="DIR",
        help=f"an earlier run's --out of this same command (another checkpoint, same protocol): print the paired "
        f"difference this run − that run over the shared {units}, with its 95%% interval (a paired bootstrap "
        "over the clouds beneath each unit where there are any, else a paired t interval)",
    )


def with_defaults(saved: dict, defaults: dict) -> dict:
    """`saved` with the keys it lacks, at any depth, taken from `defaults`: a setting added to act3d since a
    run was written reads as its default, as the run ran (`run_folder.check_resumed_config` reads so too)."""
    out = dict(saved)
    for key, value in defaults.items():
        if key not in out:
            out[key] = value
        elif isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = with_defaults(out[key], value)
    return out


def pairing_differences(
    folder: str,
    protocol: dict,
    unit: str,
    recipe: tuple[str, ...] = (),
    compared: tuple[str, ...] = (),
    defaults: dict | None = None,
) -> tuple[list[str], dict]:
    """What the run in `folder` differs in from this `protocol`, and its paired values; refused in one line
    unless the two protocols agree (another checkpoint, same everything else), but for the `recipe` keys
    between two runs of different `transfer` (a PEFT method against full fine-tuning: each method's own
    training settings) and the `compared` keys (the models a command compares, e.g. a detector's encoder).
    Called before a run trains, so that a comparison that cannot be made costs nothing. `defaults` (a
    config's own): what the earlier run's protocol lacks reads as these (`with_defaults`)."""
    their_protocol, their_values = Summary.read_pairing(folder)
    if defaults is not None:
        their_protocol = with_defaults(their_protocol, defaults)
    ours = json.loads(json.dumps(protocol))
    differ = sorted(k for k in ours.keys() | their_protocol.keys() if ours.get(k) != their_protocol.get(k))
    allowed = (set(recipe) | {"transfer"} if "transfer" in differ else set()) | set(compared)
    if refused := [k for k in differ if k not in allowed]:
        also = f" (a run of another transfer may differ in {', '.join(recipe)})" if recipe else ""
        raise Act3dError(
            f"--compare-to {folder}: that run differs in {', '.join(refused)}, so its {unit}s do not pair "
            f"with this run's; expected the same protocol with another checkpoint{also}"
        )
    return differ, their_values


def compare_to(
    folder: str,
    mine: dict[str, dict[str, float | list[int]]],
    protocol: dict,
    unit: str,
    recipe: tuple[str, ...] = (),
    errors: tuple[str, ...] = (),
    compared: tuple[str, ...] = (),
    defaults: dict | None = None,
) -> list[dict]:
    """Paired differences (`PairedDifference.to_dict`) of this run's values (measure -> unit id -> a value,
    or the unit's per-cloud outcomes) against those another run of the same command saved in
    `folder/summary.json` under `paired_values`, over the units both have: a paired bootstrap over units and
    clouds where the values are outcomes, a paired t interval where they are one number per unit. The two
    runs must pair (`pairing_differences`); each row names what differed (`differs_in`). The `errors`
    measures (an mCE) are lower-is-better values, shown as they are rather than in points."""
    from act3d.eval.paired import paired_bootstrap, paired_difference

    differ, their_values = pairing_differences(folder, protocol, unit, recipe, compared, defaults)
    rows = []
    for measure, values in mine.items():
        other = their_values.get(measure, {})
        units = [u for u in values if u in other]
        if units:
            compare = paired_bootstrap if isinstance(values[units[0]], list) else paired_difference
            d = compare(
                [values[u] for u in units],
                [other[u] for u in units],
                "this run",
                str(folder),
                measure,
                unit,
                labels=("this run", Path(folder).name),
                **({"scale": None, "lower_is_better": True} if measure in errors else {}),
            )
            rows.append(d.to_dict() | {"differs_in": differ})
    if not rows:
        raise Act3dError(f"--compare-to {folder}: no {unit} in common with this run")
    return rows
