import pytest
import torch
from layouts import write_tiny_scan_h5

from act3d.config import from_dict
from act3d.train.finetune import FinetuneRunConfig
from act3d.train.stage1 import TeacherRunConfig
from act3d.train.stage2 import PretrainRunConfig

torch.set_num_threads(2)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


TINY_DATA = {"format": "scanobjectnn", "variant": "obj_bg", "num_points": 64}
TINY_PATCHES = {"num_groups": 8, "group_size": 8}
TINY_RUNTIME = {"progress": False, "log_every": 1}
TINY_TEACHER_MODEL = {  # Stage I's autoencoder around the Transformer, at test sizes
    "tokens_dim": 32,
    "codebook_size": 16,
    "embed_hidden": 0.125,
    "dgcnn_hidden": 0.0625,
    "decoder_hidden": 32,
    "fold_hidden": 16,
    "num_prompts": 2,
}
TINY_STUDENT = {
    "width": 32,
    "depth": 2,
    "heads": 2,
    "decoder_heads": 2,
    "decoder_depth": 1,
    "embed_hidden": 0.125,
}


@pytest.fixture
def scan_root(tmp_path):
    return str(write_tiny_scan_h5(tmp_path / "data"))


@pytest.fixture
def teacher_cfg(scan_root):
    return from_dict(
        TeacherRunConfig,
        {
            "data": {**TINY_DATA, "root": scan_root},
            "patching": TINY_PATCHES,
            "model": {
                **TINY_TEACHER_MODEL,
                "transformer": {"kind": "random", "width": 32, "heads": 2, "random_depth": 2},
            },
            "anneal": {"steps": 10},
            "optim": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0.5},
            "runtime": TINY_RUNTIME,
            "gallery": 2,
        },
    )


@pytest.fixture
def pretrain_cfg(scan_root):
    return from_dict(
        PretrainRunConfig,
        {
            "data": {**TINY_DATA, "root": scan_root},
            "patching": TINY_PATCHES,
            "student": TINY_STUDENT,
            "optim": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0.5},
            "runtime": TINY_RUNTIME,
            "gallery": 2,
        },
    )


@pytest.fixture
def finetune_cfg(scan_root):
    return from_dict(
        FinetuneRunConfig,
        {
            "data": {**TINY_DATA, "root": scan_root},
            "patching": TINY_PATCHES,
            "student": TINY_STUDENT,
            "optim": {"epochs": 2, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0.5},
            "runtime": TINY_RUNTIME,
        },
    )


def load_classifier(path):
    """A fine-tuned classifier checkpoint: (model in eval mode, its arch, its class names)."""
    from act3d.models import zoo

    model, ckpt = zoo.load(path, zoo.CLASSIFIER)
    return model, ckpt["arch"], ckpt["arch"]["class_names"]


@pytest.fixture
def untrained_student(pretrain_cfg, tmp_path) -> str:
    """An untrained Stage II student checkpoint of the tiny sizes (the `none` target writes one without
    training): the backbone a frozen-backbone transfer (probe or PEFT method) is given in tests."""
    from dataclasses import replace

    from act3d.train.stage2 import pretrain

    cfg = replace(pretrain_cfg, student=replace(pretrain_cfg.student, target="none"))
    return str(pretrain(cfg, tmp_path / "untrained-student").checkpoint)
