"""The official ModelNet-C corruptions and scores, restated from jiawei-ren/ModelNet-C @0c82ce0 for the tests:
`build_modelnetc/corrupt_utils.py` (cited by line) draws from numpy's global random state, as here, and
`modelnetc_utils/eval.py` computes the scores. Written apart from `act3d.eval.robust`, step by step as the
official functions run, so that a slip in either shows."""

import math

import numpy as np


def unit_sphere(pc):  # l.5-15
    centred = pc - pc.mean(axis=0)
    return centred / np.sqrt((centred**2).sum(axis=1)).max()


def shuffled(pc):  # l.18-25: a random key per point, argsorted
    keys = np.random.rand(len(pc), 1)
    order = keys.argsort(axis=0)[:, 0]
    return pc[order]


def cluster_sizes(k, total):  # l.28-37
    which = np.random.randint(k, size=total)
    return [int((which == i).sum()) for i in range(k)]


def scale(pc, level):  # l.57-66
    s = (1.6, 1.7, 1.8, 1.9, 2.0)[level]
    factors = np.random.uniform(low=1.0 / s, high=s, size=[3])
    return unit_sphere((pc * factors).astype(np.float32))


def jitter(pc, level):  # l.69-79
    return pc + (level + 1) * 0.01 * np.random.randn(*pc.shape)


def rotate(pc, level):  # l.82-102: R = Rz Ry Rx, applied as points @ R
    clip = math.pi / 6 / 5 * (level + 1)
    ax, ay, az = np.random.uniform(-clip, clip, size=(3))
    c, s = np.cos, np.sin
    rx = np.array([[1, 0, 0], [0, c(ax), -s(ax)], [0, s(ax), c(ax)]])
    ry = np.array([[c(ay), 0, s(ay)], [0, 1, 0], [-s(ay), 0, c(ay)]])
    rz = np.array([[c(az), -s(az), 0], [s(az), c(az), 0], [0, 0, 1]])
    return pc @ (rz @ (ry @ rx))


def dropout_global(pc, level):  # l.105-116
    keep = int(len(pc) * (1 - (0.25, 0.375, 0.5, 0.625, 0.75)[level]))
    return shuffled(pc)[:keep]


def dropout_local(pc, level):  # l.119-138: per cluster, shuffle, sort by distance to the first point
    remaining = len(pc)
    k = np.random.randint(1, 8)
    for size in cluster_sizes(k, 100 * (level + 1)):
        pc = shuffled(pc)
        d2 = ((pc - pc[0]) ** 2).sum(axis=1, keepdims=True)
        pc = pc[d2.argsort(axis=0)[::-1, 0]]  # farthest first: the nearest `size` fall off the end
        remaining -= size
        pc = pc[:remaining]
    return pc


def in_ball(n):  # l.40-54
    r = np.random.uniform(0.0, 1.0, (n, 1)) ** (1 / 3)
    theta = np.arccos(np.random.uniform(-1.0, 1.0, (n, 1)))
    phi = np.random.uniform(0, 2 * np.pi, (n, 1))
    return np.hstack([r * np.sin(theta) * np.cos(phi), r * np.sin(theta) * np.sin(phi), r * np.cos(theta)])


def add_global(pc, level):  # l.141-151
    return np.vstack([pc, in_ball(10 * (level + 1))])


def add_local(pc, level):  # l.154-180
    n, total = len(pc), 100 * (level + 1)
    k = np.random.randint(1, 8)
    sizes = cluster_sizes(k, total)
    pc = shuffled(pc)
    extra = np.zeros_like(pc)  # float32 like the cloud: the noise is added, then stored, in float32
    at = 0
    for i, size in enumerate(sizes):
        sigma = np.random.uniform(0.075, 0.125)
        rows = extra[at : at + size]
        rows[:] = pc[i]
        rows[:] = rows + sigma * np.random.randn(*rows.shape)
        at += size
    sq = (extra**2).sum(axis=1)
    far = sq > 1
    extra[far] = extra[far] / sq[far, None]
    return np.vstack([pc, extra])[: n + total]


CORRUPTIONS = {
    "scale": scale,
    "jitter": jitter,
    "rotate": rotate,
    "dropout_global": dropout_global,
    "dropout_local": dropout_local,
    "add_global": add_global,
    "add_local": add_local,
}

DGCNN = {  # eval.py l.23-32
    "clean": 0.926,
    "scale": 0.906,
    "jitter": 0.684,
    "rotate": 0.785,
    "dropout_global": 0.752,
    "dropout_local": 0.793,
    "add_global": 0.705,
    "add_local": 0.725,
}


def official_scores(accuracy):
    """eval.py l.33-67: `accuracy(split)` gives the accuracy of `clean` or `<corruption>_<level>`."""
    clean = round(accuracy("clean"), 3)
    ce, rce, oa = [], [], []
    for name in DGCNN:
        if name == "clean":
            continue
        mean = round(sum(accuracy(f"{name}_{level}") for level in range(5)) / 5, 3)
        ce.append(round((1 - mean) / (1 - DGCNN[name]), 3))
        rce.append(round((clean - mean) / (DGCNN["clean"] - DGCNN[name]), 3))
        oa.append(round(mean, 3))
    return {
        "mCE": round(sum(ce) / len(ce), 3),
        "RmCE": round(sum(rce) / len(rce), 3),
        "mOA": round(sum(oa) / len(oa), 3),
        "CE": ce,
        "RCE": rce,
    }
