"""Pretrained Transformers built by Hugging Face `transformers` from a folder on disk (`config.json` and the
weights, as `save_pretrained` writes them): image encoders (ViT, DeiT, ViT-MAE, DINOv2 with and without
registers, CLIP's and SigLIP's vision towers) and text encoders (BERT, RoBERTa, DistilBERT, MiniLM).

act3d drives the model's own encoder layers and norms the way the official code drives a timm model's
`blocks` and `norm` (models/dvae.py, `build_visual_embedding`): its prompts and centre embedding go in,
the library's layers compute. What a family applies around its layers is kept where the model applies it:
CLIP's `pre_layrnorm` before them, as the official `CLIP:` path keeps `ln_pre`, and its `post_layernorm`
after; a BERT-family model's embedding LayerNorm before them, as act3d's BERT teacher. The model's own
embeddings (patches, words, positions, cls and register tokens) are not used: the point patches and
prompts take their place.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from act3d.errors import CheckpointError

# model_type -> (its encoder layers, the norm before them or None, the norm after them or None)
FAMILIES: dict[str, tuple[str, str | None, str | None]] = {
    "vit": ("layers", None, "layernorm"),
    "deit": ("layers", None, "layernorm"),
    "vit_mae": ("layers", None, "layernorm"),
    "dinov2": ("encoder.layer", None, "layernorm"),
    "dinov2_with_registers": ("encoder.layer", None, "layernorm"),
    "clip_vision_model": ("encoder.layers", "pre_layrnorm", "post_layernorm"),
    "siglip_vision_model": ("encoder.layers", None, "post_layernorm"),
    "bert": ("encoder.layer", "embeddings.LayerNorm", None),
    "roberta": ("encoder.layer", "embeddings.LayerNorm", None),
    "distilbert": ("transformer.layer", "embeddings.LayerNorm", None),
}
# a whole image-text model: its vision tower is the teacher
VISION_TOWERS = {"clip": "clip_vision_model", "siglip": "siglip_vision_model"}


class LayerCall(nn.Module):
    """One library layer as act3d calls a block: `(B, T, D) -> (B, T, D)`, no attention mask."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.layer(h, None)
        return out[0] if isinstance(out, tuple) else out


def _transformers():
    """The `transformers` module, or one line saying how to get it."""
    try:
        import transformers
    except ImportError:
        raise CheckpointError(
            "this teacher is built by Hugging Face transformers, which is not installed: "
            "pip install 'act3d[hf]'"
        ) from None
    return transformers


def model_from_config(config: dict) -> nn.Module:
    """The library's model of a `config.json` dict, randomly initialised (the weights come after)."""
    transformers = _transformers()
    fields = {k: v for k, v in config.items() if k != "model_type"}
    return transformers.AutoModel.from_config(
        transformers.AutoConfig.for_model(config["model_type"], **fields)
    )


def parts(
    model: nn.Module, model_type: str, depth: int | None
) -> tuple[list[nn.Module], nn.Module, nn.Module]:
    """(the first `depth` layers as `LayerCall`s, the norm before them, the norm after) of a library model."""
    layers_at, before, after = FAMILIES[model_type]
    layers = list(model.get_submodule(layers_at))
    if depth is not None and depth > len(layers):
        raise CheckpointError(f"asked for {depth} layers but the {model_type} model has {len(layers)}")
    before, after = (model.get_submodule(at) if at else nn.Identity() for at in (before, after))
    return [LayerCall(layer) for layer in layers[: depth or len(layers)]], before, after


def load_hf(folder: str | Path, depth: int | None = None) -> tuple[dict, nn.Module]:
    """A `save_pretrained` folder -> (the `PretrainedTransformer.arch` that rebuilds it, the loaded model)."""
    transformers = _transformers()
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: not a Hugging Face model folder (config.json missing)")
    try:
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(
            f"{folder}: transformers could not load it ({' '.join(str(err).split())})"
        ) from None
    model_type = model.config.model_type
    if model_type in VISION_TOWERS:  # CLIPModel / SiglipModel: its vision tower (a `*VisionModel`)
        model_type, model = VISION_TOWERS[model_type], model.vision_model
    if model_type not in FAMILIES:
        raise CheckpointError(
            f"{folder}: a {model_type!r} model, which act3d cannot drive layer by layer; expected one of "
            f"{', '.join(sorted(FAMILIES | VISION_TOWERS))}"
        )
    layers = len(model.get_submodule(FAMILIES[model_type][0]))
    if depth is not None and depth > layers:
        raise CheckpointError(f"{folder}: asked for {depth} layers but the model has {layers}")
    arch = {
        "type": "hf",
        "width": model.config.hidden_size,  # DistilBERT's `dim` too (its config maps the name)
        "depth": depth or layers,
        "config": model.config.to_dict(),
        "builder": f"transformers {transformers.__version__}: {type(model).__name__}",
    }
    return arch, model.eval()
