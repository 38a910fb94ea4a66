"""3DETR's modules restated for the tests from facebookresearch/3detr @a5d1aad, with the official module
names (so official state dicts load as they are). FPS and the ball query are act3d's, each tested on its own
against the CUDA kernels' rules (tests/ops)."""

import torch
import torch.nn.functional as F
from torch import nn

from act3d.ops.ball_query import ball_query_naive
from act3d.ops.fps import farthest_point_sampling


class _BN(nn.Sequential):  # pytorch_utils.py _BNBase l.36-43: weight 1, bias 0, named `bn`
    def __init__(self, size):
        super().__init__()
        self.add_module("bn", nn.BatchNorm2d(size))
        nn.init.constant_(self[0].weight, 1.0)
        nn.init.constant_(self[0].bias, 0)


class _Conv2d(nn.Sequential):  # pytorch_utils.py _ConvBase l.65-117 (not preact): conv, bn, activation
    def __init__(self, cin, cout):
        super().__init__()
        conv = nn.Conv2d(cin, cout, kernel_size=(1, 1), stride=(1, 1), padding=(0, 0), bias=False)
        nn.init.kaiming_normal_(conv.weight)
        self.add_module("conv", conv)
        self.add_module("bn", _BN(cout))
        self.add_module("activation", nn.ReLU(inplace=True))


class PointnetSAModuleVotes(nn.Module):  # pointnet2_modules.py l.161-268, use_xyz, max pooling
    def __init__(self, mlp, npoint, radius, nsample, normalize_xyz=True):
        super().__init__()
        self.npoint, self.radius, self.nsample, self.normalize_xyz = npoint, radius, nsample, normalize_xyz
        spec = list(mlp)
        spec[0] += 3
        self.mlp_module = nn.Sequential()
        for i in range(len(spec) - 1):  # SharedMLP, pytorch_utils.py l.8-33
            self.mlp_module.add_module(f"layer{i}", _Conv2d(spec[i], spec[i + 1]))

    def forward(self, xyz, features=None):
        inds = farthest_point_sampling(xyz, self.npoint, rule="pointnet2").int()
        xyz_flipped = xyz.transpose(1, 2).contiguous()
        new_xyz = torch.gather(xyz_flipped, 2, inds.long()[:, None, :].expand(-1, 3, -1)).transpose(1, 2)
        idx = ball_query_naive(xyz, new_xyz, self.radius, self.nsample)  # QueryAndGroup l.314-366
        b, m, k = idx.shape
        grouped_xyz = torch.gather(xyz_flipped, 2, idx.reshape(b, 1, m * k).expand(-1, 3, -1)).reshape(
            b, 3, m, k
        )
        grouped_xyz -= new_xyz.transpose(1, 2).unsqueeze(-1)
        if self.normalize_xyz:
            grouped_xyz /= self.radius
        new_features = grouped_xyz
        if features is not None:
            c = features.shape[1]
            grouped = torch.gather(features, 2, idx.reshape(b, 1, m * k).expand(-1, c, -1)).reshape(
                b, c, m, k
            )
            new_features = torch.cat([grouped_xyz, grouped], dim=1)
        new_features = self.mlp_module(new_features)
        new_features = F.max_pool2d(new_features, kernel_size=[1, new_features.size(3)]).squeeze(-1)
        return new_xyz, new_features, inds


def sa_to_act3d(state: dict) -> dict:
    """Official set-abstraction names -> act3d's (`mlp_module.layer{i}.conv` -> `mlp.{3i}`, its `bn.bn` ->
    `mlp.{3i+1}`)."""
    out = {}
    for key, value in state.items():
        _, layer, part, *rest = key.split(".")
        i = int(layer.removeprefix("layer"))
        out[f"mlp.{3 * i + (part == 'bn')}.{rest[-1]}"] = value
    return out


# ---- models/transformer.py, models/position_embedding.py, models/model_3detr.py (restated) ----


