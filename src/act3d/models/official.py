"""The ACT authors' released checkpoints <-> act3d models, by renaming keys at the edge.

Official checkpoints (docs/method.md; RunpeiDong/ACT tools/builder.py `save_checkpoint`) are `torch.save`
dicts with the weights under `base_model`, keys in the official module names, and 1x1 convolutions where
act3d uses `Linear` (`(out, in, 1)` / `(out, in, 1, 1)` weights instead of `(out, in)`). One layout per
act3d model (`act3d.stages`), named as the model:

- `teacher`: the Stage I autoencoder (dVAE with the prompted image Transformer),
- `student`: the Stage II model (encoder under `ACT_encoder.`, decoder under `ACT_decoder.`),
- `classifier`: a fine-tuned classifier (encoder keys without prefix, head under `cls_head_finetune.`); a
  PEFT method's classifier as its repository saves it (its additions under their official names, next to
  the encoder's, `act3d.models.peft`),
- `segmenter`: act3d's own: the backbone under the official encoder names, the head under `act3d_head.`
  (what `export-official` writes for a segmenter; the official segmentation checkpoints are not read).

`import_official` reads one (`weights_only=True`, or a safetensors file) into an act3d checkpoint;
`export_official` writes an act3d checkpoint in the official layout as safetensors + a JSON of metadata.

An official Stage II checkpoint (`ACT_PointDistillation`, models/act.py) also carries weights act3d's
student does not use: the encoder's unused `lm_head` and `cls_head`, and the whole frozen Stage I model
under `dvae_tokenizer.`. Imported as a student they are set aside and listed; imported as a teacher, the
`dvae_tokenizer.` part is the Stage I model.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from act3d.atomic import atomic_file, names_a_folder, write_text_atomic
from act3d.config import from_dict, to_dict
from act3d.errors import CheckpointError
from act3d.models import zoo
from act3d.models.autoencoder import AutoencoderConfig
from act3d.models.checkpoint import (
    listing,
    load_checkpoint,
    load_state_strict,
    model_payload,
    read_weight_file,
    save_checkpoint,
)
from act3d.models.classifier import ClassifierHead
from act3d.models.kinds import ModelName, kind_of, model_of
from act3d.models.peft import METHODS, settings_of
from act3d.models.pretrained import PretrainedTransformer, vit_arch
from act3d.models.segmenter import SegmenterHead, feature_layers
from act3d.models.student import StudentConfig
from act3d.models.transformer_arch import TransformerArch
from act3d.ops.grouping import PatchConfig

Layout = ModelName  # each official layout holds the act3d model of the same name

_ENCODER = [  # student encoder: (act3d name, official name), prefixes unless they end without a dot
    ("cls_token", "cls_token"),
    ("cls_pos", "cls_pos"),
    ("patch_embed.", "encoder."),
    ("pos_embed.mlp.", "pos_embed."),
    ("blocks.blocks.", "blocks.blocks."),
    ("norm.", "norm."),
]
RENAMES: dict[str, list[tuple[str, str]]] = {
    "teacher": [
        ("patch_embed.", "encoder."),
        ("dgcnn_1.", "dgcnn_1."),
        ("codebook", "codebook"),
        ("proj_pre.", "proj_pre."),
        ("center_embed.mlp.", "visual_pos_embed."),
        ("transformer.prompt_tokens", "visual_prompt_token"),
        ("transformer.prompt_pos", "visual_prompt_pos"),
        ("transformer.deep_prompt_tokens", "deep_prompt_tokens"),
        ("transformer.deep_prompt_pos", "deep_prompt_pos"),
        ("transformer.backbone.blocks.", "visual_embed.0."),
        ("transformer.backbone.norm.", "visual_embed.1."),
        ("proj_post.", "proj_post."),
        ("dgcnn_2.", "dgcnn_2."),
        ("decoder.", "decoder."),
    ],
    "student": [("encoder." + a, "ACT_encoder." + o) for a, o in _ENCODER]
    + [
        ("mask_token", "mask_token"),
        ("decoder_pos_embed.mlp.", "decoder_pos_embed."),
        ("decoder.blocks.", "ACT_decoder.blocks."),
        ("decoder_norm.", "ACT_decoder.norm."),
        ("head.", "proj_head."),
    ],
    # with the PEFT methods' additions in their official names (each method's `official_names`)
    "classifier": [("encoder." + a, o) for a, o in _ENCODER]
    + [("head.", "cls_head_finetune.")]
    + [("peft." + a, o) for method in METHODS.values() for a, o in method.official_names],
    # the backbone travels in the official names, the head (laid out as part_segmentation/models/pt.py's,
    # with channels-last Linears) under act3d's own
    "segmenter": [("encoder." + a, o) for a, o in _ENCODER]
    + [
        ("category_embed.", "act3d_head.category_embed."),
        ("propagate.", "act3d_head.propagate."),
        ("head.", "act3d_head.head."),
    ],
}

# official Stage II weights with no act3d student counterpart (ACT_PointDistillation /
# VisableOnlyMaskTransformer)
UNUSED_BY_STUDENT = ("ACT_encoder.lm_head.", "ACT_encoder.cls_head.", "dvae_tokenizer.")  # prefixes
UNUSED_BY_STUDENT_NAMES = ("cls_pos",)  # the decoder's cls position of the cls_loss variant
TOKENIZER_PREFIX = "dvae_tokenizer."

# official weights stored as 1x1 convolutions: Conv1d `(out, in, 1)` and, in DGCNN's edge convs, Conv2d
_CONV1D = re.compile(
    r"(^|\.)(encoder\.(first|second)_conv\.[03]|input_trans|layer5\.0|final_conv\.[036])\.weight$"
)
_CONV2D = re.compile(r"(^|\.)dgcnn_[12]\.layer[1-4]\.0\.weight$")


# official modules registered under two names, whose weights the official state dict holds under both (a PEFT
# method's `official_aliases`: IDPT's prompt generator), and the official loaders are strict. (alias prefix,
# the prefix act3d's names map to)
ALIASES: dict[str, list[tuple[str, str]]] = {
    "classifier": [pair for method in METHODS.values() for pair in method.official_aliases]
}


def with_aliases(state: dict[str, torch.Tensor], layout: Layout) -> dict[str, torch.Tensor]:
    """Official names -> the same, plus every alias the official model's state dict also holds."""
    out = dict(state)
    for alias, name in ALIASES.get(layout, []):
        out |= {alias + k[len(name) :]: v.clone() for k, v in state.items() if k.startswith(name)}
    return out


