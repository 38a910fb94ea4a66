"""A user's own files: point clouds (`.npy`, `.npz`, `.ply`, `.xyz`, `.txt`, `.pts`) and meshes (`.off`,
`.obj`, `.stl`, `.ply` with faces), meshes sampled uniformly on their surface."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from act3d.data.sample import check_points
from act3d.errors import DataError

CLOUD_SUFFIXES = {".npy", ".npz", ".xyz", ".txt", ".pts"}
MESH_SUFFIXES = {".off", ".obj", ".stl", ".ply"}
MESH_SAMPLES = 8192


def load_npy(path: Path, missing: str = "file not found") -> np.ndarray:
    """One `.npy` array, never unpickled; a missing or damaged file is a `DataError` naming it (`missing`:
    what to say when it is not there)."""
    if not path.is_file():
        raise DataError(f"{missing}: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: truncated or corrupt .npy file ({err})") from None


def _read_text_cloud(path: Path) -> np.ndarray:
    text = path.read_text()
    delimiter = "," if "," in text.split("\n", 1)[0] else None
    try:
        return np.loadtxt(path, delimiter=delimiter, dtype=np.float32, ndmin=2)
    except ValueError as err:
        raise DataError(f"{path}: not a table of numbers ({err})") from None


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator, source: str = "mesh"
) -> np.ndarray:
    """`count` points drawn uniformly over a triangle mesh's area, with the normal of the face each lies on:
    `(count, 6)` float32, xyz then normal. Zero-area faces are never drawn; a mesh of only those is refused."""
    vertices = np.asarray(vertices, dtype=np.float64)
    if not np.isfinite(vertices).all():
        raise DataError(f"{source}: the mesh has NaN/inf vertex coordinates")
    corners = vertices[np.asarray(faces)]  # (F, 3, 3)
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    double_area = np.linalg.norm(cross, axis=1)
    total = double_area.sum()
    if not total > 0:
        raise DataError(f"{source}: the mesh has zero surface area")
    face = rng.choice(len(corners), count, p=double_area / total)
    u, v = rng.random((2, count))
    outside = u + v > 1  # reflect into the triangle: uniform barycentric coordinates
    u[outside], v[outside] = 1 - u[outside], 1 - v[outside]
    a, b, c = corners[face, 0], corners[face, 1], corners[face, 2]
    points = a + u[:, None] * (b - a) + v[:, None] * (c - a)
    normals = cross[face] / double_area[face, None]
    return np.concatenate([points, normals], axis=1).astype(np.float32)


def _read_mesh_or_ply(path: Path, num_samples: int, rng: np.random.Generator) -> np.ndarray:
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
        return sample_surface(loaded.vertices, loaded.faces, num_samples, rng, str(path))
    return np.asarray(getattr(loaded, "vertices", np.empty((0, 3))), dtype=np.float32)


def read_rows(
    path: str | Path, num_mesh_samples: int = MESH_SAMPLES, seed: int | Sequence[int] = 0
) -> np.ndarray:
    """A file's rows, unchecked: `(N, C)` with xyz in the first three columns (a cloud file's own columns;
    a mesh gives `num_mesh_samples` surface points and their face normals, drawn with `seed`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return load_npy(path)
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                if not archive.files:
                    raise DataError(f"{path}: the .npz archive is empty")
                if "points" not in archive.files and len(archive.files) > 1:
                    raise DataError(
                        f"{path}: the .npz archive holds {len(archive.files)} arrays "
                        f"({', '.join(archive.files)}) and none is named 'points'; name the cloud 'points' "
                        "or save it alone"
                    )
                return archive["points" if "points" in archive.files else archive.files[0]]
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{path}: truncated or corrupt .npz file ({err})") from None
    if suffix in {".xyz", ".txt", ".pts"}:
        return _read_text_cloud(path)
    if suffix in MESH_SUFFIXES:
        return _read_mesh_or_ply(path, num_mesh_samples, np.random.default_rng(seed))
    raise DataError(
        f"{path}: unsupported file type {suffix!r}; use one of {sorted(CLOUD_SUFFIXES | MESH_SUFFIXES)}"
    )


def read_cloud(
    path: str | Path, num_mesh_samples: int = MESH_SAMPLES, seed: int = 0, nonfinite: str = "error"
) -> np.ndarray:
    """Read one point cloud (or sample one from a mesh) as float32 `(N, 3)`."""
    return check_points(read_rows(path, num_mesh_samples, seed), str(path), nonfinite)
