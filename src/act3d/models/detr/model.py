"""3DETR as `Model3DETR` computes it (facebookresearch/3detr @a5d1aad, `models/model_3detr.py`): pre-encoder
(`SetAbstraction`), Transformer encoder, a projection to the decoder's width, queries at FPS-sampled encoder
points embedded by Fourier features of their scene-normalised coordinates, the decoder, and per decoder
layer five MLP heads turned into boxes (`BoxProcessor`): centre = query point + sigmoid offset − 0.5 (metres),
size = sigmoid × the scene's extent (clamped at 0.1), class logits with a background class last. Names of
modules and buffers are the official ones, so an official state dict loads as it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from act3d.errors import ConfigError, require
from act3d.models.detr.act_encoder import StudentSceneEncoder
from act3d.models.detr.preencoder import SetAbstraction
from act3d.models.detr.transformer import Decoder, DecoderLayer, Encoder, EncoderLayer
from act3d.models.student import StudentConfig
from act3d.ops.boxes import box_corners
from act3d.ops.float32 import in_float32
from act3d.ops.fps import farthest_point_sampling


@dataclass
class DetrConfig:
    """The model's sizes (main.py's defaults, l.53-83): 3DETR; `masked` encoder for 3DETR-m; `act` for
    act3d's student in place of the encoder (`act_encoder`; `enc_dim` is then the student's width)."""

    num_classes: int = 18  # without the background class
    num_angle_bins: int = 1  # ScanNet's boxes have no heading
    encoder: Literal["vanilla", "masked", "act"] = "vanilla"
    enc_nlayers: int = 3
    enc_dim: int = 256
    enc_ffn_dim: int = 128
    enc_dropout: float = 0.1
    enc_nhead: int = 4
    dec_nlayers: int = 8
    dec_dim: int = 256
    dec_ffn_dim: int = 256
    dec_dropout: float = 0.1
    dec_nhead: int = 4
    mlp_dropout: float = 0.3
    preenc_npoints: int = 2048
    nqueries: int = 256
    masking_radius: list[float] = field(default_factory=lambda: [0.4**2, 0.8**2, 1.2**2])  # squared, l.381

    def __post_init__(self) -> None:
        for key in ("num_classes", "num_angle_bins", "enc_nlayers", "dec_nlayers", "nqueries"):
            require(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        require(
            self.encoder in ("vanilla", "masked", "act"), "encoder", "vanilla, masked or act", self.encoder
        )
        for dim, heads in (("enc_dim", "enc_nhead"), ("dec_dim", "dec_nhead")):
            width, n = getattr(self, dim), getattr(self, heads)
            require(n >= 1 and width % n == 0, heads, f"a divisor of {dim} = {width}", n)
        require(self.dec_dim % 2 == 0, "dec_dim", "an even width (sin and cos halves)", self.dec_dim)
        encoded = self.preenc_npoints // 2 if self.encoder == "masked" else self.preenc_npoints
        require(
            1 <= self.nqueries <= encoded,
            "nqueries",
            f"at most the {encoded} points the encoder keeps",
            self.nqueries,
        )
        require(len(self.masking_radius) == 3, "masking_radius", "three squared radii", self.masking_radius)


def _shift_scale(xyz: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """`shift_scale_points` to [0, 1] (utils/pc_util.py l.38-66), its arithmetic kept."""
    zero, one = torch.zeros_like(lo), torch.ones_like(lo)
    return ((xyz - lo[:, None, :]) * (one - zero)[:, None, :]) / (hi - lo)[:, None, :] + zero[:, None, :]


class FourierPositions(nn.Module):
    """`PositionEmbeddingCoordsSine` of type `fourier`, normalised (models/position_embedding.py l.89-118):
    `(B, N, 3)` points -> `(B, d_pos, N)`, sin and cos of `2 pi x B` for a stored Gaussian `B (3, d_pos/2)`."""

    def __init__(self, d_pos: int):
        super().__init__()
        self.register_buffer("gauss_B", torch.empty((3, d_pos // 2)).normal_())

    @torch.no_grad()
    @in_float32  # coordinates, as the official float32 code computes them, under any autocast
    def forward(self, xyz: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        b, n = xyz.shape[:2]
        xyz = _shift_scale(xyz.clone(), lo, hi)
        xyz *= 2 * np.pi
        proj = torch.mm(xyz.view(-1, 3), self.gauss_B).view(b, n, -1)
        return torch.cat([proj.sin(), proj.cos()], dim=2).permute(0, 2, 1)


class GenericMLP(nn.Module):
    """`models/helpers.py` `GenericMLP` with `use_conv` (l.45-112): 1x1 convs, each hidden one followed by
    the norm, ReLU and dropout; `layers` holds them under the official indices."""

    def __init__(
        self,
        input_dim: int,
        hidden_dims: list[int],
        output_dim: int,
        norm: bool = False,
        dropout: float | None = None,
        hidden_use_bias: bool = False,
        output_use_norm: bool = False,
        output_use_activation: bool = False,
        output_use_bias: bool = True,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        prev = input_dim
        for width in hidden_dims:
            layers.append(nn.Conv1d(prev, width, 1, bias=hidden_use_bias))
            layers += [nn.BatchNorm1d(width)] if norm else []
            layers.append(nn.ReLU())
            layers += [nn.Dropout(p=dropout)] if dropout is not None else []
            prev = width
        layers.append(nn.Conv1d(prev, output_dim, 1, bias=output_use_bias))
        layers += [nn.BatchNorm1d(output_dim)] if output_use_norm else []
        layers += [nn.ReLU()] if output_use_activation else []
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


HEADS = ("sem_cls_head", "center_head", "size_head", "angle_cls_head", "angle_residual_head")


class Detector3DETR(nn.Module):
    """`Model3DETR` (l.72-339). `forward(points, lo, hi)` returns every decoder layer's boxes, the last
    first (`outputs`, `aux_outputs`); `detect` the last layer's."""

    def __init__(self, cfg: DetrConfig, student: StudentConfig | None = None):
        super().__init__()
        self.cfg = cfg
        self.pre_encoder = SetAbstraction([0, 64, 128, cfg.enc_dim], cfg.preenc_npoints, 0.2, 64)
        layer = EncoderLayer(cfg.enc_dim, cfg.enc_nhead, cfg.enc_ffn_dim, cfg.enc_dropout)
        self.encoder: nn.Module
        if cfg.encoder == "act":
            if student is None or student.width != cfg.enc_dim:
                raise ConfigError(f"the act encoder needs a student of width enc_dim = {cfg.enc_dim}")
            self.encoder = StudentSceneEncoder(student)
        elif cfg.encoder == "masked":
            interim = SetAbstraction([cfg.enc_dim, 256, 256, cfg.enc_dim], cfg.preenc_npoints // 2, 0.4, 32)
            self.encoder = Encoder(layer, 3, cfg.masking_radius, interim)
        else:
            self.encoder = Encoder(layer, cfg.enc_nlayers)
        hidden = [cfg.enc_dim] if cfg.encoder == "masked" else [cfg.enc_dim, cfg.enc_dim]
        self.encoder_to_decoder_projection = GenericMLP(
            cfg.enc_dim, hidden, cfg.dec_dim, norm=True, output_use_norm=True,
            output_use_activation=True, output_use_bias=False,
        )  # fmt: skip
        self.pos_embedding = FourierPositions(cfg.dec_dim)
        self.query_projection = GenericMLP(
            cfg.dec_dim, [cfg.dec_dim], cfg.dec_dim, output_use_activation=True, hidden_use_bias=True
        )
        self.decoder = Decoder(
            DecoderLayer(cfg.dec_dim, cfg.dec_nhead, cfg.dec_ffn_dim, cfg.dec_dropout), cfg.dec_nlayers
        )
        outputs = (cfg.num_classes + 1, 3, 3, cfg.num_angle_bins, cfg.num_angle_bins)
        self.mlp_heads = nn.ModuleDict(
            {
                name: GenericMLP(
                    cfg.dec_dim, [cfg.dec_dim, cfg.dec_dim], out, norm=True, dropout=cfg.mlp_dropout
                )
                for name, out in zip(HEADS, outputs)
            }
        )

    def run_encoder(self, xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(B, N, 3)` -> encoder points `(B, M, 3)`, features `(M, B, C)`, their indices into the input."""
        pre_xyz, pre_features, pre_inds = self.pre_encoder(xyz)
        enc_xyz, enc_features, enc_inds = self.encoder(pre_features.permute(2, 0, 1), pre_xyz)
        inds = pre_inds if enc_inds is None else torch.gather(pre_inds, 1, enc_inds.long())
        return enc_xyz, enc_features, inds

    def forward(self, points: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> dict:
        enc_xyz, enc_features, _ = self.run_encoder(points[..., 0:3].contiguous())
        enc_features = self.encoder_to_decoder_projection(enc_features.permute(1, 2, 0)).permute(2, 0, 1)
        query_inds = farthest_point_sampling(enc_xyz, self.cfg.nqueries, rule="pointnet2")
        query_xyz = torch.stack([torch.gather(enc_xyz[..., x], 1, query_inds) for x in range(3)]).permute(
            1, 2, 0
        )
        query_embed = self.query_projection(self.pos_embedding(query_xyz, lo, hi)).permute(2, 0, 1)
        enc_pos = self.pos_embedding(enc_xyz, lo, hi).permute(2, 0, 1)
        box_features = self.decoder(torch.zeros_like(query_embed), enc_features, enc_pos, query_embed)
        return self.box_predictions(query_xyz, lo, hi, box_features)

    def box_predictions(
        self, query_xyz: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, features: torch.Tensor
    ) -> dict:
        """`get_box_predictions` (l.210-304): decoder features `(L, Q, B, C)` -> per layer the official
        output dict."""
        layers, q, b, c = features.shape
        x = features.permute(0, 2, 3, 1).reshape(layers * b, c, q)
        cls_logits = self.mlp_heads["sem_cls_head"](x).transpose(1, 2)
        center_offset = self.mlp_heads["center_head"](x).sigmoid().transpose(1, 2) - 0.5
        size_normalized = self.mlp_heads["size_head"](x).sigmoid().transpose(1, 2)
        angle_logits = self.mlp_heads["angle_cls_head"](x).transpose(1, 2)
        angle_residual_normalized = self.mlp_heads["angle_residual_head"](x).transpose(1, 2)
        cls_logits, center_offset, size_normalized, angle_logits, angle_residual_normalized = (
            t.reshape(layers, b, q, -1)
            for t in (cls_logits, center_offset, size_normalized, angle_logits, angle_residual_normalized)
        )
        angle_residual = angle_residual_normalized * (np.pi / angle_residual_normalized.shape[-1])
        outputs = [
            box_outputs(
                cls_logits[i],
                center_offset[i],
                size_normalized[i],
                angle_logits[i],
                angle_residual[i],
                angle_residual_normalized[i],
                query_xyz,
                lo,
                hi,
            )  # fmt: skip
            for i in range(layers)
        ]
        return {"outputs": outputs[-1], "aux_outputs": outputs[:-1]}

    @torch.no_grad()
    def detect(
        self, points: torch.Tensor, point_cloud_dims_min: torch.Tensor, point_cloud_dims_max: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """`(B, N, 3)` float32 points and their scenes' bounds `(B, 3)` -> the last decoder layer's boxes,
        under the official output names."""
        return self(points, point_cloud_dims_min, point_cloud_dims_max)["outputs"]


@in_float32  # box geometry in float32 under any autocast, as the official code computes it
def box_outputs(
    cls_logits: torch.Tensor,
    center_offset: torch.Tensor,
    size_normalized: torch.Tensor,
    angle_logits: torch.Tensor,
    angle_residual: torch.Tensor,
    angle_residual_normalized: torch.Tensor,
    query_xyz: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """One decoder layer's head outputs `(B, Q, ·)` -> its boxes (`BoxProcessor`, l.19-69)."""
    center_unnormalized = query_xyz + center_offset
    center_normalized = _shift_scale(center_unnormalized, lo, hi)
    size_unnormalized = size_normalized * torch.clamp(hi - lo, min=1e-1)[:, None, :]
    if angle_logits.shape[-1] == 1:  # no heading: zero, still reading the heads (DDP needs every output used)
        angle = (angle_logits * 0 + angle_residual * 0).squeeze(-1).clamp(min=0)
    else:
        cls = angle_logits.argmax(dim=-1).detach()
        angle = 2 * np.pi / angle_logits.shape[-1] * cls + angle_residual.gather(
            2, cls.unsqueeze(-1)
        ).squeeze(-1)
        angle = torch.where(angle > np.pi, angle - 2 * np.pi, angle)
    with torch.no_grad():
        prob = torch.nn.functional.softmax(cls_logits, dim=-1)
    return {
        "sem_cls_logits": cls_logits,
        "center_normalized": center_normalized.contiguous(),
        "center_unnormalized": center_unnormalized,
        "size_normalized": size_normalized,
        "size_unnormalized": size_unnormalized,
        "angle_logits": angle_logits,
        "angle_residual": angle_residual,
        "angle_residual_normalized": angle_residual_normalized,
        "angle_continuous": angle,
        "objectness_prob": 1 - prob[..., -1],
        "sem_cls_prob": prob[..., :-1],
        "box_corners": box_corners(center_unnormalized, size_unnormalized, angle),
    }
