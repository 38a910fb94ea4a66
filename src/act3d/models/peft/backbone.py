"""The frozen backbone's pieces as the PEFT methods drive them: its input sequence and one block at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from act3d.models.student import StudentEncoder
from act3d.models.transformer import Block


def with_cls(
    encoder: StudentEncoder, tokens: torch.Tensor, center: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Patch `tokens (B, G, W)` and their `center (B, G, 3)` -> `[cls, patches]` tokens and their positions,
    `(B, 1 + G, W)` each, as the official classifiers build them before their blocks (IDPT
    models/Point_MAE.py l.1031-1043, DAPT models/DAPT.py l.365-376)."""
    b = tokens.shape[0]
    x = torch.cat([encoder.cls_token.expand(b, -1, -1), tokens], dim=1)
    pos = torch.cat([encoder.cls_pos.expand(b, -1, -1), encoder.pos_embed(center)], dim=1)
    return x, pos


def block_with_branch(
    block: Block, x: torch.Tensor, branch: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """The frozen `block` on `(B, T, W)` tokens with a parallel branch: `branch` reads the tokens after the
    attention's residual, and its output is added after the MLP's, `(x + mlp) + branch` (PointGST's spectral
    adapter, PointTransformer.py l.149-156; PPT's `prompt_all_mlp`, PPT.py l.140-144)."""
    x = x + block.drop_path(block.ls1(block.attn(block.norm1(x))))
    side = branch(x)
    return x + block.drop_path(block.ls2(block.mlp(block.norm2(x)))) + side


def checkpointed(encoder: StudentEncoder, fn: Callable[..., torch.Tensor], *args: Any) -> torch.Tensor:
    """`fn(*args)`, one block's work, recomputed in backward when the backbone checkpoints its activations
    (`act3d.models.transformer.set_activation_checkpointing`) and trains."""
    if encoder.blocks.checkpointing and encoder.blocks.training:
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)
