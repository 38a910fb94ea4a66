"""Class-folder datasets: a folder of meshes or point clouds sorted by class, prepared once into clouds.

Source layouts (`act3d data prepare --src SRC --out OUT`):
- `SRC/<class>/{train,test}/<file>`: the Princeton ModelNet10 / ModelNet40 archives;
- `SRC/<class>/<file>`: a seeded, stratified train/test split is drawn per class.
Files: meshes `.off .obj .stl .ply` (sampled area-weighted, with face normals) and clouds
`.npy .npz .txt .xyz .ply`.

Prepared layout, read by `ClassFolders` (`data.format: class-folders`, `data.root: OUT`):
- `OUT/manifest.json`: classes, options, and per source file its class, split, SHA-256 and cloud file (or
  why it was skipped); a rebuild re-samples only files whose content or options changed;
- `OUT/clouds/<source path>.npy`: `(N, 6)` float32 (xyz, normal) for a mesh, `(N, 3)` or `(N, 6)` for a
  cloud; centred on the centroid and scaled to the unit sphere (`pc_normalize` of the official readers),
  stored in farthest-point order from the first point, so the first K points are a well-spread subset
  (the order of the official `modelnet40_*_8192pts_fps.dat` files).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from act3d.atomic import atomic_file, write_text_atomic
from act3d.data.files import CLOUD_SUFFIXES, MESH_SUFFIXES, load_npy, read_rows
from act3d.data.sample import Sample, check_points, normalize_unit_sphere
from act3d.errors import DataError, require

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PREPARED_VERSION = 1
SUFFIXES = sorted((CLOUD_SUFFIXES - {".pts"}) | MESH_SUFFIXES)
SPLIT_FOLDERS = ("train", "test")
# row vectors times this: (x, y, z) -> (x, z, -y), a rotation taking z-up shapes to y-up
Z_UP_TO_Y_UP = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float32)


@dataclass(frozen=True)
class PrepareOptions:
    """How source files become stored clouds. Every field but `test_fraction` changes the samples."""

    num_points: int = 8192  # points per stored cloud (mesh samples; clouds with more are FPS-reduced)
    z_up: bool = False  # rotate z-up shapes (the Princeton OFF files) to y-up: (x, y, z) -> (x, z, -y)
    seed: int = 0  # mesh sampling seed (with each file's content hash) and the flat layout's split
    test_fraction: float = 0.2  # flat layout only: the share of each class held out as test

    def __post_init__(self) -> None:
        require(self.num_points >= 1, "num_points", "an integer >= 1", self.num_points)
        require(0 <= self.test_fraction < 1, "test_fraction", "a number in [0, 1)", self.test_fraction)

    def sampling(self) -> dict:
        """The options a stored cloud depends on (a change re-samples every file)."""
        return {
            "version": PREPARED_VERSION,
            "num_points": self.num_points,
            "z_up": self.z_up,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class SourceFile:
    relative: str  # POSIX path under the source root
    class_name: str
    split: str  # train | test


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _class_folders(src: Path) -> list[Path]:
    return sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))


def _supported(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def scan_source(src: Path, test_fraction: float, seed: int) -> tuple[str, list[SourceFile], list[str]]:
    """The shapes of a class folder: `(layout, files, ignored)`, files sorted by class then path.

    The ModelNet layout is used when any class folder has a `train` or `test` folder; then every class
    must. `ignored` lists files that are not shapes (other suffixes, loose files beside split folders)."""
    if not src.is_dir():
        raise DataError(f"source folder not found: {src}")
    classes = _class_folders(src)
    if not classes:
        raise DataError(
            f"{src}: no class folders; expected <class>/train/<file>, <class>/test/<file> or <class>/<file>"
        )
    split_layout = any((c / s).is_dir() for c in classes for s in SPLIT_FOLDERS)
    files: list[SourceFile] = []
    ignored = [p.name for p in _visible_files(src)]
    for folder in classes:
        name = folder.name
        if split_layout:
            if not any((folder / s).is_dir() for s in SPLIT_FOLDERS):
                raise DataError(
                    f"{folder}: has no train/ or test/ folder, but other classes do; use one layout"
                )
            ignored += [f"{name}/{p.name}" for p in _visible_files(folder)]
            for split in SPLIT_FOLDERS:
                if (folder / split).is_dir():
                    for p in _visible_files(folder / split):
                        if _supported(p):
                            files.append(SourceFile(f"{name}/{split}/{p.name}", name, split))
                        else:
                            ignored.append(f"{name}/{split}/{p.name}")
        else:
            listed = _visible_files(folder)
            shapes = [p for p in listed if _supported(p)]
            ignored += [f"{name}/{p.name}" for p in listed if not _supported(p)]
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            n_test = round(test_fraction * len(shapes))
            n_test = (
                min(max(n_test, 1 if test_fraction > 0 else 0), len(shapes) - 1) if len(shapes) > 1 else 0
            )
            test = set(rng.permutation(len(shapes))[:n_test].tolist())
            files += [
                SourceFile(f"{name}/{p.name}", name, "test" if i in test else "train")
                for i, p in enumerate(shapes)
            ]
    if not files:
        raise DataError(f"{src}: no shape files ({' '.join(SUFFIXES)}) in its class folders")
    return ("train/test folders" if split_layout else "flat, split by seed"), files, ignored


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def farthest_point_order(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` points of `(N, 3)` in farthest-point order from point 0 (`ops.fps` on one cloud,
    in NumPy: a storage-time op, no torch needed in the worker processes)."""
    x, y, z = (np.ascontiguousarray(points[:, i], dtype=np.float32) for i in range(3))
    nearest = np.full(len(points), np.inf, dtype=np.float32)
    dist, tmp = np.empty_like(nearest), np.empty_like(nearest)
    order = np.empty(count, dtype=np.int64)
    chosen = 0
    for i in range(count):
        order[i] = chosen
        np.subtract(x, x[chosen], out=dist)
        np.multiply(dist, dist, out=dist)
        for axis in (y, z):
            np.subtract(axis, axis[chosen], out=tmp)
            np.multiply(tmp, tmp, out=tmp)
            np.add(dist, tmp, out=dist)
        np.minimum(nearest, dist, out=nearest)
        chosen = int(nearest.argmax())
    return order


