"""A user's own files: point clouds (`.npy`, `.npz`, `.ply`, `.xyz`, `.txt`, `.pts`) and meshes (`.off`,
`.obj`, `.stl`, `.ply` with faces), meshes sampled uniformly on their surface."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from act3d.data.sample import check_points
from act3d.errors import DataError

CLOUD_SUFFIXES = {".npy", ".npz", ".xyz", ".txt", ".pts"}
MESH_SUFFIXES = {".off", ".obj", ".stl", ".ply"}
MESH_SAMPLES = 8192


def _read_text_cloud(path: Path) -> np.ndarray:
    text = path.read_text()
    delimiter = "," if "," in text.split("\n", 1)[0] else None
    try:
        return np.loadtxt(path, delimiter=delimiter, dtype=np.float32, ndmin=2)
    except ValueError as err:
        raise DataError(f"{path}: not a table of numbers ({err})") from None


def _read_mesh_or_ply(path: Path, num_samples: int, seed: int) -> np.ndarray:
    import trimesh

    try:
        loaded = trimesh.load(path, force=None, process=False)
    except Exception as err:  # trimesh raises many kinds on malformed files
        raise DataError(
            f"{path}: could not be read as a mesh or point cloud ({type(err).__name__}: {err})"
        ) from None
    if isinstance(loaded, trimesh.Scene):
        loaded = loaded.to_geometry() if hasattr(loaded, "to_geometry") else loaded.dump(concatenate=True)
    if isinstance(loaded, trimesh.Trimesh) and len(loaded.faces) > 0:
        if loaded.area <= 0:
            raise DataError(f"{path}: the mesh has zero surface area")
        points, _ = trimesh.sample.sample_surface(loaded, num_samples, seed=seed)
        return np.asarray(points, dtype=np.float32)
    vertices = np.asarray(getattr(loaded, "vertices", np.empty((0, 3))), dtype=np.float32)
    return vertices


def read_cloud(
    path: str | Path, num_mesh_samples: int = MESH_SAMPLES, seed: int = 0, nonfinite: str = "error"
) -> np.ndarray:
    """Read one point cloud (or sample one from a mesh) as float32 `(N, 3)`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{path}: truncated or corrupt .npy file ({err})") from None
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                key = "points" if "points" in archive.files else (archive.files[0] if archive.files else None)
                if key is None:
                    raise DataError(f"{path}: the .npz archive is empty")
                data = archive[key]
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{path}: truncated or corrupt .npz file ({err})") from None
    elif suffix in {".xyz", ".txt", ".pts"}:
        data = _read_text_cloud(path)
    elif suffix in MESH_SUFFIXES:
        data = _read_mesh_or_ply(path, num_mesh_samples, seed)
    else:
        raise DataError(
            f"{path}: unsupported file type {suffix!r}; use one of {sorted(CLOUD_SUFFIXES | MESH_SUFFIXES)}"
        )
    return check_points(data, str(path), nonfinite)
