"""Parametric object families for the embedded default dataset.

Every object is a union of surface primitives (boxes, cylinders, surfaces of revolution, ellipsoids,
tori); points are drawn uniformly by area from the union, with outward normals. Each family draws its
proportions and optional parts at random, so a class has real intra-class variation, and several classes
share parts (tables / stools / benches, mugs / vases / bottles, chairs / sofas) so that telling them
apart takes shape, not just size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Rng = np.random.Generator


@dataclass
class Surface:
    """A sampler for one primitive: `area` and `sample(n, rng) -> (points (n,3), normals (n,3))`."""

    area: float
    sample: Callable[[int, Rng], tuple[np.ndarray, np.ndarray]]


def _rotation(axis: str, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def transformed(surface: Surface, rotation: np.ndarray, offset=(0.0, 0.0, 0.0)) -> Surface:
    """The same surface, rotated then moved (area unchanged)."""
    offset = np.asarray(offset, dtype=float)

    def sample(n: int, rng: Rng):
        p, nrm = surface.sample(n, rng)
        return p @ rotation.T + offset, nrm @ rotation.T

    return Surface(surface.area, sample)


def box(center, size) -> Surface:
    """Axis-aligned box surface (y is up)."""
    center, half = np.asarray(center, float), np.asarray(size, float) / 2
    face_area = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]], dtype=float)

    def sample(n: int, rng: Rng):
        axis = rng.choice(3, size=n, p=face_area / face_area.sum())
        sign = rng.choice([-1.0, 1.0], size=n)
        p = rng.uniform(-1, 1, size=(n, 3)) * half
        p[np.arange(n), axis] = sign * half[axis]
        nrm = np.zeros((n, 3))
        nrm[np.arange(n), axis] = sign
        return p + center, nrm

    return Surface(2 * face_area.sum(), sample)


def revolve(center, radii, heights, caps: tuple[bool, bool] = (True, True)) -> Surface:
    """Surface of revolution about the vertical axis through `center`.

    `radii[i]` is the radius at height `heights[i]` (relative to center, increasing); `caps` closes the
    bottom / top with disks.
    """
    center = np.asarray(center, float)
    r, h = np.asarray(radii, float), np.asarray(heights, float)
    slant = np.sqrt(np.diff(r) ** 2 + np.diff(h) ** 2)
    areas = [np.pi * (r[:-1] + r[1:]) * slant]
    if caps[0]:
        areas.append([np.pi * r[0] ** 2])
    if caps[1]:
        areas.append([np.pi * r[-1] ** 2])
    parts = np.concatenate(areas)
    num_bands = len(slant)

    def sample(n: int, rng: Rng):
        which = rng.choice(len(parts), size=n, p=parts / parts.sum())
        theta = rng.uniform(0, 2 * np.pi, size=n)
        rad = np.empty(n)
        y = np.empty(n)
        nrm_r = np.empty(n)
        nrm_y = np.empty(n)
        band = which < num_bands
        i = which[band]
        # area-uniform position along a frustum band: the circumference grows linearly with radius
        u = rng.uniform(size=band.sum())
        r0, r1 = r[i], r[i + 1]
        same = np.isclose(r0, r1)
        t = np.where(same, u, (np.sqrt(r0**2 + u * (r1**2 - r0**2)) - r0) / np.where(same, 1, r1 - r0))
        rad[band] = r0 + t * (r1 - r0)
        y[band] = h[i] + t * (h[i + 1] - h[i])
        nrm_r[band], nrm_y[band] = (h[i + 1] - h[i]), -(r1 - r0)
        caps_idx = np.flatnonzero(~band)
        cap_kind = which[~band] - num_bands  # 0: first cap present, 1: second
        is_bottom = (cap_kind == 0) & caps[0]
        cap_r = np.where(is_bottom, r[0], r[-1])
        rad[caps_idx] = cap_r * np.sqrt(rng.uniform(size=len(caps_idx)))
        y[caps_idx] = np.where(is_bottom, h[0], h[-1])
        nrm_r[caps_idx], nrm_y[caps_idx] = 0.0, np.where(is_bottom, -1.0, 1.0)
        p = np.stack([rad * np.cos(theta), y, rad * np.sin(theta)], axis=1) + center
        nrm = np.stack([nrm_r * np.cos(theta), nrm_y, nrm_r * np.sin(theta)], axis=1)
        nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-12
        return p, nrm

    return Surface(float(parts.sum()), sample)


def cylinder(center, radius: float, height: float, caps=(True, True)) -> Surface:
    """Vertical cylinder standing on `center` (its bottom at center[1])."""
    return revolve(center, [radius, radius], [0.0, height], caps)


def cylinder_along(axis: str, center, radius: float, length: float) -> Surface:
    """Capped cylinder centred at `center`, lying along `axis` ('x' or 'z')."""
    base = cylinder((0, -length / 2, 0), radius, length)
    rot = _rotation("z", np.pi / 2) if axis == "x" else _rotation("x", np.pi / 2)
    return transformed(base, rot, center)


def ellipsoid(center, radii) -> Surface:
    """Ellipsoid surface (sampled by rejection on the area element, so close to area-uniform)."""
    center, radii = np.asarray(center, float), np.asarray(radii, float)
    a, b, c = radii
    p_ = 1.6075
    area = 4 * np.pi * (((a * b) ** p_ + (a * c) ** p_ + (b * c) ** p_) / 3) ** (1 / p_)

    def sample(n: int, rng: Rng):
        out, nrm_out = [], []
        got = 0
        while got < n:
            u = rng.normal(size=(2 * n + 8, 3))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            nrm = u / radii
            scale = np.linalg.norm(nrm * radii.prod(), axis=1)
            keep = rng.uniform(size=len(u)) * scale.max() < scale
            out.append(u[keep] * radii)
            nrm_out.append(nrm[keep] / np.linalg.norm(nrm[keep], axis=1, keepdims=True))
            got += keep.sum()
        return np.concatenate(out)[:n] + center, np.concatenate(nrm_out)[:n]

    return Surface(float(area), sample)


def torus_arc(center, major: float, minor: float, arc: float = 2 * np.pi, plane: str = "xy") -> Surface:
    """A (partial) torus tube; `plane` 'xy' stands it upright, like a mug handle."""
    center = np.asarray(center, float)

    def sample(n: int, rng: Rng):
        u = rng.uniform(-arc / 2, arc / 2, size=n)
        # area element grows with (major + minor cos v): rejection-sample v
        v = np.empty(0)
        while len(v) < n:
            cand = rng.uniform(0, 2 * np.pi, size=2 * n)
            keep = rng.uniform(size=2 * n) * (major + minor) < major + minor * np.cos(cand)
            v = np.concatenate([v, cand[keep]])
        v = v[:n]
        ring = major + minor * np.cos(v)
        p = np.stack([ring * np.cos(u), ring * np.sin(u), minor * np.sin(v)], axis=1)
        nrm = np.stack([np.cos(v) * np.cos(u), np.cos(v) * np.sin(u), np.sin(v)], axis=1)
        if plane == "xz":
            p, nrm = p[:, [0, 2, 1]], nrm[:, [0, 2, 1]]
        return p + center, nrm

    return Surface(float(4 * np.pi**2 * major * minor * arc / (2 * np.pi)), sample)


# ---------------------------------------------------------------------------------------------------
# Families. Each takes an RNG and returns the object's surfaces; y is up, objects stand on y = 0.
# ---------------------------------------------------------------------------------------------------


def _legs(width: float, depth: float, height: float, thick: float, inset: float) -> list[Surface]:
    xs, zs = width / 2 - inset, depth / 2 - inset
    return [box((sx * xs, height / 2, sz * zs), (thick, height, thick)) for sx in (-1, 1) for sz in (-1, 1)]


def table(rng: Rng) -> list[Surface]:
    w, d = rng.uniform(1.2, 2.2), rng.uniform(0.7, 1.3)
    h, top = rng.uniform(0.7, 1.0), rng.uniform(0.04, 0.1)
    parts = [box((0, h - top / 2, 0), (w, top, d))]
    if rng.uniform() < 0.25:  # pedestal table
        parts += [
            cylinder((0, 0, 0), rng.uniform(0.05, 0.1), h - top),
            cylinder((0, 0, 0), rng.uniform(0.3, 0.45), 0.04),
        ]
    else:
        parts += _legs(w, d, h - top, rng.uniform(0.04, 0.09), rng.uniform(0.03, 0.12))
        if rng.uniform() < 0.4:  # lower shelf
            parts.append(box((0, rng.uniform(0.15, 0.3), 0), (w * 0.9, 0.03, d * 0.9)))
    return parts


def chair(rng: Rng) -> list[Surface]:
    w, d = rng.uniform(0.45, 0.6), rng.uniform(0.45, 0.6)
    seat_h, back_h = rng.uniform(0.4, 0.5), rng.uniform(0.4, 0.7)
    t = rng.uniform(0.03, 0.06)
    parts = [box((0, seat_h, 0), (w, t, d)), box((0, seat_h + back_h / 2, -d / 2 + t / 2), (w, back_h, t))]
    parts += _legs(w, d, seat_h, rng.uniform(0.03, 0.05), 0.03)
    if rng.uniform() < 0.35:  # arm rests
        for sx in (-1, 1):
            parts.append(box((sx * w / 2, seat_h + 0.22, 0), (0.04, 0.04, d)))
    return parts


def sofa(rng: Rng) -> list[Surface]:
    w, d = rng.uniform(1.4, 2.2), rng.uniform(0.7, 0.95)
    base_h, back_h, arm_w = rng.uniform(0.35, 0.45), rng.uniform(0.35, 0.55), rng.uniform(0.12, 0.22)
    parts = [
        box((0, base_h / 2, 0), (w, base_h, d)),
        box((0, base_h + back_h / 2, -d / 2 + 0.1), (w, back_h, 0.2)),
    ]
    arm_h = base_h + rng.uniform(0.1, 0.25)
    for sx in (-1, 1):
        parts.append(box((sx * (w / 2 + arm_w / 2), arm_h / 2, 0), (arm_w, arm_h, d)))
    return parts


def stool(rng: Rng) -> list[Surface]:
    h, r = rng.uniform(0.45, 0.8), rng.uniform(0.15, 0.22)
    parts = [cylinder((0, h - 0.04, 0), r, 0.04)]
    n_legs = int(rng.choice([3, 4]))
    for k in range(n_legs):
        a = 2 * np.pi * k / n_legs
        leg = box((0, 0, 0), (0.03, h - 0.04, 0.03))
        splay = rng.uniform(0.0, 0.15)
        rot = _rotation("x", splay) @ _rotation("y", a)
        parts.append(transformed(leg, rot, (0.8 * r * np.cos(a), (h - 0.04) / 2, 0.8 * r * np.sin(a))))
    if rng.uniform() < 0.5:  # foot ring
        parts.append(
            transformed(torus_arc((0, 0, 0), 0.8 * r, 0.012, plane="xz"), np.eye(3), (0, h * 0.3, 0))
        )
    return parts


def bench(rng: Rng) -> list[Surface]:
    w, d, h = rng.uniform(1.2, 2.0), rng.uniform(0.3, 0.45), rng.uniform(0.4, 0.5)
    parts = [box((0, h, 0), (w, 0.05, d))]
    for sx in (-1, 1):  # slab ends instead of legs
        parts.append(box((sx * (w / 2 - 0.1), h / 2, 0), (0.05, h, d * 0.9)))
    if rng.uniform() < 0.5:
        parts.append(box((0, h + 0.25, -d / 2), (w, 0.3, 0.04)))
    return parts


def lamp(rng: Rng) -> list[Surface]:
    h = rng.uniform(0.8, 1.6)
    base_r = rng.uniform(0.12, 0.22)
    shade_h = rng.uniform(0.2, 0.35)
    r_top, r_bot = rng.uniform(0.08, 0.15), rng.uniform(0.18, 0.3)
    parts = [cylinder((0, 0, 0), base_r, 0.04), cylinder((0, 0.04, 0), 0.015, h)]
    parts.append(revolve((0, h - shade_h * 0.6, 0), [r_bot, r_top], [0, shade_h], caps=(False, False)))
    return parts


def mug(rng: Rng) -> list[Surface]:
    r, h = rng.uniform(0.3, 0.45), rng.uniform(0.7, 1.1)
    parts = [revolve((0, 0, 0), [r, r * rng.uniform(1.0, 1.15)], [0, h], caps=(True, False))]
    parts.append(revolve((0, 0.02, 0), [r * 0.92, r * 0.92], [0, h - 0.02], caps=(True, False)))  # inner wall
    hr = rng.uniform(0.18, 0.3) * h
    parts.append(
        torus_arc((r + hr * 0.6, h / 2, 0), hr, rng.uniform(0.025, 0.05), arc=np.pi * 1.3, plane="xy")
    )
    return parts


def _profile_object(radii: list[float], heights: list[float], open_top: bool) -> list[Surface]:
    return [revolve((0, 0, 0), radii, heights, caps=(True, not open_top))]


def bottle(rng: Rng) -> list[Surface]:
    r, body = rng.uniform(0.2, 0.35), rng.uniform(0.8, 1.4)
    shoulder, neck_r, neck_h = rng.uniform(0.15, 0.35), rng.uniform(0.06, 0.1), rng.uniform(0.2, 0.45)
    radii = [r, r, neck_r, neck_r, neck_r * 1.2]
    heights = [0, body, body + shoulder, body + shoulder + neck_h, body + shoulder + neck_h + 0.03]
    return _profile_object(radii, heights, open_top=False)


def vase(rng: Rng) -> list[Surface]:
    h = rng.uniform(0.9, 1.6)
    r0, r_belly, r_neck, r_lip = (
        rng.uniform(0.15, 0.25),
        rng.uniform(0.3, 0.5),
        rng.uniform(0.1, 0.2),
        rng.uniform(0.18, 0.3),
    )
    belly_at = rng.uniform(0.3, 0.55)
    radii = [r0, r_belly, r_neck, r_lip]
    heights = [0, belly_at * h, 0.85 * h, h]
    return _profile_object(radii, heights, open_top=True)


def bowl(rng: Rng) -> list[Surface]:
    r, h = rng.uniform(0.5, 0.8), rng.uniform(0.25, 0.45)
    k = np.linspace(0, 1, 6)
    radii = list(0.45 * r + (r - 0.45 * r) * np.sqrt(k))
    return _profile_object(radii, list(k * h), open_top=True) + [
        cylinder((0, -0.05, 0), 0.3 * r, 0.05, caps=(True, False))
    ]


def shelf(rng: Rng) -> list[Surface]:
    w, d, h = rng.uniform(0.8, 1.4), rng.uniform(0.25, 0.4), rng.uniform(1.2, 2.0)
    t = 0.03
    parts = [box((sx * (w / 2), h / 2, 0), (t, h, d)) for sx in (-1, 1)]
    n = int(rng.integers(3, 7))
    parts += [box((0, y, 0), (w, t, d)) for y in np.linspace(0.02, h, n)]
    if rng.uniform() < 0.6:
        parts.append(box((0, h / 2, -d / 2), (w, h, t)))
    return parts


def bed(rng: Rng) -> list[Surface]:
    w, length = rng.uniform(1.0, 1.8), rng.uniform(1.9, 2.2)
    frame_h, mat_h = rng.uniform(0.25, 0.4), rng.uniform(0.15, 0.25)
    parts = [
        box((0, frame_h / 2, 0), (w, frame_h, length)),
        box((0, frame_h + mat_h / 2, 0), (w * 0.96, mat_h, length * 0.97)),
    ]
    head_h = rng.uniform(0.6, 1.1)
    parts.append(box((0, head_h / 2, -length / 2 - 0.03), (w, head_h, 0.06)))
    if rng.uniform() < 0.5:
        parts.append(box((0, 0.3, length / 2 + 0.03), (w, 0.6, 0.06)))
    return parts


def airplane(rng: Rng) -> list[Surface]:
    length, fus_r = rng.uniform(2.5, 4.0), rng.uniform(0.15, 0.3)
    span, chord = rng.uniform(2.0, 3.8), rng.uniform(0.35, 0.7)
    sweep = rng.uniform(0.0, 0.5)
    wing_z, wing_y = rng.uniform(-0.2, 0.1) * length, -fus_r * rng.uniform(0.0, 0.6)
    parts = [ellipsoid((0, 0, 0), (fus_r, fus_r, length / 2))]  # fuselage along z
    engines = rng.uniform() < 0.6
    for sx in (-1, 1):
        wing = box((0, 0, 0), (span / 2, 0.04, chord))
        parts.append(transformed(wing, _rotation("y", -sx * sweep), (sx * span / 4, wing_y, wing_z)))
        if engines:
            parts.append(cylinder_along("z", (sx * span / 5, wing_y - 0.12, wing_z - 0.1), 0.08, 0.45))
    tail_z = length * 0.42
    parts.append(box((0, 0, tail_z), (span * rng.uniform(0.25, 0.4), 0.03, chord * 0.6)))
    fin_h = rng.uniform(0.3, 0.6)
    parts.append(box((0, fus_r + fin_h / 2 - 0.05, tail_z), (0.03, fin_h, chord * 0.6)))
    return parts


def car(rng: Rng) -> list[Surface]:
    length, w = rng.uniform(3.5, 4.8), rng.uniform(1.6, 2.0)
    body_h, cab_h = rng.uniform(0.5, 0.8), rng.uniform(0.4, 0.6)
    wheel_r = rng.uniform(0.28, 0.38)
    parts = [box((0, wheel_r + body_h / 2, 0), (w, body_h, length))]
    cab_len = length * rng.uniform(0.4, 0.6)
    parts.append(box((0, wheel_r + body_h + cab_h / 2, rng.uniform(-0.3, 0.2)), (w * 0.9, cab_h, cab_len)))
    for sz in (-1, 1):
        for sx in (-1, 1):
            parts.append(cylinder_along("x", (sx * w / 2, wheel_r, sz * length * 0.33), wheel_r, 0.25))
    return parts


def guitar(rng: Rng) -> list[Surface]:
    body_r, depth = rng.uniform(0.35, 0.5), rng.uniform(0.08, 0.15)
    upper = body_r * rng.uniform(0.65, 0.85)
    neck_len = rng.uniform(0.8, 1.1)
    parts = [
        ellipsoid((0, body_r, 0), (body_r, body_r * 0.9, depth)),
        ellipsoid((0, 2 * body_r + upper * 0.6, 0), (upper, upper * 0.85, depth)),
        box((0, 2 * body_r + upper + neck_len / 2, 0), (0.08, neck_len, 0.05)),
        box((0, 2 * body_r + upper + neck_len + 0.1, 0), (0.14, 0.2, 0.05)),
    ]
    return parts


def monitor(rng: Rng) -> list[Surface]:
    w, h = rng.uniform(0.9, 1.4), rng.uniform(0.55, 0.8)
    stand_h = rng.uniform(0.15, 0.35)
    parts = [box((0, stand_h + h / 2, 0), (w, h, rng.uniform(0.03, 0.08)))]
    parts.append(box((0, stand_h / 2, -0.05), (0.08, stand_h, 0.05)))
    parts.append(box((0, 0.015, -0.05), (rng.uniform(0.3, 0.5), 0.03, rng.uniform(0.2, 0.3))))
    return parts


FAMILIES: dict[str, Callable[[Rng], list[Surface]]] = {
    "airplane": airplane,
    "bed": bed,
    "bench": bench,
    "bottle": bottle,
    "bowl": bowl,
    "car": car,
    "chair": chair,
    "guitar": guitar,
    "lamp": lamp,
    "monitor": monitor,
    "mug": mug,
    "shelf": shelf,
    "sofa": sofa,
    "stool": stool,
    "table": table,
    "vase": vase,
}


def sample_object(parts: list[Surface], num_points: int, rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    """Draw `num_points` area-uniform points (and normals) from the union of `parts`."""
    areas = np.array([p.area for p in parts])
    counts = rng.multinomial(num_points, areas / areas.sum())
    pts, nrms = zip(*(p.sample(int(c), rng) for p, c in zip(parts, counts) if c > 0))
    return np.concatenate(pts), np.concatenate(nrms)
