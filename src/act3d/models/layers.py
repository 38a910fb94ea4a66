"""Small pieces several models share: the per-point MLP, the official weight initialisation, and the pooling
of a backbone's tokens into one feature per cloud."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

from act3d.errors import ConfigError

Pooling = Literal["cls+max", "max+mean"]
POOLINGS: tuple[Pooling, ...] = ("cls+max", "max+mean")


class PointwiseMLP(nn.Sequential):
    """Per-point Linear layers with BatchNorm + ReLU between them, on channels-last `(..., C)` input;
    `activate_last` puts BatchNorm + ReLU after the last layer too (PointNet++'s conv-bn-relu stacks).

    The 1x1 convolutions of the PointNet family are exactly per-point linear maps; as `nn.Linear` on
    channels-last data they run as plain matrix products, much faster than 1x1 convolutions on CPU.
    """

    def __init__(self, *widths: int, activate_last: bool = False):
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(cin, cout))
            if activate_last or i < len(widths) - 2:
                layers += [nn.BatchNorm1d(cout), nn.ReLU(inplace=True)]
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        for layer in self:
            x = layer(x)
        return x.reshape(*shape[:-1], x.shape[-1])


def trunc_normal_init(module: nn.Module) -> None:
    """The official `_init_weights`: trunc-normal(0.02) Linears with zero bias, unit LayerNorms (`model.apply`)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def pool_tokens(
    patch_tokens: torch.Tensor, rule: Pooling, cls_token: torch.Tensor | None = None
) -> torch.Tensor:
    """One feature per cloud from `(B, G, C)` patch tokens: `(B, 2C)`.

    - `cls+max`: the cls token `(B, C)` beside the max over the patches: what the official classification
      head reads (`PointTransformer.forward`, models/act.py l.907);
    - `max+mean`: the max and the mean over the patches: the SVM probe's features and the segmenters' global
      vector (part_segmentation/models/pt.py l.330-336).
    """
    if rule == "cls+max":
        if cls_token is None:
            raise ConfigError("cls+max pooling needs the cls token")
        return torch.cat([cls_token, patch_tokens.max(dim=1).values], dim=-1)
    if rule == "max+mean":
        return torch.cat([patch_tokens.max(dim=1).values, patch_tokens.mean(dim=1)], dim=-1)
    raise ConfigError(f"unknown pooling {rule!r}; one of {POOLINGS}")


def optimized_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """`(name, parameter)` of what the optimiser updates: the parameters with gradients, but for those a model
    lists in `optimizer_skips` (frozen parameters that keep their gradients, as the official IDPT and
    VPT-deep runs keep them; `act3d.models.classifier.PointClassifier`)."""
    skips = getattr(model, "optimizer_skips", frozenset())
    return ((n, p) for n, p in model.named_parameters() if p.requires_grad and n not in skips)
