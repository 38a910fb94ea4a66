"""Official ACT checkpoints: small files written here with the official key names and shape conventions
(RunpeiDong/ACT tools/builder.py, models/act.py) are imported, used, exported and refused when they do not fit."""

import json
import pickle

import pytest
import torch
import yaml
from conftest import load_classifier
from safetensors.torch import load_file

from act3d.cli import main
from act3d.config import to_dict
from act3d.errors import CheckpointError
from act3d.models import zoo
from act3d.models.checkpoint import load_checkpoint, save_checkpoint
from act3d.models.official import export_official, import_official, to_official
from act3d.ops.grouping import group_patches
from act3d.train.finetune import build_classifier, classifier_arch
from act3d.train.stage1 import build_autoencoder

W, DEPTH, CLASSES = 32, 2, 5  # TINY_STUDENT: width 32, depth 2; mini-PointNet 16 -> 32, 64 -> 32


def _official_student_encoder(prefix: str) -> dict[str, torch.Tensor]:
    """Encoder weights named and shaped as in the official release (1x1 Conv1d, fused qkv without bias)."""
    r = torch.randn
    s = {
        f"{prefix}cls_token": r(1, 1, W),
        f"{prefix}cls_pos": r(1, 1, W),
        f"{prefix}encoder.first_conv.0.weight": r(16, 3, 1),
        f"{prefix}encoder.first_conv.0.bias": r(16),
        f"{prefix}encoder.first_conv.3.weight": r(32, 16, 1),
        f"{prefix}encoder.first_conv.3.bias": r(32),
        f"{prefix}encoder.second_conv.0.weight": r(64, 64, 1),
        f"{prefix}encoder.second_conv.0.bias": r(64),
        f"{prefix}encoder.second_conv.3.weight": r(W, 64, 1),
        f"{prefix}encoder.second_conv.3.bias": r(W),
        f"{prefix}pos_embed.0.weight": r(128, 3),
        f"{prefix}pos_embed.0.bias": r(128),
        f"{prefix}pos_embed.2.weight": r(W, 128),
        f"{prefix}pos_embed.2.bias": r(W),
        f"{prefix}norm.weight": r(W),
        f"{prefix}norm.bias": r(W),
    }
    for bn, c in (("first_conv.1", 16), ("second_conv.1", 64)):
        s |= _batchnorm(f"{prefix}encoder.{bn}", c)
    for i in range(DEPTH):
        s |= _block(f"{prefix}blocks.blocks.{i}", W)
    return s


def _official_student_decoder(target_dim: int) -> dict[str, torch.Tensor]:
    """ACT_PointDistillation's decoder side (models/act.py): mask token, positions, one block, head."""
    r = torch.randn
    return {
        "mask_token": r(1, 1, W),
        "decoder_pos_embed.0.weight": r(128, 3),
        "decoder_pos_embed.0.bias": r(128),
        "decoder_pos_embed.2.weight": r(W, 128),
        "decoder_pos_embed.2.bias": r(W),
        "ACT_decoder.norm.weight": r(W),
        "ACT_decoder.norm.bias": r(W),
        "proj_head.weight": r(target_dim, W),
        "proj_head.bias": r(target_dim),
    } | _block("ACT_decoder.blocks.0", W)


def _block(p: str, w: int) -> dict[str, torch.Tensor]:
    r = torch.randn
    return {
        f"{p}.norm1.weight": r(w),
        f"{p}.norm1.bias": r(w),
        f"{p}.attn.qkv.weight": r(3 * w, w),
        f"{p}.attn.proj.weight": r(w, w),
        f"{p}.attn.proj.bias": r(w),
        f"{p}.norm2.weight": r(w),
        f"{p}.norm2.bias": r(w),
        f"{p}.mlp.fc1.weight": r(4 * w, w),
        f"{p}.mlp.fc1.bias": r(4 * w),
        f"{p}.mlp.fc2.weight": r(w, 4 * w),
        f"{p}.mlp.fc2.bias": r(w),
    }


def _batchnorm(p: str, c: int) -> dict[str, torch.Tensor]:
    return {
        f"{p}.weight": torch.randn(c),
        f"{p}.bias": torch.randn(c),
        f"{p}.running_mean": torch.randn(c),
        f"{p}.running_var": torch.rand(c) + 0.5,
        f"{p}.num_batches_tracked": torch.tensor(7),
    }


