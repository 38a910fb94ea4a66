"""Are two demo runs the same to the last bit? The check behind every refactor and speed change:
`act3d demo --quick --peft` before and after each commit, and the full `act3d demo` for what the quick run
cannot reach (later epochs, seeds, few-shot folds; docs/experiments.md, "What is identical where").

    .venv/bin/python scripts/compare_runs.py runs/before runs/after [--rename teacher.=transformer.] [--ignore KEY]

Compares `results.json` (without wall times, timings and the folders' own paths) and every tensor of every
checkpoint (`*.pt`, read with `weights_only=True`) that both folders hold; prints what differs and exits 1
if anything does, 0 if the runs are identical. `--rename OLD=NEW` maps tensor names of the first run
(a refactor that renamed a module keeps its numbers, not its names).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

VOLATILE = {
    "wall_seconds",
    "timings",
    "seconds",
    "seconds_per_step",
    "data",
    "checkpoint",
    "reused_stages",
    "environment",
}


def scrub(value, root: str, ignored: frozenset[str] = frozenset()):
    """`value` without volatile keys (times, paths) and with `root` removed from strings."""
    if isinstance(value, dict):
        return {k: scrub(v, root, ignored) for k, v in value.items() if k not in VOLATILE | ignored}
    if isinstance(value, list):
        return [scrub(v, root, ignored) for v in value]
    return value.replace(root, "<run>") if isinstance(value, str) else value


def tensors(obj, prefix: str = ""):
    """Every tensor in a checkpoint's nested dicts and lists: (dotted name, tensor)."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from tensors(v, f"{prefix}.{i}")


def compare(
    a: Path, b: Path, renames: list[tuple[str, str]] = (), ignored: frozenset[str] = frozenset()
) -> list[str]:
    problems = []
    ra = scrub(json.loads((a / "results.json").read_text()), str(a), ignored)
    rb = scrub(json.loads((b / "results.json").read_text()), str(b), ignored)
    for key in sorted(ra.keys() | rb.keys()):
        if ra.get(key) != rb.get(key):
            problems.append(f"results.json: {key} differs")
    count = 0
    for path in sorted(a.rglob("*.pt")):
        other = b / path.relative_to(a)
        if not other.is_file():
            problems.append(f"{path.relative_to(a)}: only in {a}")
            continue
        ta = {}
        for name, t in tensors(torch.load(path, map_location="cpu", weights_only=True)):
            for old, new in renames:
                name = name.replace(old, new)
            ta[name] = t
        tb = dict(tensors(torch.load(other, map_location="cpu", weights_only=True)))
        if ta.keys() != tb.keys():
            problems.append(f"{path.relative_to(a)}: different tensor names")
        for name in ta.keys() & tb.keys():
            count += 1
            if ta[name].shape != tb[name].shape or not torch.equal(ta[name], tb[name]):
                problems.append(f"{path.relative_to(a)}: {name} differs")
    print(f"compared results.json and {count} checkpoint tensors")
    return problems


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="map tensor names of a")
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="KEY",
        help="leave results.json entries named KEY out (a change that adds a record, e.g. loss_curve)",
    )
    args = p.parse_args()
    renames = [tuple(r.split("=", 1)) for r in args.rename]
    problems = compare(args.a, args.b, renames, frozenset(args.ignore))
    for line in problems[:50]:
        print(line)
    print("identical" if not problems else f"{len(problems)} difference(s)")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
