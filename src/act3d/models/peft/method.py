"""The contract of a parameter-efficient transfer (PEFT) method, and the register of the methods.

A method is one module of `act3d.models.peft`: a settings dataclass and a `PeftMethod` subclass that names it
(`Config`) and is decorated with `@register`. Everything act3d reads of a method is declared here, on the
class: the classifier builds it and its head (`head_activation`, `init_head`), freezes the backbone by its
official rule (`backbone_trainable_prefixes`, `frozen`, `backbone_gradients`), the run configuration checks
its data (`check_data`), and the official key mapping reads its names (`official_names`, `official_mark`,
`official_aliases`, `training_only`). A method drives the frozen backbone through its seams,
`StudentEncoder.run` (extra tokens, the patch tokens, `enter` and `run` around each block, a `branch` beside
the MLP), never by re-running its loop. docs/extending.md walks through adding one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from act3d.config import from_dict
from act3d.errors import ConfigError
from act3d.models.student import StudentConfig, StudentEncoder
from act3d.ops.fps import FpsRule
from act3d.ops.grouping import PatchConfig, Patches


@dataclass(frozen=True)
class BackboneShape:
    """What a method may size itself by: the frozen student's shape and how it cuts clouds."""

    width: int
    depth: int
    mlp_ratio: float
    num_groups: int  # patches per cloud
    fps: FpsRule

    @classmethod
    def of(cls, student: StudentConfig, patching: PatchConfig) -> BackboneShape:
        return cls(student.width, student.depth, student.mlp_ratio, patching.num_groups, patching.fps)


class PeftMethod(nn.Module):
    """What a method adds to a frozen student backbone, computing the classifier head's input from it.

    Subclasses set the class attributes below, take `(cfg: Config, backbone: BackboneShape)`, set
    `feature_dim`, and define `forward(encoder, patches, points) -> (B, feature_dim)`."""

    name: ClassVar[str]  # the `transfer` that selects it
    Config: ClassVar[type]  # its settings, a dataclass (a run config's `peft:` section)
    # official checkpoints: (act3d name under `peft.`, official name) prefix pairs, as act3d.models.official
    # maps them; a key fragment only this method's classifiers hold; names the official state dict holds
    # twice, (alias prefix, the prefix act3d maps to); settings that change training, not the trained model
    official_names: ClassVar[tuple[tuple[str, str], ...]]
    official_mark: ClassVar[str]
    official_aliases: ClassVar[tuple[tuple[str, str], ...]] = ()
    training_only: ClassVar[frozenset[str]] = frozenset()
    # the head: `mlp3` with this activation, then `init_head`
    head_activation: ClassVar[str] = "relu"
    # the official freezing rule: the backbone trains its cls token and position (every method) and the
    # parameters under these prefixes; the method's own parameters train but for `frozen`
    backbone_trainable_prefixes: ClassVar[tuple[str, ...]] = ()
    frozen: ClassVar[tuple[str, ...]] = ()

    feature_dim: int
    # true: the frozen parameters keep their gradients (in the clipping norm), only the optimiser skips them
    backbone_gradients: bool = False

    @classmethod
    def check_data(cls, cfg: Any, num_points: int) -> None:
        """Raise `ConfigError` if clouds of `num_points` points cannot feed the method set as `cfg`."""

    def init_head(self, head: nn.Module) -> None:
        """Initialise the classifier head as the method's official model does (default: PyTorch's)."""

    def forward(self, encoder: StudentEncoder, patches: Patches, points: torch.Tensor) -> torch.Tensor:
        """`patches` cut from the `(B, N, 3)` clouds `points` -> `(B, feature_dim)`."""
        raise NotImplementedError


METHODS: dict[str, type[PeftMethod]] = {}


def register(method: type[PeftMethod]) -> type[PeftMethod]:
    """Class decorator: make `method` a `transfer` act3d knows."""
    if method.name in METHODS:
        raise ValueError(f"a PEFT method named {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def settings_of(transfer: str, peft: Any, where: str = "peft") -> Any:
    """A run's or a checkpoint's `peft` value -> the settings of `transfer`'s method (its `Config`), or None
    for a transfer that is not a PEFT method.

    `peft` is None (the method's defaults), its `Config`, or a mapping of its settings. The earlier layout of
    run folders and checkpoints, every method's settings under its name (`{idpt: {...}, dapt: {...}}`), is
    read too: the transfer's own are taken, and another method's set away from its defaults is refused."""
    if isinstance(peft, dict) and peft and set(peft) <= set(METHODS):
        unused = [
            m for m in peft if m != transfer and from_dict(METHODS[m].Config, peft[m]) != METHODS[m].Config()
        ]
        if unused:
            raise ConfigError(
                f"{where}.{unused[0]} is set, but transfer is {transfer}, which does not read it; set "
                f"transfer={unused[0]} or leave {where}.{unused[0]} out"
            )
        peft = peft.get(transfer)
    if transfer not in METHODS:
        if peft not in (None, {}):
            raise ConfigError(
                f"{where} is set, but transfer {transfer} is not a PEFT method and reads no settings; "
                f"choose one of {tuple(METHODS)} or leave {where} out"
            )
        return None
    config = METHODS[transfer].Config
    named = [k for k in peft if k in METHODS] if isinstance(peft, dict) else []
    if named:
        raise ConfigError(
            f"{where}.{named[0]}: {where} holds the settings of the transfer's own method ({transfer}): write "
            f"{where}.<setting>, not {where}.<method>.<setting>"
        )
    return config() if peft is None else from_dict(config, peft, where)
