"""Pictures (matplotlib, headless): point-cloud galleries, loss curves, embeddings, confusion matrices,
forest plots of paired differences, scenes with their boxes."""

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


def plot_loss_curves(curves: dict[str, Sequence[Sequence[float]]], path: Path) -> Path | None:
    """One panel per run, title -> its `(step, training loss)` points; None when there is none."""
    curves = {title: points for title, points in curves.items() if points}
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(3.2 * len(curves), 2.8), squeeze=False)
    for ax, (title, points) in zip(axes[0], curves.items()):
        steps, losses = zip(*points)
        ax.plot(steps, losses, color="tab:blue")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("training loss", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_forest(rows: Sequence[dict], path: Path, title: str = "") -> Path | None:
    """A forest plot: one line per paired difference (`PairedDifference.to_dict()` rows: `text`-free
    fields `a`, `b`, `measure`, `mean`, `low`, `high`, `distinguishable`), its mean as a dot and its interval
    as a bar, in points, zero marked; intervals that exclude zero in colour. None without rows."""
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.28 * len(rows) + 1.0))
    for y, row in enumerate(reversed(rows)):
        colour = ("tab:green" if row["mean"] > 0 else "tab:red") if row["distinguishable"] else "0.45"
        if row["low"] is not None:
            ax.plot([100 * row["low"], 100 * row["high"]], [y, y], color=colour, linewidth=2)
        ax.plot(100 * row["mean"], y, "o", color=colour, markersize=4)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['a']} − {r['b']}: {r['measure']}" for r in reversed(rows)], fontsize=7)
    ax.set_xlabel("paired difference a − b (points; 95% interval)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_tsne(embedding: dict, path: Path, seed: int = 0) -> Path:
    from sklearn.manifold import TSNE

    x = np.asarray(embedding["features"], dtype=np.float32)
    y = np.asarray(embedding["labels"])
    xy = TSNE(2, init="pca", random_state=seed, perplexity=min(30, max(5, len(x) // 10))).fit_transform(x)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    cmap = plt.get_cmap("tab20")
    for c, name in enumerate(embedding["class_names"]):
        sel = y == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=8, color=cmap(c % 20), label=name)
    ax.legend(fontsize=6, markerscale=1.5, ncol=2, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("t-SNE of ACT student features (clean test split)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(matrix: list[list[int]], class_names: list[str], path: Path, title: str) -> Path:
    cm = np.asarray(matrix, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=6)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_corruption_table(oa: dict[str, Sequence[float]], clean: float, path: Path, title: str) -> Path:
    """The corruptions × five levels accuracies (fractions) as a heat map, the clean accuracy in the title."""
    names = list(oa)
    table = 100 * np.asarray([oa[c] for c in names], dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5.2, 0.45 * len(names) + 1.4))
    ax.imshow(table, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    for (i, j), value in np.ndenumerate(table):
        ax.text(j, i, f"{value:.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(table.shape[1]), [f"level {j}" for j in range(table.shape[1])], fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_title(f"{title}\nOA % per corruption and level (clean {100 * clean:.1f}%)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_scene_boxes(scenes: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, str]], path: Path) -> Path:
    """Scenes seen from above: per scene `(points (N, 3) z up, true boxes (K, 6), predicted boxes (P, 7),
    title)`, boxes as axis-aligned `(x1, y1, z1, x2, y2, z2[, score])` in the points' frame; true boxes in
    green, predictions in red with their score."""
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(1, len(scenes), figsize=(5.5 * len(scenes), 5.5), squeeze=False)
    for ax, (points, truth, predicted, title) in zip(axes[0], scenes):
        ax.scatter(points[:, 0], points[:, 1], s=1.0, c=points[:, 2], cmap="viridis", linewidths=0, alpha=0.6)
        for boxes, color in ((truth, "tab:green"), (predicted, "tab:red")):
            for box in boxes:
                x1, y1, _, x2, y2 = box[:5]
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color, lw=1.5))
                if len(box) > 6:
                    ax.text(x1, y2, f"{box[6]:.2f}", color=color, fontsize=6, va="bottom")
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("seen from above: true boxes green, predicted red (score)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
