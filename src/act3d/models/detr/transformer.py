"""3DETR's Transformer (facebookresearch/3detr @a5d1aad, `models/transformer.py`, DETR's with the position
added inside attention): pre-norm encoder and decoder layers on `nn.MultiheadAttention`, sequence first
`(N, B, C)`. The vanilla encoder gets no position embedding (`Model3DETR.run_encoder` passes none); the
masked encoder (3DETR-m) lets a point attend only to points closer than a radius per layer, squared radii
compared with Euclidean distances as the official code compares them, and downsamples after its first layer
with a second set abstraction. The decoder returns every layer's output, each through the final norm."""

from __future__ import annotations

import copy

import torch
from torch import nn

from act3d.models.detr.preencoder import SetAbstraction


class EncoderLayer(nn.Module):
    """`TransformerEncoderLayer.forward_pre` (l.262-280)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)  # official: in place, which fails on torch >= 1.10 (3detr#12)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout2 = nn.Dropout(dropout, inplace=True)
        self.norm1 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout, inplace=True)
        self.nhead = nhead

    def forward(self, src: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm1(src)
        src = src + self.dropout1(self.self_attn(x, x, value=x, attn_mask=mask)[0])
        x = self.norm2(src)
        return src + self.dropout2(self.linear2(self.dropout(torch.relu(self.linear1(x)))))


def _clones(layer: nn.Module, n: int) -> nn.ModuleList:
    """`get_clones` then `_reset_parameters`: every weight of two or more dims drawn Xavier-uniform."""
    layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(n))
    for p in layers.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    return layers


class Encoder(nn.Module):
    """`TransformerEncoder` (l.19-74) or, with `masking_radius`, `MaskedTransformerEncoder` (l.144-209):
    features `(N, B, C)` at points `xyz (B, N, 3)` -> `(xyz, features, indices)`, the indices into `xyz` of
    the points kept by the interim downsampling (None without one)."""

    def __init__(
        self,
        layer: EncoderLayer,
        num_layers: int,
        masking_radius: list[float] | None = None,
        interim_downsampling: SetAbstraction | None = None,
    ):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.masking_radius = masking_radius
        self.interim_downsampling = interim_downsampling

    def forward(
        self, src: torch.Tensor, xyz: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        output, dist, inds = src, None, None
        for i, layer in enumerate(self.layers):
            mask = None
            if self.masking_radius is not None and self.masking_radius[i] > 0:
                with torch.no_grad():
                    if dist is None or dist.shape[1] != xyz.shape[1]:
                        dist = torch.cdist(xyz, xyz, p=2)
                    mask = dist >= self.masking_radius[i]  # True: not attended
                b, n, _ = mask.shape
                mask = mask.unsqueeze(1).repeat(1, layer.nhead, 1, 1).view(b * layer.nhead, n, n)
            output = layer(output, mask)
            if i == 0 and self.interim_downsampling is not None:
                xyz, output, inds = self.interim_downsampling(xyz, output.permute(1, 2, 0))
                output = output.permute(2, 0, 1)
        return xyz, output, inds


class DecoderLayer(nn.Module):
    """`TransformerDecoderLayer.forward_pre` (l.355-379)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout, inplace=True) for _ in range(3))
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)  # not in place, as the encoder's
        self.linear2 = nn.Linear(dim_feedforward, d_model)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor
    ) -> torch.Tensor:
        x = self.norm1(tgt)
        q = x + query_pos
        tgt = tgt + self.dropout1(self.self_attn(q, q, value=x)[0])
        x = self.norm2(tgt)
        tgt = tgt + self.dropout2(self.multihead_attn(query=x + query_pos, key=memory + pos, value=memory)[0])
        x = self.norm3(tgt)
        return tgt + self.dropout3(self.linear2(self.dropout(torch.relu(self.linear1(x)))))


class Decoder(nn.Module):
    """`TransformerDecoder` with `return_intermediate` (l.77-141): `(L, Q, B, C)`, every layer's output
    through the final LayerNorm."""

    def __init__(self, layer: DecoderLayer, num_layers: int):
        super().__init__()
        self.layers = _clones(layer, num_layers)
        self.norm = nn.LayerNorm(layer.linear2.out_features)

    def forward(
        self, tgt: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor
    ) -> torch.Tensor:
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos)
            outputs.append(self.norm(tgt))
        return torch.stack(outputs)