class EncoderLayer(nn.Module):  # TransformerEncoderLayer, normalize_before (l.213-289)
    def __init__(self, d, nhead, ffn, dropout):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, nhead, dropout=dropout)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.nhead = nhead

    def forward(self, src, src_mask=None, pos=None):
        src2 = self.norm1(src)
        q = k = src2 if pos is None else src2 + pos
        src2 = self.self_attn(q, k, value=src2, attn_mask=src_mask, key_padding_mask=None)[0]
        src = src + src2
        src2 = self.norm2(src)
        return src + self.linear2(nn.functional.relu(self.linear1(src2)))


class TransformerEncoder(nn.Module):  # l.19-74 (no mask given: vanilla)
    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def forward(self, src, xyz=None):
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=None, pos=None)
        return xyz, out, None


class MaskedTransformerEncoder(nn.Module):  # l.144-205
    def __init__(self, layers, masking_radius, interim_downsampling):
        super().__init__()
        self.layers, self.masking_radius, self.interim_downsampling = (
            layers,
            masking_radius,
            interim_downsampling,
        )

    def forward(self, src, xyz=None):
        out, dist, inds = src, None, None
        for idx, layer in enumerate(self.layers):
            if dist is None or dist.shape[1] != xyz.shape[1]:
                dist = torch.cdist(xyz, xyz, p=2)
            mask = dist >= self.masking_radius[idx]
            bsz, n, _ = mask.shape
            mask = mask.unsqueeze(1).repeat(1, layer.nhead, 1, 1).view(bsz * layer.nhead, n, n)
            out = layer(out, src_mask=mask)
            if idx == 0:
                xyz, out, inds = self.interim_downsampling(xyz, out.permute(1, 2, 0))
                out = out.permute(2, 0, 1)
        return xyz, out, inds


class DecoderLayer(nn.Module):  # TransformerDecoderLayer.forward_pre (l.298-379)
    def __init__(self, d, nhead, ffn, dropout):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d, nhead, dropout=dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, tgt, memory, pos, query_pos):
        tgt2 = self.norm1(tgt)
        q = k = tgt2 + query_pos
        tgt = tgt + self.self_attn(q, k, value=tgt2)[0]
        tgt2 = self.norm2(tgt)
        tgt = tgt + self.multihead_attn(query=tgt2 + query_pos, key=memory + pos, value=memory)[0]
        tgt2 = self.norm3(tgt)
        return tgt + self.linear2(nn.functional.relu(self.linear1(tgt2)))


class TransformerDecoder(nn.Module):  # l.77-141, return_intermediate
    def __init__(self, layers, d):
        super().__init__()
        self.layers, self.norm = layers, nn.LayerNorm(d)

    def forward(self, tgt, memory, pos, query_pos):
        output, intermediate = tgt, []
        for layer in self.layers:
            output = layer(output, memory, pos, query_pos)
            intermediate.append(self.norm(output))
        output = self.norm(output)
        intermediate.pop()
        intermediate.append(output)
        return torch.stack(intermediate)


def shift_scale_points(xyz, src_range):  # pc_util.py l.38-66, default destination [0, 1]
    dst = [torch.zeros((src_range[0].shape[0], 3)), torch.ones((src_range[0].shape[0], 3))]
    src_diff = src_range[1][:, None, :] - src_range[0][:, None, :]
    dst_diff = dst[1][:, None, :] - dst[0][:, None, :]
    return ((xyz - src_range[0][:, None, :]) * dst_diff) / src_diff + dst[0][:, None, :]


def fourier(gauss_b, xyz, input_range):  # position_embedding.py l.89-118
    b, n = xyz.shape[:2]
    xyz = shift_scale_points(xyz.clone(), input_range)
    xyz *= 2 * torch.pi
    proj = torch.mm(xyz.view(-1, 3), gauss_b).view(b, n, -1)
    return torch.cat([proj.sin(), proj.cos()], dim=2).permute(0, 2, 1)


