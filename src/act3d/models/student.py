"""Stage II: the 3D student Transformer and masked point modelling against a target.

Targets (`StudentConfig.target`):
- `act`: the frozen Stage I autoencoder's per-patch features (negative cosine similarity) — ACT;
- `mae`: the masked patches' points (Chamfer-L2), Point-MAE style;
- `none`: no pretraining (the scratch baseline; the student keeps its random init).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from act3d.errors import ConfigError, require
from act3d.models.layers import Pooling, pool_tokens, trunc_normal_init
from act3d.models.tokenizer import CenterEmbed, PatchEmbed
from act3d.models.transformer import EnterBlock, RunBlock, TransformerStack
from act3d.ops.chamfer import chamfer_distance
from act3d.ops.grouping import PatchConfig, Patches
from act3d.ops.indexing import gather_points


@dataclass
class StudentConfig:
    width: int = 384
    depth: int = 12
    heads: int = 6
    mlp_ratio: float = 4.0
    drop_path: float = 0.1
    embed_hidden: float = 1.0  # mini-PointNet width multiplier
    decoder_depth: int = 2
    decoder_heads: int = 6
    mask_ratio: float = 0.8
    mask_type: Literal["random", "block"] = "random"
    target: Literal["act", "mae", "none"] = "act"
    # act target: subtract the batch's mean teacher feature first. Teacher features share a large common
    # direction, and predicting that constant alone already scores cos 0.88; centring leaves the per-patch
    # part.
    center_target: bool = False

    def __post_init__(self) -> None:
        for key in ("width", "depth", "heads", "decoder_depth", "decoder_heads"):
            require(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        require(self.width % self.heads == 0, "heads", f"a divisor of width = {self.width}", self.heads)
        require(
            self.width % self.decoder_heads == 0,
            "decoder_heads",
            f"a divisor of width = {self.width}",
            self.decoder_heads,
        )
        require(
            self.mlp_ratio > 0 and self.embed_hidden > 0,
            "mlp_ratio / embed_hidden",
            "values > 0",
            (self.mlp_ratio, self.embed_hidden),
        )
        require(0 <= self.drop_path < 1, "drop_path", "a rate in [0, 1)", self.drop_path)
        require(
            0 <= self.mask_ratio < 1,
            "mask_ratio",
            "a ratio in [0, 1) (some patches must stay visible)",
            self.mask_ratio,
        )


def _init_decoder_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class StudentEncoder(nn.Module):
    """The 3D Transformer backbone: patches -> `(B, 1 + G', W)` tokens (cls first), over all patches or
    only the visible ones."""

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.patch_embed = PatchEmbed(w, cfg.embed_hidden)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, w))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, w))
        self.pos_embed = CenterEmbed(w)
        self.blocks = TransformerStack(w, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.drop_path)
        self.norm = nn.LayerNorm(w)
        self.apply(trunc_normal_init)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.cls_pos, std=0.02)

    def forward(
        self,
        neighborhood: torch.Tensor,
        center: torch.Tensor,
        visible: torch.Tensor | None = None,
        return_layers: tuple[int, ...] = (),
        with_cls: bool = True,
    ) -> torch.Tensor | list[torch.Tensor]:
        """`neighborhood (B, G, K, 3)`, `center (B, G, 3)`, `visible (B, G')` indices of the patches to encode
        (`split_by_mask`) -> normalised tokens `(B, 1 + G', W)`; with `return_layers`, those blocks'
        normalised outputs. `with_cls=False` runs the patch tokens alone, `(B, G', W)`, as the official
        segmentation backbones (no cls token)."""
        # every patch is embedded, then the visible ones kept (official VisableOnlyMaskTransformer, act.py
        # l.276-281): the mini-PointNet's batch norm sees all patches of the batch, not only the visible ones
        tokens = self.patch_embed(neighborhood)
        if visible is not None:
            tokens, center = gather_points(tokens, visible), gather_points(center, visible)
        x, pos = tokens, self.pos_embed(center)
        if with_cls:
            x, pos = self._with_cls(x, pos)
        if return_layers:
            return [self.norm(h) for h in self.blocks(x, pos, return_layers)]
        return self.norm(self.blocks(x, pos))

    def _with_cls(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, G, W)` tokens and their positions -> `[cls, tokens]` and `[cls_pos, pos]`, `(B, 1 + G, W)`."""
        b = x.shape[0]
        return (
            torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1),
            torch.cat([self.cls_pos.expand(b, -1, -1), pos], dim=1),
        )

    def run(
        self,
        patches: Patches,
        extra: Patches | None = None,
        embedded: Callable[[torch.Tensor], torch.Tensor] | None = None,
        enter: EnterBlock | None = None,
        run: RunBlock | None = None,
    ) -> torch.Tensor:
        """The backbone over every patch, with a PEFT method's seams -> normalised `(B, T, W)` tokens, `[cls,
        patches, extra patches]` and what `enter` inserts.

        `embedded` changes the `(B, G, W)` patch tokens after the mini-PointNet (DAPT's scale and shift);
        `extra` patches (PPT's second grouping) are embedded by the same mini-PointNet after the patches and
        follow them as tokens, with their centres' positions; `enter` and `run` are the stack's seams around
        each block (`TransformerStack.forward`)."""
        tokens = self.patch_embed(patches.neighborhood)
        if embedded is not None:
            tokens = embedded(tokens)
        x, pos = self._with_cls(tokens, self.pos_embed(patches.center))
        if extra is not None:
            x = torch.cat([x, self.patch_embed(extra.neighborhood)], dim=1)
            pos = torch.cat([pos, self.pos_embed(extra.center)], dim=1)
        return self.norm(self.blocks(x, pos, enter=enter, run=run))