def unaliased(name: str, layout: Layout) -> str:
    """An official name with an alias prefix (`ALIASES`) replaced by the name act3d maps to (the official
    model's `named_parameters` reports a shared module under the name it was registered with first)."""
    for alias, original in ALIASES.get(layout, []):
        if name.startswith(alias):
            return original + name[len(alias) :]
    return name


def without_aliases(state: dict[str, torch.Tensor], layout: Layout) -> dict[str, torch.Tensor]:
    """Official names with the alias copies set aside, after checking each equals its original (a file whose
    two copies differ is refused: the official model cannot have written it)."""
    out = dict(state)
    for alias, name in ALIASES.get(layout, []):
        for key in [k for k in state if k.startswith(alias)]:
            original = name + key[len(alias) :]
            if original in state and not torch.equal(state[original], state[key]):
                raise CheckpointError(
                    f"{key} and {original} are one official module's weights but differ in this file"
                )
            if original in state:
                del out[key]
    return out


def _rename(name: str, pairs: list[tuple[str, str]], reverse: bool) -> str | None:
    for act3d_name, official_name in pairs:
        src, dst = (official_name, act3d_name) if reverse else (act3d_name, official_name)
        if src.endswith(".") and name.startswith(src):
            return dst + name[len(src) :]
        if name == src:
            return dst
    return None


def _official_ndim(official_name: str) -> int:
    return 4 if _CONV2D.search(official_name) else 3 if _CONV1D.search(official_name) else 0


def official_names(names: list[str], layout: Layout) -> dict[str, str]:
    """act3d name -> official name, for every name; raises for one without an official counterpart."""
    out = {name: _rename(name, RENAMES[layout], reverse=False) for name in names}
    unmapped = [name for name, official in out.items() if official is None]
    if unmapped:
        raise CheckpointError(
            f"these act3d weights have no counterpart in the official {layout} layout "
            f"(official ACT teachers are ViTs): {listing(unmapped)}"
        )
    return out  # type: ignore[return-value]


