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

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from act3d.errors import CheckpointError
from act3d.models.checkpoint import listing
from act3d.models.transformer_arch import TransformerArch

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
    """One library layer as act3d calls a block: `(B, T, D) -> (B, T, D)`, no attention mask. Every family's
    layer takes `attention_mask` by that name (transformers >= 5; CLIP's and SigLIP's without a default)."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.layer(h, attention_mask=None)
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


@contextlib.contextmanager
def _quiet(transformers) -> Iterator[None]:
    """transformers' own warnings, load reports and progress bars held back: act3d checks what they report
    (`load_hf`) and says it in one line."""
    verbosity = transformers.utils.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.utils.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def refuse_custom_code(config: dict, source: str) -> None:
    """A config that names code of its own (`auto_map`, as `trust_remote_code` would run) is refused: act3d
    never runs code from a model folder or a checkpoint, and never offers to."""
    if config.get("auto_map"):
        names = ", ".join(f"{k} -> {v}" for k, v in sorted(config["auto_map"].items()))
        raise CheckpointError(
            f"{source}: its config.json names model code of its own (auto_map: {names}); act3d never runs code "
            "from a model folder: use a model whose type transformers defines"
        )


def model_from_config(config: dict) -> nn.Module:
    """The library's model of a `config.json` dict, randomly initialised (the weights come after)."""
    transformers = _transformers()
    refuse_custom_code(config, "the teacher's recorded config")
    fields = {k: v for k, v in config.items() if k != "model_type"}
    try:
        with _quiet(transformers):
            return transformers.AutoModel.from_config(
                transformers.AutoConfig.for_model(config["model_type"], **fields), trust_remote_code=False
            )
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"this teacher is a {config.get('model_type')!r} model built by transformers, which transformers "
            f"{transformers.__version__} here cannot build ({' '.join(str(err).split())[:200]}); install the "
            "transformers version that trained it"
        ) from None


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


def used_prefixes(model_type: str, depth: int) -> list[str]:
    """The names (below the driven model) of the weights act3d computes with: its first `depth` layers and
    its norms."""
    layers_at, before, after = FAMILIES[model_type]
    return [f"{layers_at}.{i}." for i in range(depth)] + [f"{at}." for at in (before, after) if at]


# weight files transformers may read that are pickles: act3d never unpickles a model folder's files
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")


def read_folder_config(folder: Path) -> dict:
    """The folder's `config.json`, after checking that the folder holds safetensors weights and no custom
    code, each refusal in one line."""
    if not folder.exists():
        raise CheckpointError(f"{folder}: no such folder (model.transformer.path)")
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder}: a file; teacher kind hf reads a Hugging Face model folder (config.json + "
            "model.safetensors, as save_pretrained writes it)"
        )
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: not a Hugging Face model folder (no config.json in it)")
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{folder / 'config.json'}: not readable JSON ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise CheckpointError(f"{folder / 'config.json'}: has no model_type; not a transformers config")
    refuse_custom_code(config, str(folder))
    if not any((folder / n).is_file() for n in ("model.safetensors", "model.safetensors.index.json")):
        pickled = [n for n in PICKLED_WEIGHTS if (folder / n).is_file()]
        if pickled:
            raise CheckpointError(
                f"{folder}: its weights are in {pickled[0]}, a format act3d does not read (a pickle can run "
                "code when loaded); convert them to model.safetensors (save_pretrained writes it by default)"
            )
        raise CheckpointError(f"{folder}: no model.safetensors in it (the weights save_pretrained writes)")
    return config


def load_hf(folder: str | Path, depth: int | None = None) -> tuple[TransformerArch, nn.Module]:
    """A `save_pretrained` folder -> (the `PretrainedTransformer.arch` that rebuilds it, the loaded model).

    Read safely: safetensors only (a pickled `pytorch_model.bin` is refused), `trust_remote_code=False`
    (a config naming its own code is refused before transformers sees it), no network. Refused in one line,
    since the teacher would otherwise compute with weights it never loaded: weights missing for a layer or
    norm act3d drives (names that match nothing, a config claiming more layers than the file holds),
    weights of another shape than the config says, NaN or inf weights."""
    transformers = _transformers()
    folder = Path(folder)
    config = read_folder_config(folder)
    try:
        with _quiet(transformers):
            model, info = transformers.AutoModel.from_pretrained(
                folder,
                local_files_only=True,
                trust_remote_code=False,
                use_safetensors=True,
                output_loading_info=True,
                ignore_mismatched_sizes=True,  # named below, in one line
            )
    except Exception as err:  # a truncated file, a config that lies about widths, an unknown type, ...
        reason = " ".join(str(err).split())
        raise CheckpointError(
            f"{folder}: transformers {transformers.__version__} could not load this "
            f"{config['model_type']!r} model ({type(err).__name__}: {reason[:300]})"
        ) from None
    if info["mismatched_keys"]:
        wrong = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info["mismatched_keys"])
        raise CheckpointError(
            f"{folder}: model.safetensors holds weights of other shapes than its config.json says "
            f"({listing(wrong, 4)}); the folder's config and weights do not belong together"
        )
    model_type, tower = model.config.model_type, ""
    if model_type in VISION_TOWERS:  # CLIPModel / SiglipModel: its vision tower (a `*VisionModel`)
        model_type, model, tower = VISION_TOWERS[model_type], model.vision_model, "vision_model."
    if model_type not in FAMILIES:
        raise CheckpointError(
            f"{folder}: a {model_type!r} model, which act3d cannot drive layer by layer; expected one of "
            f"{', '.join(sorted(FAMILIES | VISION_TOWERS))}"
        )
    layers = len(model.get_submodule(FAMILIES[model_type][0]))
    if depth is not None and depth > layers:
        raise CheckpointError(f"{folder}: asked for {depth} layers but the model has {layers}")
    used = used_prefixes(model_type, depth or layers)
    missing = sorted(
        k
        for k in info["missing_keys"]
        if k.removeprefix(tower).startswith(tuple(used)) and k.startswith(tower)
    )
    if missing:
        raise CheckpointError(
            f"{folder}: model.safetensors lacks weights of layers act3d would use, which would stay random: "
            f"missing {listing(missing)}; check that its names and num_hidden_layers match the file"
        )
    broken = [
        name
        for name, p in model.state_dict().items()
        if name.startswith(tuple(used)) and p.is_floating_point() and not torch.isfinite(p).all()
    ]
    if broken:
        raise CheckpointError(f"{folder}: holds NaN/inf weights ({listing(broken, 4)})")
    arch = TransformerArch(
        "hf",
        model.config.hidden_size,  # DistilBERT's `dim` too (its config maps the name)
        depth or layers,
        config=model.config.to_dict(),
        builder=f"transformers {transformers.__version__}: {type(model).__name__}",
    )
    return arch, model.eval()