def prepare_shape(path: Path, options: PrepareOptions, digest: str) -> np.ndarray:
    """One source file -> its stored cloud `(N, 3 or 6)` float32 (see the module docstring)."""
    rows = read_rows(path, options.num_points, seed=[options.seed, int(digest[:15], 16)])
    xyz = check_points(rows, str(path))  # shape, emptiness, NaN/inf and size checks, one line each
    normals = np.asarray(rows[:, 3:6], dtype=np.float32) if rows.shape[1] >= 6 else None
    if normals is not None and not np.isfinite(normals).all():
        normals = None
    if options.z_up:
        xyz = xyz @ Z_UP_TO_Y_UP
        normals = None if normals is None else normals @ Z_UP_TO_Y_UP
    order = farthest_point_order(xyz, min(len(xyz), options.num_points))
    xyz = normalize_unit_sphere(xyz[order])
    return xyz if normals is None else np.concatenate([xyz, normals[order]], axis=1)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_file(path, "wb") as f:
        np.save(f, array)


def short_reason(message: str, limit: int = 120) -> str:
    """One short line of a reader's message (mesh libraries explain at length, over several lines)."""
    line = " ".join(message.strip().splitlines()[0].split()) if message.strip() else "unreadable"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _prepare_job(job: tuple[str, str, str, PrepareOptions]) -> tuple[int, str | None]:
    """Worker: sample and store one file; `(points stored, None)` or `(0, why it was skipped)`."""
    source, target, digest, options = job
    try:
        cloud = prepare_shape(Path(source), options, digest)
    except DataError as err:
        return 0, short_reason(str(err).removeprefix(f"{source}: "))
    _save_atomic(Path(target), cloud)
    return len(cloud), None


