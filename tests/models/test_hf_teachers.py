"""Teachers built by `transformers` from `save_pretrained` folders: every family act3d drives, each a tiny
random model the library itself builds and saves; act3d's blocks and norms against the library's own."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from act3d.errors import CheckpointError  # noqa: E402
from act3d.models.hf_transformers import FAMILIES  # noqa: E402
from act3d.models.pretrained import PretrainedTransformer, TransformerConfig, build_transformer  # noqa: E402

SMALL = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 64}
IMAGE = {"image_size": 32, "patch_size": 8}


def tiny_models() -> dict:
    """family -> (the library model, the parts act3d must drive: layers, norm before, norm after)."""
    t = transformers
    clip = t.CLIPVisionConfig(**SMALL, **IMAGE)  # quick_gelu, pre_layrnorm: what timm files cannot say
    return {
        "vit": t.ViTModel(t.ViTConfig(**SMALL, **IMAGE), add_pooling_layer=False),
        "deit": t.DeiTModel(t.DeiTConfig(**SMALL, **IMAGE), add_pooling_layer=False),
        "vit_mae": t.ViTMAEModel(t.ViTMAEConfig(**SMALL, **IMAGE)),
        "dinov2": t.Dinov2Model(t.Dinov2Config(**SMALL, **IMAGE)),
        "dinov2_with_registers": t.Dinov2WithRegistersModel(t.Dinov2WithRegistersConfig(**SMALL, **IMAGE)),
        "clip_vision_model": t.CLIPVisionModel(clip),
        "clip": t.CLIPModel(
            t.CLIPConfig(vision_config=clip.to_dict(), text_config={**SMALL, "vocab_size": 50})
        ),
        "siglip_vision_model": t.SiglipVisionModel(t.SiglipVisionConfig(**SMALL, **IMAGE)),
        "bert": t.BertModel(t.BertConfig(**SMALL, vocab_size=50)),
        "roberta": t.RobertaModel(t.RobertaConfig(**SMALL, vocab_size=50)),
        "distilbert": t.DistilBertModel(
            t.DistilBertConfig(dim=32, n_layers=3, n_heads=2, hidden_dim=64, vocab_size=50)
        ),
    }


def library_features(model, family: str, x: torch.Tensor, depth: int) -> torch.Tensor:
    """What the library's own modules compute on act3d's tokens: norm before, the first `depth` layers,
    norm after (`FAMILIES`), each layer called as the library calls it, without a mask."""
    if family == "clip":
        model, family = model.vision_model, "clip_vision_model"
    layers_at, before, after = FAMILIES[family]
    h = model.get_submodule(before)(x) if before else x
    for layer in list(model.get_submodule(layers_at))[:depth]:
        out = layer(h, None)
        h = out[0] if isinstance(out, tuple) else out
    return model.get_submodule(after)(h) if after else h


@pytest.mark.parametrize("family", sorted(tiny_models()))
def test_act3d_drives_the_librarys_layers(family, tmp_path):
    torch.manual_seed(0)
    model = tiny_models()[family].eval()
    model.save_pretrained(tmp_path / family)
    x = torch.randn(2, 7, 32)
    for depth in (None, 2):
        teacher = build_transformer(
            TransformerConfig(kind="hf", path=str(tmp_path / family), depth=depth)
        ).eval()
        assert teacher.width == 32 and teacher.depth == (depth or 3)
        with torch.no_grad():
            h = teacher.input_norm(x)
            for block in teacher.blocks:
                h = block(h)
            ours, theirs = teacher.norm(h), library_features(model, family, x, depth or 3)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        # a checkpoint rebuilds it from the recorded config, without the folder
        again = PretrainedTransformer.skeleton(teacher.arch)
        again.load_state_dict(teacher.state_dict())
        with torch.no_grad():
            h = again.eval().input_norm(x)
            for block in again.blocks:
                h = block(h)
            torch.testing.assert_close(again.norm(h), ours, rtol=0, atol=0)
    assert teacher.arch.builder.startswith(f"transformers {transformers.__version__}")


def test_a_model_act3d_cannot_drive_is_refused_in_one_line(tmp_path):
    t = transformers
    swin = t.SwinModel(
        t.SwinConfig(embed_dim=16, depths=[1, 1], num_heads=[1, 1], image_size=32, patch_size=4)
    )
    swin.save_pretrained(tmp_path / "swin")
    with pytest.raises(CheckpointError, match="'swin' model, which act3d cannot drive layer by layer") as err:
        build_transformer(TransformerConfig(kind="hf", path=str(tmp_path / "swin")))
    assert "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="no config.json in it"):
        build_transformer(TransformerConfig(kind="hf", path=str(tmp_path)))


@pytest.mark.parametrize("family", ["dinov2", "clip", "roberta"])
def test_stage_one_trains_with_a_library_built_teacher_and_its_checkpoint_loads(
    family, teacher_cfg, tmp_path
):
    """A few Stage I steps around each kind (image, image-text, text); the checkpoint rebuilds the teacher
    from its recorded config, without the folder."""
    from act3d.models import zoo
    from act3d.train.stage1 import train_teacher

    model = tiny_models()[family]
    model.save_pretrained(tmp_path / family)
    teacher_cfg.model.transformer = TransformerConfig(kind="hf", path=str(tmp_path / family), depth=2)
    teacher_cfg.optim.max_steps = 2
    result = train_teacher(teacher_cfg, tmp_path / "s1")
    (tmp_path / family / "config.json").unlink()  # the folder is gone; the checkpoint is enough
    teacher, checkpoint = zoo.load(result.checkpoint, zoo.TEACHER)
    recorded = checkpoint["arch"]["transformer"]
    assert recorded["type"] == "hf" and recorded["depth"] == 2 and "transformers" in recorded["builder"]
    assert teacher.transformer.backbone.depth == 2


def test_without_transformers_it_is_one_line(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(CheckpointError, match=r"pip install 'act3d\[hf\]'"):
        build_transformer(TransformerConfig(kind="hf", path=str(tmp_path)))