def _official_classifier() -> dict[str, torch.Tensor]:
    s = _official_student_encoder("")
    s |= {
        "cls_head_finetune.0.weight": torch.randn(256, 2 * W),
        "cls_head_finetune.0.bias": torch.randn(256),
        "cls_head_finetune.4.weight": torch.randn(256, 256),
        "cls_head_finetune.4.bias": torch.randn(256),
        "cls_head_finetune.8.weight": torch.randn(CLASSES, 256),
        "cls_head_finetune.8.bias": torch.randn(CLASSES),
    }
    return s | _batchnorm("cls_head_finetune.1", 256) | _batchnorm("cls_head_finetune.5", 256)


@pytest.mark.parametrize("numpy_era", ["numpy 2 (numpy._core)", "numpy 1 (numpy.core)"])
def test_a_fine_tuned_checkpoint_as_the_official_runner_saves_it_imports(numpy_era, finetune_cfg, tmp_path):
    """ACT's save_checkpoint (tools/builder.py) stores the optimiser, the epoch and `metrics` / `best_metrics`
    whose `acc` is scikit-learn's accuracy_score(...) * 100., a numpy.float64 (runner_finetune.py l.286-287):
    read with exactly the numpy scalar globals allowed, as the official sklearn of either numpy era pickles
    it; anything else in a pickle stays refused."""
    import numpy as np

    from act3d.cli import main

    official = _official_classifier()
    params = [torch.nn.Parameter(v.clone()) for v in official.values() if v.is_floating_point()]
    optimizer = torch.optim.AdamW(params, lr=5e-4)
    optimizer.zero_grad()
    sum(p.sum() for p in params).backward()
    optimizer.step()
    accuracy = np.float64(88.21)
    ckpt = {
        "base_model": {f"module.{k}": v for k, v in official.items()},
        "optimizer": optimizer.state_dict(),
        "epoch": 299,
        "metrics": {"acc": accuracy},
        "best_metrics": {"acc": accuracy},
    }
    path = tmp_path / "ckpt-best.pth"
    if numpy_era.startswith("numpy 2"):
        torch.save(ckpt, path)
    else:  # the pickle as numpy 1 wrote it: the scalar constructor under numpy.core
        torch.save(ckpt, path, _use_new_zipfile_serialization=False)
        data = path.read_bytes()
        assert data.count(b"numpy._core.multiarray\nscalar") == 1  # pickled once, then memoised
        path.write_bytes(data.replace(b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar"))
    config = tmp_path / "ft.yaml"
    config.write_text(yaml.safe_dump(to_dict(finetune_cfg)))
    argv = ["import-official", str(path), "--layout", "classifier", "--config", str(config)]
    assert main([*argv, "--out", str(tmp_path / "act3d.pt")]) == 0
    model, _, _ = load_classifier(tmp_path / "act3d.pt")
    torch.testing.assert_close(model.head[8].weight, official["cls_head_finetune.8.weight"])


def test_official_classifier_imports_and_lands_where_it_belongs(finetune_cfg, tmp_path):
    official = _official_classifier()
    path = tmp_path / "ckpt-best.pth"  # as the official trainer writes it: DataParallel prefix, extra entries
    torch.save(
        {
            "base_model": {f"module.{k}": v for k, v in official.items()},
            "epoch": 299,
            "best_metrics": {"acc": 88.2},
        },
        path,
    )
    out, _ = import_official(path, "classifier", to_dict(finetune_cfg), tmp_path / "act3d.pt")
    model, _, names = load_classifier(out)
    assert len(names) == CLASSES
    torch.testing.assert_close(
        model.encoder.patch_embed.first_conv[0].weight, official["encoder.first_conv.0.weight"][..., 0]
    )
    torch.testing.assert_close(model.encoder.pos_embed.mlp[2].bias, official["pos_embed.2.bias"])
    torch.testing.assert_close(
        model.encoder.blocks.blocks[1].attn.qkv.weight, official["blocks.blocks.1.attn.qkv.weight"]
    )
    torch.testing.assert_close(model.head[8].weight, official["cls_head_finetune.8.weight"])
    torch.testing.assert_close(model.head[5].running_var, official["cls_head_finetune.5.running_var"])
    assert model(torch.randn(2, 64, 3)).shape == (2, CLASSES)

    weights, meta = export_official(out, tmp_path / "exported")
    back = load_file(str(weights))
    assert back.keys() == official.keys()
    for k, v in official.items():
        torch.testing.assert_close(back[k], v, msg=k)  # 1x1 convolution shapes restored
    assert json.loads(meta.read_text())["layout"] == "classifier"


def test_mismatched_official_checkpoint_lists_missing_unexpected_and_misshaped_keys(finetune_cfg, tmp_path):
    official = _official_classifier()
    del official["blocks.blocks.1.mlp.fc2.bias"]
    official["blocks.blocks.2.norm1.weight"] = torch.randn(W)  # a deeper model
    official["cls_pos"] = torch.randn(1, 1, 2 * W)
    torch.save({"base_model": official}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        import_official(tmp_path / "bad.pth", "classifier", to_dict(finetune_cfg), tmp_path / "act3d.pt")
    message = str(err.value)
    assert "missing keys (1) blocks.blocks.1.mlp.fc2.bias" in message
    assert "unexpected keys (1) blocks.blocks.2.norm1.weight" in message
    assert "cls_pos (1, 1, 64), act3d needs (1, 1, 32)" in message
    assert not (tmp_path / "act3d.pt").exists()


def test_official_student_round_trip(pretrain_cfg, tmp_path):
    official = _official_student_encoder("ACT_encoder.")
    official |= _official_student_decoder(48)
    torch.save({"base_model": official}, tmp_path / "pretrain.pth")
    out, _ = import_official(
        tmp_path / "pretrain.pth", "student", to_dict(pretrain_cfg), tmp_path / "student.pt"
    )
    encoder, _ = zoo.load_student(out)
    torch.testing.assert_close(encoder.cls_token, official["ACT_encoder.cls_token"])
    torch.testing.assert_close(
        encoder.patch_embed.second_conv[3].weight,
        official["ACT_encoder.encoder.second_conv.3.weight"][..., 0],
    )
    # the exported safetensors file imports back to the same weights
    weights, _ = export_official(out, tmp_path / "student-official")
    again, _ = import_official(weights, "student", to_dict(pretrain_cfg), tmp_path / "again.pt")
    a, b = torch.load(out, weights_only=True)["model"], torch.load(again, weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_official_teacher_round_trip(teacher_cfg, tmp_path):
    torch.manual_seed(0)
    model = build_autoencoder(teacher_cfg).eval()
    official = to_official(model.state_dict(), "teacher")
    # the official names and conv shapes of the spec
    assert official["dgcnn_1.layer1.0.weight"].dim() == 4 and official["dgcnn_2.layer5.0.weight"].dim() == 3
    assert (
        official["encoder.first_conv.0.weight"].shape[-1] == 1
        and official["decoder.final_conv.6.weight"].dim() == 3
    )
    for key in (
        "codebook",
        "visual_prompt_token",
        "visual_prompt_pos",
        "deep_prompt_tokens",
        "visual_pos_embed.0.weight",
        "visual_embed.0.1.mlp.fc2.weight",
        "visual_embed.1.weight",
        "proj_pre.weight",
        "proj_post.weight",
    ):
        assert key in official, key
    torch.save({"base_model": official}, tmp_path / "dvae.pth")
    out, _ = import_official(tmp_path / "dvae.pth", "teacher", to_dict(teacher_cfg), tmp_path / "teacher.pt")
    loaded = zoo.load_teacher(out)  # rebuilt from the weights alone, no teacher file needed
    patches = group_patches(torch.randn(2, 64, 3), 8, 8)
    with torch.no_grad():  # the target draws a Gumbel one-hot token per patch: same seed, same draw
        expected = torch.manual_seed(1) and model.teacher_features(patches)
        torch.testing.assert_close(torch.manual_seed(1) and loaded.teacher_features(patches), expected)


def _official_stage2_checkpoint(teacher_cfg, path):
    """Everything tools/runner_pretrain.py saves for ACT_PointDistillation (models/act.py): the student, its
    decoder and head, the encoder's unused lm_head and cls_head, the cls_loss position and the whole frozen
    Stage I model under dvae_tokenizer., with DataParallel's prefix, next to optimizer state and metrics."""
    torch.manual_seed(0)
    teacher = build_autoencoder(teacher_cfg).eval()
    state = _official_student_encoder("ACT_encoder.")
    state |= {
        "ACT_encoder.lm_head.weight": torch.randn(16, W),
        "ACT_encoder.lm_head.bias": torch.randn(16),
        "ACT_encoder.cls_head.0.weight": torch.randn(W, W),
        "ACT_encoder.cls_head.0.bias": torch.randn(W),
        "ACT_encoder.cls_head.2.weight": torch.randn(W, W),
        "ACT_encoder.cls_head.2.bias": torch.randn(W),
        "cls_pos": torch.randn(1, 1, W),
    }
    state |= _official_student_decoder(32)
    state |= {f"dvae_tokenizer.{k}": v for k, v in to_official(teacher.state_dict(), "teacher").items()}
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    torch.save(
        {
            "base_model": {f"module.{k}": v for k, v in state.items()},
            "optimizer": optimizer.state_dict(),
            "epoch": 300,
            "metrics": {"acc": 0.0},
            "best_metrics": {"acc": 0.0},
        },
        path,
    )
    return state, teacher


def test_official_stage2_checkpoint_imports_as_student_and_as_teacher(teacher_cfg, pretrain_cfg, tmp_path):
    state, teacher = _official_stage2_checkpoint(teacher_cfg, tmp_path / "ckpt-last.pth")
    out, ignored = import_official(
        tmp_path / "ckpt-last.pth", "student", to_dict(pretrain_cfg), tmp_path / "s.pt"
    )
    assert {k.split(".")[0] for k in ignored} == {"ACT_encoder", "cls_pos", "dvae_tokenizer"}
    assert "ACT_encoder.lm_head.weight" in ignored and "ACT_encoder.cls_head.2.bias" in ignored
    encoder, _ = zoo.load_student(out)
    torch.testing.assert_close(
        encoder.blocks.blocks[1].mlp.fc1.weight, state["ACT_encoder.blocks.blocks.1.mlp.fc1.weight"]
    )
    assert load_checkpoint(out)["ignored_official_keys"] == ignored
    # the same file's dvae_tokenizer is the Stage I teacher: its targets equal the original's
    out, ignored = import_official(
        tmp_path / "ckpt-last.pth", "teacher", to_dict(teacher_cfg), tmp_path / "t.pt"
    )
    assert "ACT_encoder.cls_token" in ignored and not any(k.startswith("dvae_tokenizer.") for k in ignored)
    loaded = zoo.load_teacher(out)
    patches = group_patches(torch.randn(2, 64, 3), 8, 8)
    with torch.no_grad():
        expected = torch.manual_seed(1) and teacher.teacher_features(patches)
        torch.testing.assert_close(torch.manual_seed(1) and loaded.teacher_features(patches), expected)


def test_official_linear_probe_round_trips_with_official_names(finetune_cfg, tmp_path):
    official = _official_student_encoder("") | {
        "cls_head_finetune.0.weight": torch.randn(CLASSES, 2 * W),
        "cls_head_finetune.0.bias": torch.randn(CLASSES),
    }
    torch.save({"base_model": official}, tmp_path / "linear.pth")
    finetune_cfg.transfer = "linear"
    out, _ = import_official(
        tmp_path / "linear.pth", "classifier", to_dict(finetune_cfg), tmp_path / "linear.pt"
    )
    model, arch, _ = load_classifier(out)
    assert arch["head"]["transfer"] == "linear" and arch["head"]["num_classes"] == CLASSES
    torch.testing.assert_close(model.head[0].weight, official["cls_head_finetune.0.weight"])
    back = load_file(str(export_official(out, tmp_path / "linear-official")[0]))
    assert back.keys() == official.keys()
    assert all(torch.equal(back[k], v) for k, v in official.items())


def test_foreign_pickles_and_act3d_files_are_refused(finetune_cfg, tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"base_model": Payload()}))
    with pytest.raises(CheckpointError, match="not a readable weight file"):
        import_official(tmp_path / "evil.pth", "classifier", to_dict(finetune_cfg), tmp_path / "x.pt")
    # a checkpoint of a kind without an official layout is not exported as something else by mistake
    save_checkpoint(tmp_path / "other.pt", {"kind": "act3d-other", "model": {}})
    with pytest.raises(CheckpointError, match="is a act3d-other checkpoint"):
        export_official(tmp_path / "other.pt", tmp_path / "out")


def test_cli_export_then_import(finetune_cfg, tmp_path):
    model = build_classifier(finetune_cfg, list("abcde"))
    save_checkpoint(
        tmp_path / "mine.pt",
        {
            "kind": "act3d-classifier",
            "model": model.state_dict(),
            "config": to_dict(finetune_cfg),
            "arch": classifier_arch(finetune_cfg, list("abcde")),
        },
    )
    assert main(["export-official", str(tmp_path / "mine.pt"), "--out", str(tmp_path / "official")]) == 0
    (tmp_path / "tiny.yaml").write_text(json.dumps(to_dict(finetune_cfg)))  # JSON is YAML
    assert (
        main(
            [
                "import-official",
                str(tmp_path / "official.safetensors"),
                "--layout",
                "classifier",
                "--config",
                str(tmp_path / "tiny.yaml"),
                "--out",
                str(tmp_path / "back.pt"),
            ]
        )
        == 0
    )
    back, _, _ = load_classifier(tmp_path / "back.pt")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(back.state_dict()[k], v, msg=k)
    assert (
        main(
            [
                "import-official",
                str(tmp_path / "official.safetensors"),
                "--layout",
                "student",
                "--config",
                str(tmp_path / "tiny.yaml"),
                "--out",
                str(tmp_path / "wrong.pt"),
            ]
        )
        == 2
    )