@dataclass
class PrepareReport:
    out: Path
    layout: str
    classes: list[str]
    counts: dict[str, dict[str, int]]  # class -> {"train", "test", "skipped"}
    skipped: list[dict]  # {"source", "reason"}
    ignored: list[str]
    sampled: int  # files sampled by this run
    reused: int  # files whose stored cloud was still valid
    seconds: float


def _cloud_path(relative: str) -> str:
    return f"clouds/{relative}.npy"


def _parse_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise DataError(
            f"{path}: not valid JSON ({err}); run `act3d data prepare` again into a new --out"
        ) from None


def _read_previous(out: Path, src: Path, overwrite: bool) -> dict:
    """The manifest of an earlier prepare into `out` (or {}), refusing to mix datasets."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise DataError(f"{out}: exists, is not empty and holds no {MANIFEST}; choose a new --out")
        return {}
    previous = _parse_manifest(manifest)
    if previous.get("source") != str(src) and not overwrite:
        raise DataError(
            f"{out}: holds a dataset prepared from {previous.get('source')}, not {src}; "
            "choose a new --out or pass --overwrite"
        )
    return previous if previous.get("options", {}).get("version") == PREPARED_VERSION else {}


def prepare_class_folder(
    src: str | Path,
    out: str | Path,
    options: PrepareOptions = PrepareOptions(),
    workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> PrepareReport:
    """Sample every shape of a class folder into `out` (see the module docstring); returns what it did.

    A file whose content hash and sampling options match the previous manifest keeps its stored cloud. The
    manifest is written at the end, also when the run is interrupted (marked incomplete: readers refuse it
    and the next run carries on)."""
    from tqdm import tqdm

    started = time.perf_counter()
    src, out = Path(src).resolve(), Path(out).resolve()
    if out == src or src in out.parents:
        raise DataError(f"--out {out} lies inside --src {src}; it would be read as a class folder")
    layout, files, ignored = scan_source(src, options.test_fraction, options.seed)
    previous = _read_previous(out, src, overwrite)
    same_options = previous.get("options") == options.sampling()
    known = (
        {e["source"]: e for e in previous.get("files", []) + previous.get("skipped", [])}
        if same_options
        else {}
    )

    entries: dict[str, dict] = {}
    jobs = []
    for f in tqdm(files, desc="hashing", unit="file", disable=not progress, leave=False):
        digest = file_digest(src / f.relative)
        entry = {"source": f.relative, "class": f.class_name, "split": f.split, "sha256": digest}
        old = known.get(f.relative)
        if (
            old is not None
            and old["sha256"] == digest
            and ("reason" in old or (out / old["cloud"]).is_file())
        ):
            entries[f.relative] = {**old, **entry}
        else:
            jobs.append(entry)
    reused = len(entries)

    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers or len(os.sched_getaffinity(0)), len(jobs) or 1))
    complete = False
    try:
        job_args = [
            (str(src / e["source"]), str(out / _cloud_path(e["source"])), e["sha256"], options) for e in jobs
        ]
        if workers > 1:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            results = pool.map(_prepare_job, job_args, chunksize=4)
        else:
            pool, results = None, map(_prepare_job, job_args)
        try:
            bar = tqdm(results, total=len(jobs), desc="sampling", unit="file", disable=not progress)
            for entry, (points, reason) in zip(jobs, bar):
                if reason is None:
                    entries[entry["source"]] = {
                        **entry,
                        "cloud": _cloud_path(entry["source"]),
                        "points": points,
                    }
                else:
                    entries[entry["source"]] = {**entry, "reason": reason}
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        complete = True
    finally:
        manifest = _write_manifest(out, src, layout, options, files, entries, ignored, complete)
    keep = {out / e["cloud"] for e in manifest["files"]}
    for stale in (out / "clouds").rglob("*.npy"):  # files removed from the source, or broken now
        if stale not in keep:
            stale.unlink()
    return PrepareReport(
        out,
        layout,
        manifest["classes"],
        manifest["counts"],
        manifest["skipped"],
        ignored,
        sampled=len(jobs),
        reused=reused,
        seconds=time.perf_counter() - started,
    )


def _write_manifest(
    out: Path,
    src: Path,
    layout: str,
    options: PrepareOptions,
    files: list[SourceFile],
    entries: dict[str, dict],
    ignored: list[str],
    complete: bool,
) -> dict:
    """Write `out/manifest.json` atomically; returns it."""
    ordered = [entries[f.relative] for f in files if f.relative in entries]
    stored = [e for e in ordered if "cloud" in e]
    skipped = [e for e in ordered if "reason" in e]
    classes = sorted({f.class_name for f in files})
    counts = {c: Counter() for c in classes}
    for e in stored:
        counts[e["class"]][e["split"]] += 1
    for e in skipped:
        counts[e["class"]]["skipped"] += 1
    manifest = {
        "act3d_class_folders": PREPARED_VERSION,
        "complete": complete,
        "source": str(src),
        "layout": layout,
        "options": options.sampling(),
        "test_fraction": options.test_fraction,
        "classes": classes,
        "counts": {c: {k: counts[c][k] for k in ("train", "test", "skipped")} for c in classes},
        "files": stored,
        "skipped": skipped,
        "ignored": ignored,
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def read_manifest(root: str | Path) -> dict:
    """The manifest of a prepared class-folder dataset, with a one-line error for anything else."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        if root.is_dir() and _class_folders(root):
            raise DataError(
                f"{root}: a class folder that is not prepared yet; run `act3d data prepare --src {root} "
                f"--out DIR` and use DIR as data.root"
            )
        raise DataError(f"{root}: no {MANIFEST}; expected a folder written by `act3d data prepare`")
    manifest = _parse_manifest(path)
    if manifest.get("act3d_class_folders") != PREPARED_VERSION:
        raise DataError(
            f"{path}: written by another act3d version (format {manifest.get('act3d_class_folders')}, "
            f"expected {PREPARED_VERSION}); run `act3d data prepare` again"
        )
    if not manifest.get("complete"):
        raise DataError(
            f"{path}: the prepare run was interrupted; run `act3d data prepare` again to finish it"
        )
    return manifest


class ClassFolders:
    """A prepared class-folder dataset, one split (`train`, `test` or `train+test`); clouds read lazily."""

    def __init__(self, root: str | Path, split: str = "train", nonfinite: str = "error"):
        self.root = Path(root)
        manifest = read_manifest(self.root)
        splits = {"train": ("train",), "test": ("test",), "train+test": ("train", "test")}.get(split)
        if splits is None:
            raise DataError(f"class-folders split must be train, test or train+test, not {split!r}")
        self.class_names: list[str] = list(manifest["classes"])
        index = {c: i for i, c in enumerate(self.class_names)}
        entries = [e for e in manifest["files"] if e["split"] in splits]
        if not entries:
            raise DataError(f"{self.root}: no {split} clouds in {MANIFEST}")
        self.paths = [self.root / e["cloud"] for e in entries]
        self.labels = [index[e["class"]] for e in entries]
        self.name = f"{self.root.name}-{split}"
        self.nonfinite = nonfinite

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Sample:
        path = self.paths[i]
        rows = load_npy(path, missing="missing (run `act3d data prepare` again to restore it)")
        points = check_points(rows, str(path), self.nonfinite)
        return Sample(normalize_unit_sphere(points), self.labels[i], origin=str(path))
