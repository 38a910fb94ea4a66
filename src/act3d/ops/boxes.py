"""3D boxes as 3DETR writes them (facebookresearch/3detr @a5d1aad, `utils/box_util.py`): corners in its
upright-camera frame, x right, y down, z forward (depth x, -z, y), with the heading about the camera's y:
in numpy for the data and the evaluation (float64, as the official dataset computes them), in torch for
the detector's outputs (float32, `get_3d_box_batch_tensor`)."""

from __future__ import annotations

import numpy as np
import torch


def to_upright_camera_np(xyz: np.ndarray) -> np.ndarray:
    """Depth-frame points `(..., 3)` (z up) -> the upright-camera frame (`flip_axis_to_camera_np`, l.255-262)."""
    out = xyz.copy()
    out[..., [0, 1, 2]] = out[..., [0, 2, 1]]
    out[..., 1] *= -1
    return out


def to_depth_np(corners: np.ndarray) -> np.ndarray:
    """Upright-camera frame -> depth frame, the inverse of `to_upright_camera_np` (`flip_axis_to_depth`,
    ap_calculator.py l.23-27)."""
    out = np.copy(corners)
    out[..., [0, 1, 2]] = out[..., [0, 2, 1]]
    out[..., 2] *= -1
    return out


def box_corners_np(size: np.ndarray, angle: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Boxes of `size (..., 3)` (x, y, z extents), heading `angle (...)` and depth-frame `center (..., 3)` ->
    `(..., 8, 3)` corners in the upright-camera frame, float64 (`box_parametrization_to_corners_np`:
    `flip_axis_to_camera_np` then `get_3d_box_batch_np`, l.265-285)."""
    center = to_upright_camera_np(center)
    c, s = np.cos(angle), np.sin(angle)
    rot = np.zeros(angle.shape + (3, 3))
    rot[..., 0, 0], rot[..., 0, 2], rot[..., 1, 1], rot[..., 2, 0], rot[..., 2, 2] = c, s, 1, -s, c
    x, y, z = (np.expand_dims(size[..., i], -1) for i in range(3))  # official l, w, h
    corners = np.zeros(angle.shape + (8, 3))
    corners[..., :, 0] = np.concatenate((x / 2, x / 2, -x / 2, -x / 2, x / 2, x / 2, -x / 2, -x / 2), -1)
    corners[..., :, 1] = np.concatenate((z / 2, z / 2, z / 2, z / 2, -z / 2, -z / 2, -z / 2, -z / 2), -1)
    corners[..., :, 2] = np.concatenate((y / 2, -y / 2, -y / 2, y / 2, y / 2, -y / 2, -y / 2, y / 2), -1)
    corners = np.matmul(corners, np.swapaxes(rot, -1, -2))
    return corners + np.expand_dims(center, -2)


def box_corners(center: torch.Tensor, size: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Depth-frame centres `(B, Q, 3)`, sizes `(B, Q, 3)`, headings `(B, Q)` -> `(B, Q, 8, 3)` corners in
    the upright-camera frame (`flip_axis_to_camera_tensor` then `get_3d_box_batch_tensor`, box_util.py
    l.288-352)."""
    b, q = angle.shape
    cam = torch.clone(center)
    cam[..., [0, 1, 2]] = cam[..., [0, 2, 1]]
    cam[..., 1] *= -1
    size, angle, cam = size.reshape(-1, 3), angle.reshape(-1), cam.reshape(-1, 3)
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(angle.shape + (3, 3), dtype=torch.float32, device=angle.device)
    rot[..., 0, 0], rot[..., 0, 2], rot[..., 1, 1], rot[..., 2, 0], rot[..., 2, 2] = c, s, 1, -s, c
    x, y, z = (size[..., i : i + 1] for i in range(3))  # official l, w, h
    corners = torch.zeros(angle.shape + (8, 3), dtype=torch.float32, device=size.device)
    corners[..., :, 0] = torch.cat((x / 2, x / 2, -x / 2, -x / 2, x / 2, x / 2, -x / 2, -x / 2), -1)
    corners[..., :, 1] = torch.cat((z / 2, z / 2, z / 2, z / 2, -z / 2, -z / 2, -z / 2, -z / 2), -1)
    corners[..., :, 2] = torch.cat((y / 2, -y / 2, -y / 2, y / 2, y / 2, -y / 2, -y / 2, y / 2), -1)
    corners = torch.matmul(corners, rot.permute(0, 2, 1)) + cam.unsqueeze(-2)
    return corners.reshape(b, q, 8, 3)