def official_forward(m, points, lo, hi):
    """Model3DETR.forward (l.306-339) and get_box_predictions (l.210-304) over `m`'s modules, rebuilt with
    the restated encoder and decoder (`rebuild`)."""
    dims = [lo, hi]
    xyz = points[..., 0:3].contiguous()
    pre_xyz, pre_f, pre_inds = m["pre_encoder"](xyz, None)
    enc_xyz, enc_f, enc_inds = m["encoder"](pre_f.permute(2, 0, 1), xyz=pre_xyz)
    enc_f = m["encoder_to_decoder_projection"](enc_f.permute(1, 2, 0)).permute(2, 0, 1)
    q_inds = farthest_point_sampling(enc_xyz, m["nqueries"], rule="pointnet2").int().long()
    q_xyz = torch.stack([torch.gather(enc_xyz[..., x], 1, q_inds) for x in range(3)]).permute(1, 2, 0)
    with torch.no_grad():
        q_embed = m["query_projection"](fourier(m["gauss_B"], q_xyz, dims))
        enc_pos = fourier(m["gauss_B"], enc_xyz, dims).permute(2, 0, 1)
    q_embed = q_embed.permute(2, 0, 1)
    feats = m["decoder"](torch.zeros_like(q_embed), enc_f, enc_pos, q_embed)
    feats = feats.permute(0, 2, 3, 1)
    nl, b, c, nq = feats.shape
    feats = feats.reshape(nl * b, c, nq)
    heads = m["mlp_heads"]
    cls = heads["sem_cls_head"](feats).transpose(1, 2).reshape(nl, b, nq, -1)
    off = (heads["center_head"](feats).sigmoid().transpose(1, 2) - 0.5).reshape(nl, b, nq, -1)
    size = heads["size_head"](feats).sigmoid().transpose(1, 2).reshape(nl, b, nq, -1)
    alog = heads["angle_cls_head"](feats).transpose(1, 2).reshape(nl, b, nq, -1)
    ares_n = heads["angle_residual_head"](feats).transpose(1, 2).reshape(nl, b, nq, -1)
    ares = ares_n * (torch.pi / ares_n.shape[-1])
    last = nl - 1
    center = q_xyz + off[last]
    center_n = shift_scale_points(center, dims)
    angle = (alog[last] * 0 + ares[last] * 0).squeeze(-1).clamp(min=0)
    size_u = size[last] * torch.clamp(hi - lo, min=1e-1)[:, None, :]
    prob = torch.softmax(cls[last], dim=-1)
    cam = center.clone()
    cam[..., [0, 1, 2]] = cam[..., [0, 2, 1]]
    cam[..., 1] *= -1
    sx, sy, sz = (size_u[..., i : i + 1] for i in range(3))
    corners = torch.zeros(b, nq, 8, 3)
    corners[..., 0] = torch.cat([sx, sx, -sx, -sx, sx, sx, -sx, -sx], -1) / 2
    corners[..., 1] = torch.cat([sz, sz, sz, sz, -sz, -sz, -sz, -sz], -1) / 2
    corners[..., 2] = torch.cat([sy, -sy, -sy, sy, sy, -sy, -sy, sy], -1) / 2
    return {
        "sem_cls_logits": cls[last],
        "center_normalized": center_n,
        "center_unnormalized": center,
        "size_normalized": size[last],
        "size_unnormalized": size_u,
        "angle_logits": alog[last],
        "angle_residual": ares[last],
        "angle_residual_normalized": ares_n[last],
        "angle_continuous": angle,
        "objectness_prob": 1 - prob[..., -1],
        "sem_cls_prob": prob[..., :-1],
        "box_corners": corners + cam[:, :, None, :],
    }


# ---- criterion.py and box_util.py generalized_box3d_iou_tensor (rotated_boxes False), restated ----


