"""Pictures of point clouds (matplotlib, headless): galleries, loss curves, embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _draw_cloud(ax, points: np.ndarray, colors=None, title: str = "", size: float = 2.0) -> None:
    points = np.asarray(points, dtype=float)
    # data y is up; matplotlib's 3D z is up
    x, y, z = points[:, 0], points[:, 2], points[:, 1]
    ax.scatter(
        x,
        y,
        z,
        s=size,
        c=colors if colors is not None else z,
        cmap=None if colors is not None else "viridis",
        linewidths=0,
        depthshade=True,
    )
    extent = np.abs(points).max() if len(points) else 1.0
    for setter in (ax.set_xlim, ax.set_ylim, ax.set_zlim):
        setter(-extent, extent)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=20, azim=-60)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def render_clouds(
    clouds: Sequence[np.ndarray],
    path: str | Path,
    titles: Sequence[str] | None = None,
    colors: Sequence[np.ndarray | None] | None = None,
    ncols: int = 4,
    size: float = 2.0,
) -> Path:
    """Save a grid of clouds (each `(N, 3)`) as one PNG; returns the path."""
    n = len(clouds)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig = plt.figure(figsize=(2.6 * ncols, 2.6 * nrows), dpi=100)
    for i, cloud in enumerate(clouds):
        ax = fig.add_subplot(nrows, ncols, i + 1, projection="3d")
        _draw_cloud(
            ax, cloud, None if colors is None else colors[i], "" if titles is None else titles[i], size
        )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
