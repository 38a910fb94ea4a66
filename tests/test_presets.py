"""Every named preset resolves, and the paper presets build models of the sizes in docs/method.md."""

from pathlib import Path

import pytest

from act3d.config import list_presets, load_config
from act3d.data.s3dis import CLASSES as S3DIS_CLASSES
from act3d.data.shapenet import NUM_PARTS
from act3d.models.layers import optimized_parameters
from act3d.models.peft import METHODS
from act3d.models.pretrained import IMGFOCUS_VIT_S14, PretrainedTransformer
from act3d.models.segmenter import PointSegmenter, SegmenterHead
from act3d.models.student import MaskedPointModel, StudentEncoder
from act3d.train.finetune import FinetuneRunConfig, build_classifier
from act3d.train.segment import SegmentRunConfig
from act3d.train.stage1 import TeacherRunConfig, build_autoencoder
from act3d.train.stage2 import PretrainRunConfig

CLASSES = {"obj_bg": 15, "obj_only": 15, "pb_t50_rs": 15, "modelnet40": 40, "fewshot": 5}


# (family, run config, preset name) of every shipped preset
EVERY_PRESET = [
    (kind, cls, name)
    for kind, cls in (
        ("teacher", TeacherRunConfig),
        ("pretrain", PretrainRunConfig),
        ("finetune", FinetuneRunConfig),
        ("segment", SegmentRunConfig),
    )
    for name in list_presets(kind)
]


def _demo_sized(name: str) -> bool:
    """The demo's presets (`cpu`, `gpu` and the CPU presets of the PEFT methods, `cpu_<method>`)."""
    return name in ("cpu", "gpu") or name.startswith("cpu_")


def _count(module, trainable_only: bool = False) -> float:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only) / 1e6


def test_the_paper_presets_exist():
    assert {"paper", "cpu"} <= set(list_presets("teacher")) and {"paper", "cpu"} <= set(
        list_presets("pretrain")
    )
    assert {"paper_part", "paper_semantic"} <= set(list_presets("segment"))
    wanted = {
        f"scanobjectnn_{v}{t}" for v in ("obj_bg", "obj_only", "pb_t50_rs") for t in ("", "_linear", "_mlp3")
    }
    assert wanted | {"modelnet40_1k", "modelnet40_8k", "modelnet40_fewshot"} <= set(list_presets("finetune"))


@pytest.mark.parametrize("name", list_presets("finetune"))
def test_finetune_presets_build_the_paper_classifier(name):
    cfg = load_config(FinetuneRunConfig, "finetune", name)
    classes = next((n for key, n in CLASSES.items() if key in name), 16)
    model = build_classifier(cfg, [str(i) for i in range(classes)])
    if name == "cpu" or name.startswith("cpu_"):
        assert _count(model) < 3
        return
    # 12 blocks of width 384, 6 heads; 22.1M parameters with the mlp3 head (docs/method.md section 3)
    assert (cfg.student.depth, cfg.student.width, cfg.student.heads) == (12, 384, 6)
    encoder = _count(model.encoder)
    if cfg.transfer == "linear":
        assert _count(model) == pytest.approx(encoder + (768 * classes + classes) / 1e6)
    elif cfg.transfer in METHODS:  # the backbone and what the method adds, the head on its features
        head = _count(model.head)
        assert _count(model) == pytest.approx(encoder + _count(model.peft) + head)
        trained = dict(optimized_parameters(model))  # what AdamW updates
        frozen = sum(p.numel() for n, p in model.peft.named_parameters() if f"peft.{n}" not in trained) / 1e6
        # of the backbone the cls token and position train; under PPT the mini-PointNet's first layers and
        # the centre embedding too (33,792 + 50,048)
        backbone = (768 + (83_840 if cfg.transfer == "ppt" else 0)) / 1e6
        assert sum(p.numel() for n, p in trained.items() if n.startswith("encoder.")) / 1e6 == pytest.approx(
            backbone
        )
        assert sum(p.numel() for p in trained.values()) / 1e6 == pytest.approx(
            _count(model.peft) - frozen + head + backbone
        )
        # IDPT's and VPT-deep's official runs keep every gradient (only_new leaves them out of AdamW only)
        assert model.peft.backbone_gradients == (cfg.transfer in ("idpt", "vpt_deep"))
        # IDPT's official configs (ICCV23-IDPT cfgs/*_idpt.yaml): only OBJ_BG reads the prompt alone
        if cfg.transfer == "idpt":
            assert cfg.peft.head_features == ("promptonly" if "obj_bg" in name else "all")
            # prompt_layer 11 everywhere but OBJ_ONLY (cfgs/finetune_scan_objonly_idpt.yaml l.33: 6)
            assert cfg.peft.prompt_layer == (6 if "obj_only" in name else 11)
        if cfg.transfer == "dapt":  # LMD0311/DAPT cfgs/*_dapt.yaml
            dapt = cfg.peft
            assert dapt.rank == (72 if "modelnet" in name else 64)
            assert cfg.student.drop_path == (0.3 if "obj_bg" in name or "pb_t50_rs" in name else 0.1)
        if cfg.transfer == "ppt":  # zsc000722/PPT cfgs/pointmae_configs/*.yaml
            assert cfg.student.drop_path == 0.3
            assert (cfg.peft.prompt_groups, cfg.peft.prompt_group_size) == (
                cfg.patching.num_groups,
                32,
            )
        lr = 1e-4 if cfg.transfer == "ppt" and "modelnet" in name else 5e-4  # the methods' configs
        # IDPT's, PointGST's and PPT's runners rotate ScanObjectNN only; DAPT's scales and translates all
        scan = "scanobjectnn" in name and cfg.transfer != "dapt"
        augmentation = "rotate" if scan else "scale_translate"
        assert (cfg.optim.lr, cfg.augmentation, cfg.sampling) == (lr, augmentation, "fps")
        return
    else:
        assert _count(model) == pytest.approx(22.1, abs=0.05)
    if cfg.transfer != "full":  # frozen backbone: the cls token (and its position) and the head learn
        assert _count(model, trainable_only=True) == pytest.approx(_count(model) - encoder + 2 * 384 / 1e6)
    if "scanobjectnn" in name:
        assert (cfg.data.num_points, cfg.patching.num_groups, cfg.patching.group_size) == (2048, 128, 32)
    # the official cfgs: lr 1e-3 for linear / mlp3 probing, 5e-4 for full fine-tuning; rotation only; FPS
    # sampling
    lr = 1e-3 if cfg.transfer != "full" else 5e-4
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.batch_size) == (lr, 0.05, 32)
    assert (cfg.augmentation, cfg.sampling, cfg.frozen_backbone_mode) == ("rotate", "fps", "train")
    # every stored point: ScanObjectNN and the demo's scan split hold 2048, the ModelNet40 .dat files 8192
    assert cfg.data.load_points == (2048 if "scanobjectnn" in name or name == "gpu" else 8192)