def official_giou(c1, c2, nums_k2):  # box_util.py l.517-621
    B, K1, K2 = c1.shape[0], c1.shape[1], c2.shape[1]
    ymax = torch.min(c1[:, :, 0, 1][:, :, None], c2[:, :, 0, 1][:, None, :])
    ymin = torch.max(c1[:, :, 4, 1][:, :, None], c2[:, :, 4, 1][:, None, :])
    height = (ymax - ymin).clamp(min=0)
    idx, idx2 = torch.arange(start=3, end=-1, step=-1), torch.tensor([0, 2])
    r1, r2 = c1[:, :, idx, :][:, :, :, idx2], c2[:, :, idx, :][:, :, :, idx2]
    lt = torch.max(r1[:, :, 1][:, :, None, :], r2[:, :, 1][:, None, :, :])
    rb = torch.min(r1[:, :, 3][:, :, None, :], r2[:, :, 3][:, None, :, :])
    wh = (rb - lt).clamp(min=0)
    inter = (wh[:, :, :, 0] * wh[:, :, :, 1]).view(B, K1, K2)
    for b in range(B):
        inter[b, :, nums_k2[b] :] = 0
    e1, e2 = c1.clone(), c2.clone()
    e1[:, :, :, 1] *= -1
    e2[:, :, :, 1] *= -1

    xmin = torch.min(
        torch.min(e1[..., 0], dim=2).values[:, :, None], torch.min(e2[..., 0], dim=2).values[:, None, :]
    )
    ymin_e = torch.max(
        torch.max(e1[..., 1], dim=2).values[:, :, None], torch.max(e2[..., 1], dim=2).values[:, None, :]
    )
    zmin = torch.min(
        torch.min(e1[..., 2], dim=2).values[:, :, None], torch.min(e2[..., 2], dim=2).values[:, None, :]
    )
    xmax = torch.max(
        torch.max(e1[..., 0], dim=2).values[:, :, None], torch.max(e2[..., 0], dim=2).values[:, None, :]
    )
    ymax_e = torch.min(
        torch.min(e1[..., 1], dim=2).values[:, :, None], torch.min(e2[..., 1], dim=2).values[:, None, :]
    )
    zmax = torch.max(
        torch.max(e1[..., 2], dim=2).values[:, :, None], torch.max(e2[..., 2], dim=2).values[:, None, :]
    )
    enclosing = torch.abs(xmax - xmin) * torch.abs(ymax_e - ymin_e) * torch.abs(zmax - zmin)

    def vol(c):  # box3d_vol_tensor l.443-463
        c = c.reshape(-1, 8, 3)
        a = torch.sqrt((c[:, 0, :] - c[:, 1, :]).pow(2).sum(dim=1).clamp(min=1e-6))
        b_ = torch.sqrt((c[:, 1, :] - c[:, 2, :]).pow(2).sum(dim=1).clamp(min=1e-6))
        d = torch.sqrt((c[:, 0, :] - c[:, 4, :]).pow(2).sum(dim=1).clamp(min=1e-6))
        return a * b_ * d

    sum_vols = (
        vol(c1).view(B, K1).clamp(min=1e-8)[:, :, None] + vol(c2).view(B, K2).clamp(min=1e-8)[:, None, :]
    )
    good = (enclosing > 2e-8) * (sum_vols > 4e-8)
    inter_vols = inter * height
    union = (sum_vols - inter_vols).clamp(min=1e-8)
    gious = inter_vols / union + -(1 - union / enclosing)
    gious *= good
    mask = torch.zeros((B, K1, K2))
    for b in range(B):
        mask[b, :, : nums_k2[b]] = 1
    return gious * mask


