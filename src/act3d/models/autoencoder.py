"""Stage I: a frozen pretrained Transformer, prompt-tuned into a 3D dVAE autoencoder (the ACT teacher).

patches -> mini-PointNet -> DGCNN-1 -> logits over the codebook -> Gumbel-softmax -> codebook vectors
-> Linear(C, D) + centre positions -> prompted frozen Transformer blocks -> Linear(D, C) -> DGCNN-2
-> FoldingNet decoder -> coarse and fine points per patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from act3d.errors import require
from act3d.models.decoder import FoldingDecoder
from act3d.models.dgcnn import DGCNN
from act3d.models.pretrained import PretrainedTransformer, TransformerConfig
from act3d.models.tokenizer import CenterEmbed, PatchEmbed
from act3d.ops.chamfer import chamfer_distance
from act3d.ops.grouping import PatchConfig, Patches


@dataclass
class AutoencoderConfig:
    tokens_dim: int = 384  # C: token / codebook vector width
    codebook_size: int = 8192
    embed_hidden: float = 1.0  # mini-PointNet width multiplier
    dgcnn_k: int = 4
    dgcnn_hidden: float = 1.0  # DGCNN width multiplier
    decoder_hidden: int = 1024
    fold_hidden: int = 512
    num_prompts: int = 64
    deep_prompts: bool = True
    prompt_dropout: float = 0.1  # on the prompt tokens (official `prompt_dropout`)
    tuning: Literal["prompt", "full"] = "prompt"  # prompt: the Transformer frozen; full: the paper's ablation
    transformer: TransformerConfig = field(default_factory=TransformerConfig)

    def __post_init__(self) -> None:
        # GroupNorm(4) closes both DGCNNs: their outputs (codebook logits, tokens) must split into 4 groups
        require(
            self.tokens_dim >= 4 and self.tokens_dim % 4 == 0,
            "tokens_dim",
            "a multiple of 4",
            self.tokens_dim,
        )
        require(
            self.codebook_size >= 4 and self.codebook_size % 4 == 0,
            "codebook_size",
            "a multiple of 4",
            self.codebook_size,
        )
        for key in ("dgcnn_k", "decoder_hidden", "fold_hidden"):
            require(getattr(self, key) >= 1, key, "an integer >= 1", getattr(self, key))
        require(
            self.embed_hidden > 0 and self.dgcnn_hidden > 0,
            "embed_hidden / dgcnn_hidden",
            "values > 0",
            (self.embed_hidden, self.dgcnn_hidden),
        )
        require(self.num_prompts >= 0, "num_prompts", "an integer >= 0", self.num_prompts)
        require(0 <= self.prompt_dropout < 1, "prompt_dropout", "a rate in [0, 1)", self.prompt_dropout)


class PromptedTransformer(nn.Module):
    """Pretrained Transformer blocks with learnable prompt tokens (VPT). `x, pos (B, G, D) -> (B, G, D)`.

    As the official `ACTPromptedDiscreteVAEwithVIT.visual_embedding_deep_prompt` (models/dvae.py):
    `P` prompt tokens (dropout `prompt_dropout`) are prepended, each with its own learnable position, and
    the positions (prompt positions, then the centres' embeddings) are added to the hidden states before
    *every* block: `h = block(h + pos)`. Deep prompts replace the prompt tokens and their positions
    before every block after the first. The final norm sees all tokens; the prompts are then dropped.
    With `frozen`, the Transformer's own weights never change and it always runs in eval mode.
    """

    def __init__(
        self,
        backbone: PretrainedTransformer,
        num_prompts: int,
        deep: bool,
        frozen: bool,
        prompt_dropout: float,
    ):
        super().__init__()
        self.backbone, self.num_prompts, self.frozen = backbone, num_prompts, frozen
        self.deep = deep and num_prompts > 0 and backbone.depth > 1
        d = backbone.width
        self.prompt_tokens = nn.Parameter(torch.randn(1, num_prompts, d) * 0.02)
        self.prompt_pos = nn.Parameter(torch.randn(1, num_prompts, d) * 0.02)
        if self.deep:
            self.deep_prompt_tokens = nn.Parameter(torch.randn(backbone.depth - 1, num_prompts, d) * 0.02)
            self.deep_prompt_pos = nn.Parameter(torch.randn(backbone.depth - 1, num_prompts, d) * 0.02)
        self.prompt_dropout = nn.Dropout(prompt_dropout)
        backbone.requires_grad_(not frozen)

    def train(self, mode: bool = True) -> PromptedTransformer:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        b, p = x.shape[0], self.num_prompts
        h = torch.cat([self.prompt_dropout(self.prompt_tokens.expand(b, -1, -1)), x], dim=1)
        pos = torch.cat([self.prompt_pos.expand(b, -1, -1), pos], dim=1)
        h = self.backbone.input_norm(h)
        for i, block in enumerate(self.backbone.blocks):
            if i > 0 and self.deep:
                h = torch.cat(
                    [self.prompt_dropout(self.deep_prompt_tokens[i - 1].expand(b, -1, -1)), h[:, p:]], dim=1
                )
                pos = torch.cat([self.deep_prompt_pos[i - 1].expand(b, -1, -1), pos[:, p:]], dim=1)
            h = block(h + pos)
        return self.backbone.norm(h)[:, p:]


class AutoencoderOutput(NamedTuple):
    logits: torch.Tensor  # (B, G, V)
    coarse: torch.Tensor  # (B, G, K/4, 3)
    fine: torch.Tensor  # (B, G, K, 3)


class CrossModalAutoencoder(nn.Module):
    """The Stage I model. `forward(patches, tau)` reconstructs every patch; `teacher_features(patches)`
    gives the per-patch latent features `(B, G, C)` that Stage II distils."""

    def __init__(self, cfg: AutoencoderConfig, patching: PatchConfig, transformer: PretrainedTransformer):
        super().__init__()
        c, d, v = cfg.tokens_dim, transformer.width, cfg.codebook_size
        self.cfg, self.patching = cfg, patching
        self.patch_embed = PatchEmbed(c, cfg.embed_hidden)
        self.dgcnn_1 = DGCNN(c, v, cfg.dgcnn_k, cfg.dgcnn_hidden)
        self.codebook = nn.Parameter(torch.randn(v, c))
        self.proj_pre = nn.Linear(c, d)
        self.center_embed = CenterEmbed(d)
        self.transformer = PromptedTransformer(
            transformer,
            cfg.num_prompts,
            cfg.deep_prompts,
            frozen=cfg.tuning == "prompt",
            prompt_dropout=cfg.prompt_dropout,
        )
        self.proj_post = nn.Linear(d, c)
        self.dgcnn_2 = DGCNN(c, c, cfg.dgcnn_k, cfg.dgcnn_hidden)
        self.decoder = FoldingDecoder(c, patching.group_size, cfg.decoder_hidden, cfg.fold_hidden)

    @property
    def feature_dim(self) -> int:
        return self.cfg.tokens_dim

    def token_logits(self, patches: Patches) -> torch.Tensor:
        """`(B, G, V)` logits over the codebook."""
        return self.dgcnn_1(self.patch_embed(patches.neighborhood), patches.center)

    def decode_features(self, tokens: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
        """Codebook tokens `(B, G, C)` -> per-patch features `(B, G, C)` through the prompted Transformer."""
        x = self.transformer(self.proj_pre(tokens), self.center_embed(center))
        return self.dgcnn_2(self.proj_post(x), center)

    def forward(self, patches: Patches, tau: float) -> AutoencoderOutput:
        logits = self.token_logits(patches)
        soft = F.gumbel_softmax(logits, tau=tau, dim=-1, hard=False)
        coarse, fine = self.decoder(self.decode_features(soft @ self.codebook, patches.center))
        return AutoencoderOutput(logits, coarse, fine)

    @torch.no_grad()
    def teacher_features(self, patches: Patches) -> torch.Tensor:
        """Stage II target `(B, G, C)`: each patch's code as the official hard Gumbel-softmax at tau 1 picks it
        (`F.gumbel_softmax(logits, 1, hard=True)` in models/dvae.py, whose forward value is the one-hot of
        argmax(logits + Gumbel noise)), from the same noise draw, looked up in the codebook instead of through
        a softmax and a one-hot matmul, then through the prompted Transformer."""
        logits = self.token_logits(patches)
        gumbels = -torch.empty_like(logits, memory_format=torch.legacy_contiguous_format).exponential_().log()
        codes = (logits + gumbels).argmax(dim=-1)
        return self.decode_features(self.codebook[codes], patches.center)


def autoencoder_loss(
    out: AutoencoderOutput, neighborhood: torch.Tensor, kl_weight: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Chamfer-L1(coarse) + Chamfer-L1(fine) + kl_weight * KL(uniform || q), q = softmax of the logits
    averaged over each cloud's patches, averaged over the batch: the official
    `F.kl_div(log q, log uniform, reduction='batchmean', log_target=True)` (models/dvae.py, `get_loss`)."""
    b, g, k, _ = neighborhood.shape
    target = neighborhood.reshape(b * g, k, 3)
    cd_coarse = chamfer_distance(out.coarse.reshape(b * g, -1, 3), target, "l1").mean()
    cd_fine = chamfer_distance(out.fine.reshape(b * g, -1, 3), target, "l1").mean()
    v = out.logits.shape[-1]
    # (B, V): the log of the softmax averaged over the cloud's patches
    log_q = torch.logsumexp(F.log_softmax(out.logits.float(), dim=-1), dim=1) - math.log(g)
    kl = (-math.log(v) - log_q).mean(-1).mean()  # sum_v (1/V) (log(1/V) - log q_v), averaged over the batch
    loss = cd_coarse + cd_fine + kl_weight * kl
    return loss, {"cd_coarse": cd_coarse.detach(), "cd_fine": cd_fine.detach(), "kl": kl.detach()}