def test_the_demo_gpu_presets_have_the_paper_models():
    from act3d.demo.configs import DemoOptions, teacher_config

    opts = DemoOptions(Path("unused"), preset="gpu")
    teacher = teacher_config("pretrained", opts)
    assert (teacher.model.num_prompts, teacher.model.codebook_size, teacher.model.transformer.depth) == (
        64,
        8192,
        None,
    )
    assert (
        teacher_config("random", opts).model.transformer.random_depth == 12
    )  # all 12 blocks, like the ViT-S/14
    student = load_config(PretrainRunConfig, "pretrain", "gpu").student
    assert (student.width, student.depth, student.mask_ratio) == (384, 12, 0.8)
    for kind, cls in (
        ("teacher", TeacherRunConfig),
        ("pretrain", PretrainRunConfig),
        ("finetune", FinetuneRunConfig),
    ):
        cfg = load_config(cls, kind, "gpu")
        assert cfg.data.format == "default" and cfg.data.on_device and cfg.runtime.precision == "bf16"


def test_pretrain_paper_preset_is_the_22m_student():
    cfg = load_config(PretrainRunConfig, "pretrain", "paper")
    model = MaskedPointModel(cfg.student, cfg.patching, target_dim=384)
    assert _count(model.encoder) == pytest.approx(22.1, rel=0.02)
    assert (cfg.student.mask_ratio, cfg.student.decoder_depth, cfg.optim.batch_size, cfg.optim.lr) == (
        0.8,
        2,
        128,
        1e-3,
    )
    assert (cfg.data.num_points, cfg.patching.num_groups, cfg.patching.group_size) == (1024, 64, 32)
    assert (cfg.data.pretrain_split, cfg.teacher_mode) == ("train+test", "train")  # official Stage II


def test_teacher_paper_preset_has_the_spec_sizes():
    cfg = load_config(TeacherRunConfig, "teacher", "paper")
    model = build_autoencoder(cfg, PretrainedTransformer.skeleton(IMGFOCUS_VIT_S14))
    assert tuple(model.codebook.shape) == (8192, 384)
    assert model.dgcnn_1.layer5[0].out_features == 8192  # logits over the codebook
    assert (
        model.transformer.prompt_tokens.shape[1] == 64 and model.transformer.deep_prompt_tokens.shape[0] == 11
    )
    backbone = _count(model.transformer.backbone)
    assert backbone == pytest.approx(21.3, abs=0.1)  # 12 ViT-S blocks with LayerScale + final norm
    assert _count(model, trainable_only=True) == pytest.approx(_count(model) - backbone)  # frozen teacher
    assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.batch_size, cfg.anneal.steps) == (
        5e-4,
        5e-4,
        64,
        100000,
    )
    assert (cfg.anneal.kl_delay, cfg.model.prompt_dropout, cfg.optim.grad_clip) == (10000, 0.1, 0.0)


