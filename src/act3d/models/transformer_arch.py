"""The record that rebuilds a pretrained Transformer's skeleton without its weight file (a teacher
checkpoint's `arch["transformer"]`; `act3d.models.pretrained.PretrainedTransformer`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from act3d.config import from_dict
from act3d.errors import CheckpointError, ConfigError

# what builds the blocks: act3d's pre-norm ViT blocks (`vit`), its post-norm BERT layers (`bert`), or the
# layers of the model `transformers` builds from `config` (`hf`)
BlockType = Literal["vit", "bert", "hf"]
_NEEDED: dict[str, tuple[str, ...]] = {
    "vit": ("heads", "hidden"),
    "bert": ("heads", "hidden", "eps"),
    "hf": ("config",),
}


@dataclass
class TransformerArch:
    type: BlockType
    width: int
    depth: int
    heads: int | None = None  # vit, bert
    hidden: int | None = None  # the MLP's width: vit, bert
    layer_scale: bool = False  # vit: DINOv2's LayerScale
    qkv_bias: bool = True  # vit
    eps: float | None = None  # LayerNorm eps: bert (its config); vit 1e-6 unless set (a CLIP tower's 1e-5)
    act: Literal["gelu", "quick_gelu"] = "gelu"  # vit: OpenAI CLIP's QuickGELU
    pre_norm: bool = False  # vit: a norm before the blocks (a CLIP tower's `norm_pre`)
    config: Any = None  # hf: the library's config, as `config.to_dict()` gives it
    builder: str | None = None  # hf: the transformers version and class that built it
    name: str | None = None  # what it is, for logs and reports

    def __post_init__(self) -> None:
        missing = [k for k in _NEEDED[self.type] if getattr(self, k) is None]
        if missing:
            raise CheckpointError(f"a {self.type} Transformer record needs {', '.join(missing)}")

    @classmethod
    def read(cls, record: TransformerArch | dict[str, Any]) -> TransformerArch:
        """A checkpoint's record of the architecture (or the record itself), checked; one line if unusable."""
        if isinstance(record, cls):
            return record
        try:
            return from_dict(cls, record, "transformer")
        except ConfigError as err:
            raise CheckpointError(f"its Transformer record: {err}") from None

    @property
    def vit_eps(self) -> float:
        return 1e-6 if self.eps is None else self.eps
