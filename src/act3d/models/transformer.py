"""Transformer blocks shared by the pretrained Transformers, the student and the heads.

`Block` is the pre-norm ViT block (timm naming: `norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`,
`mlp.fc2`), with optional LayerScale as in DINOv2. `PostNormBlock` is the BERT layer, used by language
teachers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from act3d.errors import ConfigError

# a PEFT method's seams in a block and in the stack (`Block.forward`, `TransformerStack.forward`)
Branch = Callable[[torch.Tensor], torch.Tensor]
EnterBlock = Callable[[int, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
RunBlock = Callable[[int, "Block", torch.Tensor], torch.Tensor]


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample with probability `p` while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation, `x * sigmoid(1.702 x)`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str = "gelu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = QuickGELU() if act == "quick_gelu" else nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with a fused `qkv` projection, on `scaled_dot_product_attention`."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = False):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm Transformer block: `x + attn(norm(x))`, then `x + mlp(norm(x))`. `(B, T, D) -> (B, T, D)`."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        eps: float = 1e-6,
        act: str = "gelu",
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.ls1 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act)
        self.ls2 = LayerScale(dim, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, branch: Branch | None = None) -> torch.Tensor:
        """`(B, T, D)` -> `(B, T, D)`. A `branch` beside the MLP (a PEFT method's adapter) reads the tokens after
        the attention's residual and its output is added after the MLP's: `(x + mlp) + branch(x)`."""
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        if branch is None:
            return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
        side = branch(x)
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x)))) + side


class PostNormBlock(nn.Module):
    """BERT encoder layer: `norm(x + attn(x))`, then `norm(x + mlp(x))`. `(B, T, D) -> (B, T, D)`."""

    def __init__(self, dim: int, heads: int, hidden: int, eps: float = 1e-12):
        super().__init__()
        self.attn = Attention(dim, heads, qkv_bias=True)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, hidden)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attn(x))
        return self.norm2(x + self.mlp(x))


class TransformerStack(nn.Module):
    """`depth` pre-norm blocks; the positional embedding is added before every block (Point-BERT /
    Point-MAE convention). Drop path grows linearly from 0 to `drop_path`."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        qkv_bias: bool = False,
    ):
        super().__init__()
        rates = torch.linspace(0, drop_path, depth).tolist() if depth > 1 else [drop_path] * depth
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, qkv_bias, r, eps=1e-5) for r in rates)
        self.checkpointing = False  # recompute block activations in backward to save memory

    def set_drop_path(self, drop_path: float) -> None:
        """Re-spread stochastic depth (fine-tuning uses its own rate)."""
        depth = len(self.blocks)
        rates = torch.linspace(0, drop_path, depth).tolist() if depth > 1 else [drop_path] * depth
        for block, rate in zip(self.blocks, rates):
            block.drop_path.p = rate

    def forward(
        self,
        x: torch.Tensor,
        pos: torch.Tensor,
        return_layers: tuple[int, ...] = (),
        enter: EnterBlock | None = None,
        run: RunBlock | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """`x, pos (B, T, D)` -> `(B, T', D)`; with `return_layers`, the outputs of those blocks (1-based).

        The seams a PEFT method changes the frozen stack at (`act3d.models.peft`), each None for the plain
        stack: `enter(i, x, pos) -> (input, pos)` makes block `i`'s input from the tokens and positions
        (plain: `x + pos`; a method inserts or replaces tokens here), and `run(i, block, input) -> x` runs it
        (plain: `block(input)`; a method passes a `branch` or runs its own block on the frozen layers)."""
        outs = []
        for i, block in enumerate(self.blocks):
            h, pos = enter(i, x, pos) if enter is not None else (x + pos, pos)
            fn = partial(run, i, block) if run is not None else block
            x = checkpoint(fn, h, use_reentrant=False) if self.checkpointing and self.training else fn(h)
            if i + 1 in return_layers:
                outs.append(x)
        return outs if return_layers else x


def set_activation_checkpointing(module: nn.Module, enabled: bool) -> None:
    """Recompute the activations of every Transformer stack inside `module` in backward (less memory)."""
    for stack in module.modules():
        if isinstance(stack, TransformerStack):
            stack.checkpointing = enabled