def pooled_features(encoder: StudentEncoder, patches: Patches, pooling: Pooling) -> torch.Tensor:
    """`(B, 2W)` features: the backbone over every patch (cls token included), pooled by `pooling`
    (`act3d.models.layers.pool_tokens`); a classifier's head reads them `cls+max`, the SVM probe `max+mean`."""
    tokens = encoder(patches.neighborhood, patches.center)
    return pool_tokens(tokens[:, 1:], pooling, tokens[:, 0])


def split_by_mask(mask: torch.Tensor, num_mask: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, G)` bool mask with `num_mask` True per row -> the indices of the visible `(B, G - num_mask)` and of
    the masked `(B, num_mask)` patches, each in patch order: what `x[~mask]` and `x[mask]` select, without
    reading the count back from the device (a boolean index waits for it on a GPU)."""
    order = mask.to(torch.uint8).argsort(dim=1, stable=True)  # visible (0) first, then masked (1)
    return order[:, : mask.shape[1] - num_mask], order[:, mask.shape[1] - num_mask :]


def select_patches(neighborhood: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`(B, G, K, 3)` patches, `(B, M)` indices -> `(B, M, K, 3)`."""
    b, _, k, _ = neighborhood.shape
    return gather_points(neighborhood.reshape(b, -1, k * 3), index).reshape(b, -1, k, 3)


def masked_count(ratio: float, groups: int) -> int:
    """How many of a cloud's `groups` patches a mask of `ratio` hides: `round(ratio * G)`. The official
    `_mask_center_rand` (models/act.py l.255) truncates, `int(self.mask_ratio * G)`; the two agree unless
    `ratio * G` has a fraction >= 0.5 (the presets' 0.8 x 64 = 51.2 and 0.6 x 64 = 38.4 agree)."""
    return int(round(ratio * groups))


def random_mask(batch: int, groups: int, ratio: float, device: torch.device | str) -> torch.Tensor:
    """`(B, G)` bool, True = masked; exactly `masked_count(ratio, G)` masked patches per cloud."""
    num_mask = masked_count(ratio, groups)
    order = torch.rand(batch, groups, device=device).argsort(dim=1)
    mask = torch.zeros(batch, groups, dtype=torch.bool, device=device)
    mask.scatter_(1, order[:, :num_mask], True)
    return mask


def block_mask(center: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mask the `masked_count(ratio, G)` centres nearest to a random centre of each cloud. `(B, G, 3) -> (B, G)`."""
    b, g, _ = center.shape
    num_mask = masked_count(ratio, g)
    seed = gather_points(center, torch.randint(g, (b, 1), device=center.device))  # (B, 1, 3)
    nearest = (center - seed).norm(dim=-1).argsort(dim=1)[:, :num_mask]
    return torch.zeros(b, g, dtype=torch.bool, device=center.device).scatter_(1, nearest, True)


class MaskedPointModel(nn.Module):
    """Stage II: encode the visible patches, decode mask tokens, predict each masked patch's target. Its
    `encoder` is the student backbone; `patching` says how it cuts clouds into patches."""

    def __init__(self, cfg: StudentConfig, patching: PatchConfig, target_dim: int | None = None):
        super().__init__()
        if cfg.target == "act" and target_dim is None:
            raise ConfigError("the act target needs the teacher's feature width (target_dim)")
        self.cfg, self.patching = cfg, patching
        w = cfg.width
        self.encoder = StudentEncoder(cfg)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, w))
        self.decoder_pos_embed = CenterEmbed(w)
        # official build_masked_decoder (act.py l.1171-1177): drop path spread 0 -> drop_path over the decoder
        # too, xavier-uniform Linears in the decoder blocks (TransformerDecoder._init_weights, l.129-138);
        # the decoder positions and the projection head keep PyTorch's default initialisation
        self.decoder = TransformerStack(w, cfg.decoder_depth, cfg.decoder_heads, cfg.mlp_ratio, cfg.drop_path)
        self.decoder_norm = nn.LayerNorm(w)
        out_dim = target_dim if cfg.target == "act" else 3 * patching.group_size
        self.head = nn.Linear(w, out_dim)
        self.decoder.apply(_init_decoder_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def make_mask(self, center: torch.Tensor) -> torch.Tensor:
        if self.cfg.mask_type == "block":
            return block_mask(center, self.cfg.mask_ratio)
        return random_mask(center.shape[0], center.shape[1], self.cfg.mask_ratio, center.device)

    def forward(self, patches: Patches, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`mask (B, G)` from `make_mask` (True = masked) -> predictions `(B, M, out_dim)` for the masked
        patches, in patch order, and their indices `(B, M)` (`split_by_mask`)."""
        b, g, _ = patches.center.shape
        num_mask = masked_count(self.cfg.mask_ratio, g)
        visible, masked = split_by_mask(mask, num_mask)
        visible_tokens = self.encoder(patches.neighborhood, patches.center, visible=visible)[:, 1:]
        pos = self.decoder_pos_embed(patches.center)
        x = torch.cat([visible_tokens, self.mask_token.expand(b, num_mask, -1)], dim=1)
        pos = torch.cat([gather_points(pos, visible), gather_points(pos, masked)], dim=1)
        x = self.decoder_norm(self.decoder(x, pos))
        return self.head(x[:, -num_mask:]), masked


def act_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative cosine similarity, shifted by 1 so it reads as a distance in [0, 2]."""
    return 1 - F.cosine_similarity(pred.float(), target.float(), dim=-1).mean()


def center_features(target: torch.Tensor) -> torch.Tensor:
    """`(B, G, C)` teacher features minus their mean over the batch's patches."""
    return target - target.mean(dim=(0, 1), keepdim=True)


def mae_loss(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Chamfer-L2 between predicted `(B, M, 3K)` and true `(B, M, K, 3)` masked patches."""
    k = truth.shape[2]
    return chamfer_distance(pred.reshape(-1, k, 3).float(), truth.reshape(-1, k, 3).float(), "l2").mean()