def official_loss(outputs, targets, w):
    """SetCriterion.forward on one process (criterion.py l.89-375), the Matcher (l.12-86) inside; `w` holds
    main.py's names (matcher_*_cost, loss_*_weight)."""
    from scipy.optimize import linear_sum_assignment

    nactual = targets["gt_box_present"].sum(axis=1).long()
    num_boxes = torch.clamp(nactual.sum(), min=1).item()

    def one(out):
        out = dict(out)
        out["gious"] = official_giou(out["box_corners"], targets["gt_box_corners"], nactual)
        out["center_dist"] = torch.cdist(out["center_normalized"], targets["gt_box_centers_normalized"], p=1)
        B, Q = out["sem_cls_prob"].shape[:2]
        g = (
            targets["gt_box_sem_cls_label"]
            .unsqueeze(1)
            .expand(B, Q, targets["gt_box_sem_cls_label"].shape[1])
        )
        cost = (
            (
                w["matcher_cls_cost"] * -torch.gather(out["sem_cls_prob"], 2, g)
                + w["matcher_objectness_cost"] * -out["objectness_prob"].unsqueeze(-1)
                + w["matcher_center_cost"] * out["center_dist"].detach()
                + w["matcher_giou_cost"] * -out["gious"].detach()
            )
            .detach()
            .cpu()
            .numpy()
        )
        inds, matched = torch.zeros([B, Q], dtype=torch.int64), torch.zeros([B, Q])
        for b in range(B):
            if nactual[b] > 0:
                r, c = linear_sum_assignment(cost[b, :, : nactual[b]])
                inds[b, torch.from_numpy(r).long()] = torch.from_numpy(c).long()
                matched[b, torch.from_numpy(r).long()] = 1
        logits = out["sem_cls_logits"]
        label = torch.gather(targets["gt_box_sem_cls_label"], 1, inds)
        label[matched.int() == 0] = logits.shape[-1] - 1
        cw = torch.ones(logits.shape[-1])
        cw[-1] = w["loss_no_object_weight"]
        losses = {"loss_sem_cls": F.cross_entropy(logits.transpose(2, 1), label, cw, reduction="mean")}
        al = torch.gather(targets["gt_angle_class_label"], 1, inds)
        acls = (F.cross_entropy(out["angle_logits"].transpose(2, 1), al, reduction="none") * matched).sum()
        res = out["angle_residual_normalized"]
        tres = torch.gather(targets["gt_angle_residual_label"] / (torch.pi / res.shape[-1]), 1, inds)
        oh = torch.zeros_like(res, dtype=torch.float32)
        oh.scatter_(2, al.unsqueeze(-1), 1)
        err = torch.sum(res * oh, -1) - tres
        quad = torch.clamp(torch.abs(err), max=1.0)
        areg = ((0.5 * quad**2 + 1.0 * (torch.abs(err) - quad)) * matched).sum()
        losses["loss_angle_cls"], losses["loss_angle_reg"] = acls / num_boxes, areg / num_boxes
        cen = (torch.gather(out["center_dist"], 2, inds.unsqueeze(-1)).squeeze(-1) * matched).sum()
        losses["loss_center"] = cen / num_boxes
        gi = (torch.gather(1 - out["gious"], 2, inds.unsqueeze(-1)).squeeze(-1) * matched).sum()
        losses["loss_giou"] = gi / num_boxes
        s = targets["gt_box_sizes_normalized"]
        s = torch.stack([torch.gather(s[:, :, x], 1, inds) for x in range(3)], dim=-1)
        sl = F.l1_loss(out["size_normalized"], s, reduction="none").sum(dim=-1)
        sl *= matched
        losses["loss_size"] = sl.sum() / num_boxes
        final = 0
        for k in (
            "loss_giou",
            "loss_sem_cls",
            "loss_angle_cls",
            "loss_angle_reg",
            "loss_center",
            "loss_size",
        ):
            if w[k + "_weight"] > 0:
                losses[k] *= w[k + "_weight"]
                final += losses[k]
        return final

    total = one(outputs["outputs"])
    for aux in outputs["aux_outputs"]:
        total += one(aux)
    return total