@pytest.mark.parametrize(
    "name,classes,categories,extra",
    [("paper_part", NUM_PARTS, 16, 0), ("paper_semantic", len(S3DIS_CLASSES), 0, 0)],
)
def test_segmentation_presets_build(name, classes, categories, extra):
    cfg = load_config(SegmentRunConfig, "segment", name)
    model = PointSegmenter(
        StudentEncoder(cfg.student),
        SegmenterHead(classes, categories, extra, cfg.propagation, cfg.hidden),
        cfg.patching,
    )
    assert model.layers == (4, 8, 12)  # features of blocks 4, 8 and 12
    assert _count(model.encoder) == pytest.approx(21.8, abs=0.1)


@pytest.mark.parametrize(
    "name,classes,categories,linears",
    [
        # part_segmentation/models/pt.py: label_conv_cls 16 -> 64 (no bias), propagation_0_cls 1155 -> 1536
        # -> 1024, convs1_cls 3392 -> 512, convs2_cls 512 -> 256, convs3_cls 256 -> 50
        (
            "paper_part",
            NUM_PARTS,
            16,
            [(64, 16), (1536, 1155), (1024, 1536), (512, 3392), (256, 512), (50, 256)],
        ),
        # semantic_segmentation/models/pt.py: no category, convs1_cls 3328 -> 512
        (
            "paper_semantic",
            len(S3DIS_CLASSES),
            0,
            [(1536, 1155), (1024, 1536), (512, 3328), (256, 512), (13, 256)],
        ),
    ],
)
def test_segmentation_heads_are_the_official_ones(name, classes, categories, linears):
    from torch import nn

    cfg = load_config(SegmentRunConfig, "segment", name)
    model = PointSegmenter(
        StudentEncoder(cfg.student),
        SegmenterHead(classes, categories, 0, cfg.propagation, cfg.hidden),
        cfg.patching,
    )
    head = [m for n, m in model.named_modules() if not n.startswith("encoder")]
    assert [tuple(m.weight.shape) for m in head if isinstance(m, nn.Linear)] == linears
    # conv-bn-relu after every propagation and hidden head layer, only the last map linear (pt.py l.341-344)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in head) == len(linears) - 1
    assert model.category_embed is None or model.category_embed[0].bias is None


def test_the_paper_presets_floor_the_learning_rate_as_the_official_schedulers():
    """ACT's tools/builder.py CosLR ends at 1e-7 (pretraining, fine-tuning); the PEFT repositories' builders
    (ICCV23-IDPT, DAPT, PointGST, PPT) and the segmentation mains at 1e-6."""
    for kind, cls in (
        ("teacher", TeacherRunConfig),
        ("pretrain", PretrainRunConfig),
        ("finetune", FinetuneRunConfig),
    ):
        for name in list_presets(kind):
            if not _demo_sized(name):
                cfg = load_config(cls, kind, name)
                peft = getattr(cfg, "transfer", "full") in METHODS
                assert cfg.optim.min_lr == (1e-6 if peft else 1e-7), (kind, name)
    for name in ("paper_part", "paper_semantic"):
        optim = load_config(SegmentRunConfig, "segment", name).optim
        assert (optim.min_lr, optim.step_twice) == (1e-6, True)


def test_the_paper_recipes_live_in_the_presets_alone():
    """Every paper preset states its whole optimiser recipe (itself or through its `base:`), so no paper
    number comes from `OptimConfig`'s defaults, which are the CPU presets' fallbacks."""
    from act3d.config import _preset_path, _with_base

    recipe = {
        "epochs",
        "batch_size",
        "lr",
        "min_lr",
        "weight_decay",
        "warmup_epochs",
        "grad_clip",
        "schedule",
    }
    for family, _, name in EVERY_PRESET:
        if not _demo_sized(name):
            stated = set(_with_base(family, _preset_path(family, name))["optim"])
            assert recipe <= stated, (family, name, sorted(recipe - stated))


def test_the_paper_presets_run_the_official_epochs_and_schedule():
    """runner_*.py train range(start, max_epoch + 1) under a per-epoch timm cosine of max_epoch epochs; the
    segmentation mains train `epoch` epochs under one of `epoch` epochs, both from warmup_lr_init 1e-6."""
    for kind, cls, name in EVERY_PRESET:
        optim = load_config(cls, kind, name).optim
        if _demo_sized(name):
            assert optim.schedule == "steps"  # the demo's numbers stand
            continue
        cosine = {"segment": optim.epochs, "finetune": 150 if "fewshot" in name else 300}.get(kind, 300)
        extra = 0 if kind == "segment" else 1
        assert (optim.schedule, optim.warmup_lr, optim.warmup_epochs) == ("epochs", 1e-6, 10), (kind, name)
        assert (optim.cosine_epochs or optim.epochs, optim.epochs) == (cosine, cosine + extra), (kind, name)


def test_the_paper_presets_sample_as_the_official_fps_kernel():
    """Every FPS of the official code is pointnet2_ops' kernel (utils/misc.py l.35-42, the segmentation
    pt.py l.11-18): the paper presets use its rule, the demo's presets act3d's."""
    for kind, cls, name in EVERY_PRESET:
        rule = load_config(cls, kind, name).patching.fps
        assert rule == ("act3d" if _demo_sized(name) else "pointnet2"), (kind, name)