def to_official(state: dict[str, torch.Tensor], layout: Layout) -> dict[str, torch.Tensor]:
    """act3d state dict -> official names and shapes."""
    out = {}
    for name, official in official_names(list(state), layout).items():
        tensor, ndim = state[name], _official_ndim(official)
        out[official] = tensor.reshape(*tensor.shape, *([1] * (ndim - tensor.dim()))) if ndim else tensor
    return with_aliases(out, layout)


def from_official(
    state: dict[str, torch.Tensor], layout: Layout, expected: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Official names and shapes -> an act3d state dict matching `expected` (the target model's state dict).

    Raises `CheckpointError` listing the missing keys, the unexpected keys (both in official names) and the
    shape mismatches, so a checkpoint of another model or size fails with a message that says why.
    """
    state = without_aliases(state, layout)
    wanted = {official: name for name, official in official_names(list(expected), layout).items()}
    missing = sorted(o for o in wanted if o not in state)
    unexpected = sorted(k for k in state if k not in wanted)
    out, wrong = {}, []
    for official, name in wanted.items():
        if official not in state:
            continue
        tensor, shape = state[official], expected[name].shape
        if tensor.dim() > len(shape) and all(s == 1 for s in tensor.shape[len(shape) :]):
            tensor = tensor.reshape(tensor.shape[: len(shape)])  # 1x1 convolution -> Linear
        if tensor.shape != shape:
            wrong.append(f"{official} {tuple(state[official].shape)}, act3d needs {tuple(shape)}")
        out[name] = tensor
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"the checkpoint does not fit the act3d {layout} model: "
            f"missing keys {listing(missing)}; unexpected keys {listing(unexpected)}; "
            f"shape mismatches {listing(wrong)}"
        )
    return out


def _arch(layout: Layout, config: dict[str, Any], state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The act3d `arch` a layout's weights go into: sizes from the run configuration `config` (a preset),
    and from the weights where they tell (class count, teacher blocks, Stage II head width)."""
    patching, student = (
        from_dict(PatchConfig, config["patching"]),
        from_dict(StudentConfig, config.get("student", {})),
    )
    if layout == "classifier":
        head = [k for k in state if re.fullmatch(r"cls_head_finetune\.(\d+\.)?weight", k)]
        if not head:
            raise CheckpointError("no cls_head_finetune.* weights: not a fine-tuned classifier checkpoint")
        last = max(head, key=lambda k: int(k.split(".")[1]) if k.count(".") == 2 else -1)  # the output layer
        names = [f"class_{i}" for i in range(state[last].shape[0])]
        check_method(state, config["transfer"])
        head = ClassifierHead(
            len(names),
            config["transfer"],
            config["head_dropout"],
            config.get("frozen_backbone_mode", "train"),
            config.get("peft"),
        )
        return zoo.classifier_arch(student, patching, config["data"]["num_points"], names, head)
    if layout == "student":
        target = (
            state["proj_head.weight"].shape[0]
            if student.target == "act" and "proj_head.weight" in state
            else None
        )
        return zoo.student_arch(student, patching, target, config["data"]["num_points"])
    if layout == "segmenter":
        categories = (
            state["act3d_head.category_embed.0.weight"].shape[1]
            if "act3d_head.category_embed.0.weight" in state
            else 0
        )
        feat = student.width * len(feature_layers(student.depth))
        linears = {  # the Linear weights of each head part, in order (BatchNorm weights are 1-D)
            part: [v for k, v in state.items() if k.startswith(f"act3d_head.{part}.") and v.dim() == 2]
            for part in ("propagate", "head")
        }
        names = (
            [f"class_{i}" for i in range(categories)] if categories else list(config.get("class_names", []))
        )
        head = SegmenterHead(
            num_classes=linears["head"][-1].shape[0],
            num_categories=categories,
            point_extra=linears["propagate"][0].shape[1] - feat - 3,
            propagation=[w.shape[0] for w in linears["propagate"]],
            hidden=[w.shape[0] for w in linears["head"][:-1]],
        )
        return zoo.segmenter_arch(
            student, patching, config["data"]["num_points"], config["task"], names, head
        )
    model_cfg = from_dict(AutoencoderConfig, config["model"])
    backbone = PretrainedTransformer.skeleton(_vit_arch(state, model_cfg.transformer.heads))
    return zoo.teacher_arch(model_cfg, patching, backbone)


def method_of(state: dict[str, torch.Tensor]) -> str:
    """The transfer an official classifier checkpoint was trained with, read off its key names: a PEFT
    method whose additions it holds (its `official_mark`), else `full` (which `linear` and `mlp3` checkpoints
    also read as)."""
    return next((m for m, method in METHODS.items() if any(method.official_mark in k for k in state)), "full")


def check_method(state: dict[str, torch.Tensor], transfer: str) -> None:
    """Refuse, in one line, to read one method's classifier checkpoint as another's."""
    found = method_of(state)
    if found != transfer and (found in METHODS or transfer in METHODS):
        what = f"{found} ({METHODS[found].official_mark}* weights)" if found in METHODS else "no PEFT weights"
        raise CheckpointError(
            f"the checkpoint holds a classifier with {what}, the configuration builds transfer {transfer}; "
            f"expected a {transfer} checkpoint, or a preset of {found}"
        )


def _vit_arch(state: dict[str, torch.Tensor], heads: int | None) -> TransformerArch:
    """The teacher's ViT architecture read off the official weights (`visual_embed.0.<i>.`, the timm blocks)."""
    if not any(k.startswith("visual_embed.0.") for k in state):
        raise CheckpointError("no visual_embed.0.* weights: not an official Stage I checkpoint")
    arch = vit_arch(state, heads, "the official checkpoint", prefix="visual_embed.0.")
    return replace(arch, name="official ACT teacher")


def select_layout_weights(
    official: dict[str, torch.Tensor], layout: Layout
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The weights of `official` that the act3d `layout` model takes, and the names set aside.

    A student drops the Stage II extras (`UNUSED_BY_STUDENT`); a teacher read from a Stage II checkpoint is
    its `dvae_tokenizer.` part."""
    if layout == "teacher" and any(k.startswith(TOKENIZER_PREFIX) for k in official):
        kept = {
            k.removeprefix(TOKENIZER_PREFIX): v for k, v in official.items() if k.startswith(TOKENIZER_PREFIX)
        }
        return kept, sorted(k for k in official if not k.startswith(TOKENIZER_PREFIX))
    if layout == "student":
        unused = sorted(
            k for k in official if k in UNUSED_BY_STUDENT_NAMES or k.startswith(UNUSED_BY_STUDENT)
        )
        return {k: v for k, v in official.items() if k not in unused}, unused
    return official, []


def import_official(
    path: str | Path, layout: Layout, config: dict[str, Any], out: str | Path
) -> tuple[Path, list[str]]:
    """Convert an official checkpoint into an act3d checkpoint at `out` (loadable by every act3d command).

    `config` is the act3d run configuration (e.g. a paper preset) describing the architecture. Returns the
    written path and the official weight names that were set aside (see `select_layout_weights`).
    """
    official, ignored = select_layout_weights(read_weight_file(path), layout)
    kind = kind_of(layout)
    arch = _arch(layout, config, official)
    record = exported_record(path, layout)
    if record is not None and layout == "classifier":
        check_recorded_method(record, arch, str(path))
    names = (record or {}).get("arch", {}).get("class_names")
    if "class_names" in arch and isinstance(names, list) and len(names) == len(arch["class_names"]):
        arch["class_names"] = [str(n) for n in names]  # the names act3d exported with the weights
    model = zoo.build(kind, arch)
    load_state_strict(model, from_official(official, layout, model.state_dict()), str(path))
    payload = model_payload(
        kind, model.state_dict(), 0, config, arch, source=str(path), ignored_official_keys=ignored
    )
    saved = save_checkpoint(out, payload)
    return saved, ignored


def exported_record(path: str | Path, layout: Layout) -> dict[str, Any] | None:
    """The JSON `export_official` wrote beside an exported weight file (`X.json` beside `X.safetensors`),
    when there is one of this layout: it holds what the official weights cannot say (the class names)."""
    meta = Path(path).with_suffix(".json")
    if Path(path).suffix != ".safetensors" or not meta.is_file():
        return None
    try:
        record = json.loads(meta.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(record, dict) and record.get("layout") == layout and isinstance(record.get("arch"), dict)
    return record if ok else None


def check_recorded_method(record: dict[str, Any], arch: dict[str, Any], source: str) -> None:
    """Refuse a classifier whose export record names another transfer, or other settings of its PEFT method,
    than the configuration builds: settings such as IDPT's `prompt_layer` change the computation without
    changing a weight's shape, so the weights would load silently into another model. (An official file
    records none of them: there the preset must be the one it was trained with.)"""
    theirs, ours = record["arch"].get("head"), arch.get("head")
    if not isinstance(theirs, dict) or not isinstance(ours, dict):
        return
    method = ours["transfer"]
    if theirs.get("transfer") != method:
        raise CheckpointError(
            f"{source}: its export record says transfer {theirs.get('transfer')}, the configuration builds "
            f"{method}; choose that method's preset"
        )
    if method not in METHODS:
        return
    recorded = to_dict(settings_of(method, theirs.get("peft"), f"{source}: peft"))
    built = to_dict(settings_of(method, ours.get("peft")))
    differ = sorted(k for k in recorded if k not in METHODS[method].training_only and recorded[k] != built[k])
    if differ:
        said = ", ".join(f"peft.{k} {recorded[k]!r} (configuration: {built[k]!r})" for k in differ)
        raise CheckpointError(
            f"{source}: trained with {said}; import it with those settings (--set), or they would compute "
            "another network"
        )


def export_paths(out: str | Path) -> tuple[Path, Path]:
    """The two files `export_official` writes for `out`: `out.safetensors` and `out.json`, the suffixes added
    (`dir/model.v2` -> `dir/model.v2.safetensors`), or put in place of a `.safetensors` / `.json` given."""
    if names_a_folder(out):
        raise CheckpointError(
            f"--out {out}: is a folder; expected a path without suffix, e.g. {Path(out) / 'model'}"
        )
    out = Path(out)
    if out.suffix in (".safetensors", ".json"):
        out = out.with_suffix("")
    return out.with_name(out.name + ".safetensors"), out.with_name(out.name + ".json")


def check_exportable(ckpt: dict[str, Any], source: str) -> None:
    """Refuse a teacher whose Transformer the official layout cannot carry: the official ACT teacher is a
    timm ViT (`visual_embed`), read back with the architecture its weights show (`_vit_arch`); a teacher
    built by transformers, a BERT-family one, or a ViT with parts that layout has no name for (a CLIP
    tower's pre-norm and activation) would come back as another network, or not at all."""
    if ckpt["kind"] != zoo.TEACHER:
        return
    arch = TransformerArch.read(ckpt["arch"]["transformer"])
    if arch.type != "vit":
        what = arch.builder or f"a {arch.type} Transformer"
        raise CheckpointError(
            f"{source}: its teacher is {what}; the official ACT layout holds timm ViT teachers only, so an export "
            "would not read back: keep the act3d checkpoint"
        )
    plain = {"pre_norm": False, "act": "gelu", "eps": None}  # a timm ViT's: what the official layout implies
    extra = {k: getattr(arch, k) for k, v in plain.items() if getattr(arch, k) != v}
    if extra:
        raise CheckpointError(
            f"{source}: its teacher ViT has {extra}, which the official ACT layout cannot record; keep the act3d "
            "checkpoint"
        )


def export_official(checkpoint: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Write an act3d checkpoint in the official layout: `out.safetensors` (weights) + `out.json` (metadata)
    (`export_paths`), each written whole or not at all."""
    from safetensors.torch import save

    ckpt = load_checkpoint(checkpoint, zoo.KINDS)
    check_exportable(ckpt, str(checkpoint))
    layout = model_of(ckpt["kind"])
    weights = {k: v.contiguous() for k, v in to_official(ckpt["model"], layout).items()}
    weights_path, meta_path = export_paths(out)
    with atomic_file(weights_path, "wb") as f:
        f.write(save(weights, metadata={"layout": f"ACT official ({layout})"}))
    meta = {
        "layout": layout,
        "act3d_kind": ckpt["kind"],
        "source": str(checkpoint),
        "step": ckpt.get("step"),
        "arch": ckpt["arch"],
        "config": ckpt.get("config"),
    }
    write_text_atomic(meta_path, json.dumps(meta, indent=2) + "\n")
    return weights_path, meta_path
