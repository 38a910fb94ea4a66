"""Time `act3d data prepare` on a folder in the Princeton ModelNet layout (cold, then cached).

    python benchmarks/prepare_folder.py [--src DIR] [--classes 10] [--per-class 40] [--workers N]

Without `--src` it first writes a synthetic one: `<class>/{train,test}/<class>_NNNN.off` meshes of
parametric shapes (boxes, cylinders, cones, spheres, capsules, tori...) with random proportions, z-up, the
header run into the counts (`OFF8 6 0`) as in the Princeton files. Prints the wall time of a cold prepare,
of a cached rerun, of a rerun after one file changed, and the per-class counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

SHAPES = {
    "box": lambda r: trimesh.creation.box(extents=r.uniform(0.3, 2.0, 3)),
    "cylinder": lambda r: trimesh.creation.cylinder(radius=r.uniform(0.2, 1), height=r.uniform(0.5, 3)),
    "cone": lambda r: trimesh.creation.cone(radius=r.uniform(0.2, 1), height=r.uniform(0.5, 3)),
    "sphere": lambda r: trimesh.creation.icosphere(subdivisions=2, radius=r.uniform(0.5, 2)),
    "capsule": lambda r: trimesh.creation.capsule(height=r.uniform(0.5, 3), radius=r.uniform(0.2, 0.8)),
    "torus": lambda r: trimesh.creation.torus(r.uniform(0.8, 1.5), r.uniform(0.1, 0.5)),
    "annulus": lambda r: trimesh.creation.annulus(
        r.uniform(0.2, 0.5), r.uniform(0.6, 1.2), r.uniform(0.2, 2)
    ),
    "slab": lambda r: trimesh.creation.box(extents=[r.uniform(1, 3), r.uniform(1, 3), r.uniform(0.05, 0.2)]),
    "rod": lambda r: trimesh.creation.cylinder(radius=r.uniform(0.05, 0.15), height=r.uniform(2, 4)),
    "dumbbell": lambda r: trimesh.util.concatenate(
        [
            trimesh.creation.icosphere(2, r.uniform(0.3, 0.6)).apply_translation([0, 0, -1]),
            trimesh.creation.icosphere(2, r.uniform(0.3, 0.6)).apply_translation([0, 0, 1]),
            trimesh.creation.cylinder(radius=0.1, height=2),
        ]
    ),
}


def write_off(mesh: trimesh.Trimesh, path: Path) -> None:
    """A Princeton-style OFF file: `OFF<v> <f> 0` on one line, then vertices and faces."""
    v, f = mesh.vertices, mesh.faces
    lines = [f"OFF{len(v)} {len(f)} 0"]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
    lines += [f"3 {a} {b} {c}" for a, b, c in f]
    path.write_text("\n".join(lines) + "\n")


def make_folder(root: Path, classes: int, per_class: int, seed: int = 0) -> None:
    """`per_class` meshes per class, 80% under train/, 20% under test/."""
    for c, name in enumerate(sorted(SHAPES)[:classes]):
        rng = np.random.default_rng([seed, c])
        for i in range(per_class):
            split = "test" if i % 5 == 4 else "train"
            folder = root / name / split
            folder.mkdir(parents=True, exist_ok=True)
            write_off(SHAPES[name](rng), folder / f"{name}_{i + 1:04d}.off")


def prepare(src: Path, out: Path, workers: int | None) -> float:
    cmd = [sys.executable, "-m", "act3d", "data", "prepare", "--src", str(src), "--out", str(out), "--z-up"]
    cmd += ["--no-progress"] + (["--workers", str(workers)] if workers else [])
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, help="a class folder (default: write a synthetic one)")
    parser.add_argument("--classes", type=int, default=10, help=f"synthetic classes (at most {len(SHAPES)})")
    parser.add_argument("--per-class", type=int, default=40, help="synthetic meshes per class")
    parser.add_argument("--workers", type=int, help="processes (default: every core)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = args.src or Path(tmp) / "src"
        if args.src is None:
            make_folder(src, args.classes, args.per_class)
        files = [p for p in src.rglob("*") if p.is_file()]
        out = Path(tmp) / "prepared"
        cold = prepare(src, out, args.workers)
        cached = prepare(src, out, args.workers)
        changed = files[0]
        changed.write_bytes(changed.read_bytes() + b"\n")
        one_changed = prepare(src, out, args.workers)
        manifest = json.loads((out / "manifest.json").read_text())
        print(f"{len(files)} files, {len(manifest['classes'])} classes ({manifest['layout']})")
        print(
            f"cold prepare {cold:.1f} s ({cold / len(files) * 1000:.0f} ms/file), cached rerun {cached:.1f} s, "
            f"rerun after one file changed {one_changed:.1f} s"
        )
        for name, counts in manifest["counts"].items():
            print(
                f"  {name:<12} train {counts['train']:>5} test {counts['test']:>5} skipped {counts['skipped']:>3}"
            )


if __name__ == "__main__":
    main()
