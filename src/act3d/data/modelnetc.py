"""The ModelNet-C files as distributed (jiawei-ren/ModelNet-C): one folder of `clean.h5` and
`<corruption>_<level>.h5`, each with `data (M, N, 3)` and `label (M,)` or `(M, 1)`, the same test clouds in
the same order in every file (build_modelnetc/corrupt.py l.54-84). Clouds are read as they are (256 to 1,524
points, some files float64): the official loader (modelnetc_utils/dataset.py l.9-14) casts them to float32
and feeds them without resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from act3d.data.h5clouds import H5Clouds
from act3d.errors import DataError


def is_modelnet_c(root: str | Path) -> bool:
    """Whether `root` is a folder in the ModelNet-C layout (it holds `clean.h5`)."""
    return (Path(root) / "clean.h5").is_file()


def read_modelnet_c(
    root: str | Path, names: list[str], class_names: list[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`root/<name>.h5` for `clean` and each of `names` -> `{name: (M, N_name, 3) float32}` and the labels
    `(M,)`, checked before any is used: every file present and readable, finite, labels within the
    `class_names`, and the same labels in every file."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"ModelNet-C folder not found: {root}")
    wanted = ["clean", *names]
    if missing := [f"{n}.h5" for n in wanted if not (root / f"{n}.h5").is_file()]:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise DataError(
            f"{root}: missing {shown}; expected the ModelNet-C files clean.h5 and <corruption>_<level>.h5"
        )
    sets, labels = {}, None
    for name in wanted:
        clouds = H5Clouds(root / f"{name}.h5", class_names, name=name)
        if labels is None:
            labels = clouds.labels
        elif not np.array_equal(clouds.labels, labels):
            raise DataError(
                f"{root / f'{name}.h5'}: its labels differ from clean.h5's ({len(clouds.labels)} against "
                f"{len(labels)} clouds); every ModelNet-C file holds the same test clouds in the same order"
            )
        if len(clouds) == 0:
            raise DataError(f"{root / f'{name}.h5'}: holds no clouds")
        sets[name] = clouds.points
    return sets, labels
