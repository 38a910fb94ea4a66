"""3DETR's ScanNet sample, restated from facebookresearch/3detr @a5d1aad for the tests: `datasets/scannet.py`
`ScannetDetectionDataset.__getitem__` (l.224-359, xyz only), `utils/random_cuboid.py` (l.5-98),
`utils/pc_util.py` (`random_sampling`, `shift_scale_points`, `scale_points`, `rotz`) and `utils/box_util.py`
(`flip_axis_to_camera_np`, `get_3d_box_batch_np`). Drawn from numpy's global random state as the official
code draws, and written apart from act3d's modules, so that a slip in either shows."""

import numpy as np

NYU40 = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]


def cuboid(pc, boxes, min_points, aspect=0.8, lo=0.5, hi=1.0):  # random_cuboid.py l.38-98
    span = pc[:, :3].max(0) - pc[:, :3].min(0)
    for _ in range(100):
        r = lo + np.random.rand(3) * (hi - lo)
        ratios = [min(a, b) / max(a, b) for a, b in ((r[0], r[1]), (r[0], r[2]), (r[1], r[2]))]
        if max(ratios) < aspect:
            continue
        c = pc[np.random.choice(len(pc)), :3]
        m = ((pc[:, :3] <= c + span * r / 2.0).sum(1) == 3) & ((pc[:, :3] >= c - span * r / 2.0).sum(1) == 3)
        if m.sum() < min_points:
            continue
        new = pc[m]
        if boxes.sum() > 0:
            k = (boxes[:, :3] >= new[:, :3].min(0)).all(1) & (boxes[:, :3] <= new[:, :3].max(0)).all(1)
            if k.sum() == 0:
                continue
            boxes = boxes[k]
        return new, boxes
    return pc, boxes


def rotz(t):
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def rotate_boxes(b, rot):  # scannet.py l.138-159
    half = np.stack([b[:, 3] / 2.0, b[:, 4] / 2.0], 1)
    xs, ys = [], []
    for sx, sy in [(-1, -1), (1, -1), (1, 1), (-1, 1)]:
        corner = np.zeros((len(b), 3))
        corner[:, 0], corner[:, 1] = sx * half[:, 0], sy * half[:, 1]
        corner = corner @ rot.T
        xs.append(corner[:, 0])
        ys.append(corner[:, 1])
    sizes = np.stack([2.0 * np.stack(xs, 1).max(1), 2.0 * np.stack(ys, 1).max(1), b[:, 5]], 1)
    return np.concatenate([b[:, :3] @ rot.T, sizes], 1)


def corners(size, center):  # box_parametrization_to_corners_np with angle 0: R is the identity
    cam = center.copy()
    cam[:, [0, 1, 2]] = cam[:, [0, 2, 1]]
    cam[:, 1] *= -1
    sx, sy, sz = (size[:, i : i + 1] for i in range(3))
    out = np.zeros((len(size), 8, 3))
    out[:, :, 0] = np.concatenate([sx, sx, -sx, -sx, sx, sx, -sx, -sx], 1) / 2
    out[:, :, 1] = np.concatenate([sz, sz, sz, sz, -sz, -sz, -sz, -sz], 1) / 2
    out[:, :, 2] = np.concatenate([sy, -sy, -sy, sy, sy, -sy, -sy, sy], 1) / 2
    return out @ np.eye(3) + cam[:, None, :]


def getitem(vert, bbox, augment, num_points=40000, min_points=30000, max_obj=64):
    pc = vert[:, 0:3]
    if augment:
        pc, bbox = cuboid(pc, bbox, min_points)
    pc = pc[np.random.choice(pc.shape[0], num_points, replace=pc.shape[0] < num_points)]
    mask = np.zeros(max_obj, dtype=np.float32)
    mask[: len(bbox)] = 1
    target = np.zeros((max_obj, 6), dtype=np.float32)
    target[: len(bbox)] = bbox[:, :6]
    if augment:
        if np.random.random() > 0.5:
            pc[:, 0] = -1 * pc[:, 0]
            target[:, 0] = -1 * target[:, 0]
        if np.random.random() > 0.5:
            pc[:, 1] = -1 * pc[:, 1]
            target[:, 1] = -1 * target[:, 1]
        rot = rotz((np.random.random() * np.pi / 18) - np.pi / 36)
        pc[:, 0:3] = pc[:, 0:3] @ rot.T
        target = rotate_boxes(target, rot)
    sizes = target[:, 3:6]
    lo, hi = pc.min(0)[:3], pc.max(0)[:3]
    centers = target.astype(np.float32)[:, :3]
    one, zero = np.ones((1, 3), dtype=np.float32), np.zeros((1, 3), dtype=np.float32)
    normalized = (((centers[None] - lo[None, None]) * (one - zero)[:, None]) / (hi - lo)[None, None] + zero)[
        0
    ]
    return {
        "point_clouds": pc.astype(np.float32),
        "gt_box_corners": corners(sizes.astype(np.float32), centers).astype(np.float32),
        "gt_box_centers": centers,
        "gt_box_centers_normalized": (normalized * mask[:, None]).astype(np.float32),
        "gt_box_sem_cls_label": np.array(
            [NYU40.index(int(c)) for c in bbox[:, 6]] + [0] * (max_obj - len(bbox))
        ),
        "gt_box_present": mask,
        "gt_box_sizes": sizes.astype(np.float32),
        "gt_box_sizes_normalized": (sizes.astype(np.float32)[None] * (1.0 / (hi - lo))[None, None])[0].astype(
            np.float32
        ),
        "point_cloud_dims_min": lo.astype(np.float32),
        "point_cloud_dims_max": hi.astype(np.float32),
    }
