"""One loader per model kind: every checkpoint rebuilds its model from its own `arch`, without training code."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TINY_PATCHES, TINY_RUNTIME, TINY_STUDENT
from layouts import write_shapenetpart

from act3d.config import from_dict
from act3d.errors import CheckpointError, DataError
from act3d.models import zoo
from act3d.models.checkpoint import FORMAT_VERSION, load_checkpoint, model_payload, save_checkpoint
from act3d.models.student import MaskedPointModel, StudentConfig
from act3d.ops.grouping import PatchConfig
from act3d.train.segment import SegmentRunConfig, segment


def trained_part_segmenter(tmp_path) -> SegmentRunConfig:
    """A tiny part segmenter trained for one epoch into tmp_path / "seg"; returns its config."""
    cfg = from_dict(
        SegmentRunConfig,
        {
            "task": "part",
            "data": {"format": "shapenetpart", "root": str(write_shapenetpart(tmp_path)), "num_points": 128},
            "patching": TINY_PATCHES,
            "student": {**TINY_STUDENT, "depth": 3},
            "propagation": [24, 16],
            "hidden": [16, 16],
            "optim": {"epochs": 1, "batch_size": 2, "warmup_epochs": 0.5},
            "runtime": TINY_RUNTIME,
            "pictures": 1,
        },
    )
    segment(cfg, tmp_path / "seg")
    return cfg


def test_the_inference_api_imports_no_training_code():
    code = (
        "import sys, act3d, act3d.api; print(sorted(m for m in sys.modules if m.startswith('act3d.train')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_segmenter_loads_and_segments_through_the_api(tmp_path):
    trained_part_segmenter(tmp_path)
    import act3d

    model = act3d.load_model(tmp_path / "seg" / "checkpoints" / "last.pt")
    assert model.class_names == ["Airplane", "Mug"]
    points, labels = model.segment(np.random.default_rng(0).normal(size=(2, 300, 3)), category=1)
    assert points.shape == (2, 128, 3) and labels.shape == (2, 128) and labels.max() < 50
    with pytest.raises(DataError, match="category in 0..1"):
        model.segment(np.zeros((1, 300, 3)) + np.arange(3))
    with pytest.raises(CheckpointError, match="is not a fine-tuned classifier"):
        model.predict(np.zeros((1, 300, 3)))
    # the same weights, rebuilt by the zoo from the checkpoint's arch alone
    again, ckpt = zoo.load(tmp_path / "seg" / "checkpoints" / "last.pt", zoo.SEGMENTER)
    assert ckpt["arch"]["head"]["num_categories"] == 2 and all(
        torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.model.state_dict().values())
    )


def test_checkpoints_of_another_format_are_refused_with_a_reason(tmp_path):
    save_checkpoint(tmp_path / "new.pt", {"kind": zoo.STUDENT, "model": {}})
    assert load_checkpoint(tmp_path / "new.pt")["format_version"] == FORMAT_VERSION
    torch.save({"format_version": 1, "kind": zoo.STUDENT, "model": {}}, tmp_path / "old.pt")
    with pytest.raises(
        CheckpointError, match="old.pt: checkpoint format 1, this act3d reads formats 2 and 3"
    ):
        zoo.load(tmp_path / "old.pt")


def test_a_format_2_checkpoint_loads_with_its_patches_read_as_patching(tmp_path):
    """Format 2 named the patch settings `patches` in `arch` and `config`, and the training number format
    `runtime.amp`."""
    student = from_dict(StudentConfig, {**TINY_STUDENT, "target": "mae"})
    patching = from_dict(PatchConfig, TINY_PATCHES)
    model = MaskedPointModel(student, patching)
    arch = zoo.student_arch(student, patching, None, 64)
    config = {"patching": TINY_PATCHES, "runtime": {"precision": "bf16", "seed": 0}}
    save_checkpoint(tmp_path / "new.pt", model_payload(zoo.STUDENT, model.state_dict(), 3, config, arch))
    old = torch.load(tmp_path / "new.pt", weights_only=True)
    old["format_version"] = 2
    old["arch"] = {("patches" if k == "patching" else k): v for k, v in old["arch"].items()}
    old["config"] = {("patches" if k == "patching" else k): v for k, v in old["config"].items()}
    old["config"]["runtime"] = {"amp": "bf16", "seed": 0}
    torch.save(old, tmp_path / "format2.pt")
    again, ckpt = zoo.load(tmp_path / "format2.pt", zoo.STUDENT)
    assert ckpt["arch"] == arch and ckpt["config"] == config and ckpt["format_version"] == FORMAT_VERSION
    assert zoo.patch_config(ckpt["arch"]) == patching
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_a_segmenter_exports_and_imports_back(tmp_path):
    from safetensors.torch import load_file

    from act3d.config import to_dict
    from act3d.models.official import export_official, import_official

    cfg = trained_part_segmenter(tmp_path)
    weights, _ = export_official(tmp_path / "seg" / "checkpoints" / "last.pt", tmp_path / "exported")
    names = load_file(str(weights)).keys()
    assert (
        "blocks.blocks.2.attn.qkv.weight" in names and "encoder.first_conv.0.weight" in names
    )  # official backbone
    assert any(n.startswith("act3d_head.propagate.") for n in names)
    back, _ = import_official(weights, "segmenter", to_dict(cfg), tmp_path / "back.pt")
    original, _ = zoo.load(tmp_path / "seg" / "checkpoints" / "last.pt")
    again, ckpt = zoo.load(back)
    assert ckpt["arch"]["head"]["num_categories"] == 2
    for (k, a), b in zip(original.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_checkpoint_whose_architecture_record_lacks_a_key_is_one_clear_error(teacher_cfg, tmp_path):
    from act3d.errors import CheckpointError
    from act3d.models.checkpoint import save_checkpoint
    from act3d.train.stage1 import build_autoencoder

    model = build_autoencoder(teacher_cfg)
    arch = zoo.teacher_arch(teacher_cfg.model, teacher_cfg.patching, model.transformer.backbone)
    arch["teacher"] = arch.pop("transformer")  # the record as an earlier act3d wrote it
    save_checkpoint(tmp_path / "old.pt", {"kind": zoo.TEACHER, "model": model.state_dict(), "arch": arch})
    with pytest.raises(
        CheckpointError, match="has no 'transformer'; it was written by another act3d version"
    ):
        zoo.load_teacher(tmp_path / "old.pt")
