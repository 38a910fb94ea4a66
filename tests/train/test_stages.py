import copy
import json
from dataclasses import replace

import pytest
import torch
from conftest import load_classifier

from act3d.errors import Act3dError, CheckpointError
from act3d.models import zoo
from act3d.models.checkpoint import load_checkpoint, save_checkpoint
from act3d.train.checkpoints import TrainingDiverged
from act3d.train.finetune import build_classifier, finetune
from act3d.train.stage import DownstreamResult
from act3d.train.stage1 import build_autoencoder, train_teacher
from act3d.train.stage2 import pretrain


def test_stage1_trains_prompts_only_and_reconstruction_falls(teacher_cfg, tmp_path):
    teacher_cfg.optim.epochs = 8
    model_before = build_autoencoder(teacher_cfg)
    frozen_before = copy.deepcopy(model_before.transformer.backbone.state_dict())
    result = train_teacher(teacher_cfg, tmp_path / "s1")
    trained = zoo.load_teacher(result.checkpoint)
    # the pretrained teacher's own weights never move; prompts and the dVAE do
    for k, v in trained.transformer.backbone.state_dict().items():
        torch.testing.assert_close(v, frozen_before[k], rtol=0, atol=0)
    assert not torch.allclose(trained.transformer.prompt_tokens, model_before.transformer.prompt_tokens)
    assert not torch.allclose(trained.codebook, model_before.codebook)
    import csv

    rows = list(csv.DictReader(open(tmp_path / "s1" / "metrics.csv")))
    first, last = float(rows[0]["cd_fine"]), float(rows[-1]["cd_fine"])
    assert last < 0.8 * first, (first, last)
    assert (tmp_path / "s1" / "reconstructions.png").stat().st_size > 1000
    assert (tmp_path / "s1" / "config.yaml").is_file()


def test_full_tuning_mode_moves_the_teacher(teacher_cfg, tmp_path):
    teacher_cfg.model.tuning = "full"
    teacher_cfg.optim.max_steps = 3
    before = build_autoencoder(teacher_cfg).transformer.backbone.state_dict()
    trained = zoo.load_teacher(train_teacher(teacher_cfg, tmp_path / "s1").checkpoint)
    moved = [k for k, v in trained.transformer.backbone.state_dict().items() if not torch.equal(v, before[k])]
    assert moved


@pytest.mark.parametrize("on_device", [False, True])
def test_resume_is_exact(teacher_cfg, tmp_path, monkeypatch, on_device):
    teacher_cfg.data.on_device = on_device  # batches drawn by DeviceClouds from the per-step seed
    teacher_cfg.optim.epochs = 2  # 16 samples, batches of 4 -> 8 steps
    teacher_cfg.runtime.checkpoint_every = 3
    straight = train_teacher(teacher_cfg, tmp_path / "straight")
    from act3d.train import stage1

    real_step = stage1.TeacherTask.step

    def killed_at_5(self, model, batch, step):
        if step == 5:
            raise KeyboardInterrupt  # as if Ctrl-C arrived during step 5
        return real_step(self, model, batch, step)

    monkeypatch.setattr(stage1.TeacherTask, "step", killed_at_5)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(teacher_cfg, tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["step"] == 4  # epoch end
    monkeypatch.setattr(stage1.TeacherTask, "step", real_step)
    resumed = train_teacher(teacher_cfg, tmp_path / "resumed", resume=True)
    a = load_checkpoint(straight.checkpoint)["model"]
    b = load_checkpoint(resumed.checkpoint)["model"]
    assert straight.steps == resumed.steps == 8
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("log_every", [1, 4])
def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(teacher_cfg, tmp_path, monkeypatch, log_every):
    """Losses are read from the device every `log_every` steps and before every checkpoint; the error still
    names the step whose weights gave the NaN, and no checkpoint after it is written."""
    teacher_cfg.runtime.checkpoint_every, teacher_cfg.runtime.log_every = 2, log_every
    from act3d.train import stage1

    real_step = stage1.TeacherTask.step

    def poisoned(self, model, batch, step):
        loss, metrics = real_step(self, model, batch, step)
        return (loss * float("nan") if step == 3 else loss), metrics

    monkeypatch.setattr(stage1.TeacherTask, "step", poisoned)
    with pytest.raises(TrainingDiverged, match="at step 3"):
        train_teacher(teacher_cfg, tmp_path / "nan")
    assert load_checkpoint(tmp_path / "nan" / "checkpoints" / "last.pt")["step"] == 2


def test_stage2_arms_and_finetune(teacher_cfg, pretrain_cfg, finetune_cfg, tmp_path, monkeypatch):
    teacher_cfg.optim.max_steps = 2
    teacher_ckpt = train_teacher(teacher_cfg, tmp_path / "s1").checkpoint
    pretrain_cfg.optim.epochs = 4
    pretrain_cfg.teacher_checkpoint = str(teacher_ckpt)
    act = pretrain(pretrain_cfg, tmp_path / "act").checkpoint
    import csv

    losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "act" / "metrics.csv"))]
    assert losses[-1] < losses[0]
    # the official code leaves the teacher in train mode (batch statistics, prompt dropout); `eval` is the
    # option
    from act3d.train import stage2

    seen = []
    real_step = stage2.PretrainTask.step
    monkeypatch.setattr(
        stage2.PretrainTask,
        "step",
        lambda self, *a: (seen.append(self.teacher.training), real_step(self, *a))[1],
    )
    for mode in ("train", "eval"):
        cfg = copy.deepcopy(pretrain_cfg)
        cfg.teacher_mode, cfg.optim.max_steps = mode, 1
        pretrain(cfg, tmp_path / f"mode-{mode}")
    monkeypatch.setattr(stage2.PretrainTask, "step", real_step)
    assert seen == [True, False]
    pretrain_cfg.student.center_target = True  # the option that regresses the per-patch part of the target
    centred = pretrain(pretrain_cfg, tmp_path / "act-centred").checkpoint
    pretrain_cfg.student.target, pretrain_cfg.student.center_target = "mae", False
    mae = pretrain(pretrain_cfg, tmp_path / "mae").checkpoint
    assert (tmp_path / "mae" / "masked_inputs.png").is_file()
    pretrain_cfg.student.target = "none"
    scratch = pretrain(pretrain_cfg, tmp_path / "none").checkpoint
    for ckpt in (act, centred, mae, scratch):
        encoder, _ = zoo.load_student(ckpt)
        assert encoder.cfg.width == 32
    finetune_cfg.checkpoint = str(act)
    results = finetune(finetune_cfg, tmp_path / "ft").downstream
    assert len(results.confusion) == 15 and sum(map(sum, results.confusion)) == 16  # every test cloud counted
    assert results.val["oa"] is not None and results.selected_step <= results.steps
    saved = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert DownstreamResult.from_dict(saved) == results and results.test_samples == 16
    model, cfg, names = load_classifier(tmp_path / "ft" / "checkpoints" / "last.pt")
    assert len(names) == 15 and (tmp_path / "ft" / "checkpoints" / "best.pt").is_file()
    # the pretrained student's architecture, the fine-tuning run's own drop-path rate
    pretrain_cfg.student.drop_path, finetune_cfg.student.drop_path = 0.1, 0.0
    finetune_cfg.checkpoint = str(pretrain(pretrain_cfg, tmp_path / "none2").checkpoint)
    classifier = build_classifier(finetune_cfg, [str(i) for i in range(15)])
    assert [b.drop_path.p for b in classifier.encoder.blocks.blocks] == [0.0, 0.0]
    from act3d.train.stage import student_backbone

    _, student = student_backbone(finetune_cfg)  # the architecture the run records
    assert (student.width, student.drop_path) == (32, 0.0)


def test_stage2_refuses_a_checkpoint_that_is_not_a_teacher(pretrain_cfg, finetune_cfg, tmp_path):
    finetune_cfg.optim.max_steps = 1
    finetune(finetune_cfg, tmp_path / "ft")
    pretrain_cfg.teacher_checkpoint = str(tmp_path / "ft" / "checkpoints" / "last.pt")
    with pytest.raises(
        CheckpointError, match="is a act3d-classifier checkpoint, but a act3d-teacher checkpoint is needed"
    ):
        pretrain(pretrain_cfg, tmp_path / "bad")
    pretrain_cfg.teacher_checkpoint = None
    with pytest.raises(Act3dError, match="needs teacher_checkpoint"):
        pretrain(pretrain_cfg, tmp_path / "bad2")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable act3d checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an act3d checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"kind": "act3d-student", "model": {"w": torch.ones(2)}})

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(OSError):
        save_checkpoint(path, {"kind": "act3d-student", "model": {"w": torch.zeros(2)}})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))


def test_same_config_same_seed_same_bits(teacher_cfg, pretrain_cfg, finetune_cfg, tmp_path, monkeypatch):
    """A few steps of every stage, twice: every checkpoint tensor and every reported number is identical.
    (CPU runs need no deterministic mode: every step is seeded; `runtime.deterministic` turns on PyTorch's
    deterministic algorithms for CUDA, here observed rather than left switched on for the other tests.)"""
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda mode: calls.append(mode))

    def run(tag: str) -> list[dict]:
        for cfg in (teacher_cfg, pretrain_cfg, finetune_cfg):
            cfg.optim.max_steps, cfg.runtime.deterministic = 3, True
        teacher = train_teacher(teacher_cfg, tmp_path / tag / "s1").checkpoint
        pretrain_cfg.teacher_checkpoint = str(teacher)
        student = pretrain(pretrain_cfg, tmp_path / tag / "s2").checkpoint
        finetune_cfg.checkpoint = str(student)
        results = finetune(finetune_cfg, tmp_path / tag / "ft").downstream.to_dict()
        files = [teacher, student, tmp_path / tag / "ft" / "checkpoints" / "last.pt"]
        return [load_checkpoint(f)["model"] for f in files] + [
            {k: v for k, v in results.items() if k != "seconds"}
        ]

    first, second = run("a"), run("b")
    for a, b in zip(first[:3], second[:3]):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), k
    first[3].pop("pretrained"), second[3].pop("pretrained")
    assert first[3] == second[3]
    assert calls == [True] * 6


def test_weight_decay_groups_are_the_official_ones(teacher_cfg, pretrain_cfg):
    from act3d.models.student import MaskedPointModel
    from act3d.ops.grouping import PatchConfig
    from act3d.train.optimizer import param_groups

    def no_decay_names(module):
        groups = param_groups(module, 0.05)
        ids = {id(p) for p in groups[1]["params"]}
        return {n for n, p in module.named_parameters() if id(p) in ids}

    teacher = no_decay_names(build_autoencoder(teacher_cfg))
    assert {"transformer.prompt_tokens", "transformer.deep_prompt_tokens", "proj_pre.bias"} <= teacher
    assert (
        not {"codebook", "transformer.prompt_pos", "transformer.deep_prompt_pos", "proj_pre.weight"} & teacher
    )
    student = no_decay_names(MaskedPointModel(pretrain_cfg.student, PatchConfig(16, 8), 32))
    assert {
        "encoder.cls_token",
        "mask_token",
        "encoder.norm.weight",
    } <= student and "encoder.cls_pos" not in student


def test_finetuning_learns_separable_shapes(tmp_path):
    """Spheres against flat disks (both up to rotation about the up axis): a fine-tuned classifier from scratch
    must tell them apart on held-out clouds, far above chance."""
    import h5py
    import numpy as np
    from conftest import TINY_PATCHES, TINY_STUDENT

    from act3d.config import from_dict
    from act3d.train.finetune import FinetuneRunConfig

    rng = np.random.default_rng(0)
    root = tmp_path / "h5_files" / "main_split"
    root.mkdir(parents=True)
    for split, count in (("training", 48), ("test", 24)):
        labels = np.arange(count) % 2
        u = rng.normal(size=(count, 96, 3))
        u /= np.linalg.norm(u, axis=-1, keepdims=True)
        u[labels == 1, :, 1] *= 0.05  # class 1: a disk in the ground plane
        with h5py.File(root / f"{split}_objectdataset.h5", "w") as f:
            f.create_dataset("data", data=u.astype(np.float32))
            f.create_dataset("label", data=labels.astype(np.uint8))
    cfg = from_dict(
        FinetuneRunConfig,
        {
            "data": {
                "format": "scanobjectnn",
                "variant": "obj_bg",
                "root": str(tmp_path / "h5_files"),
                "num_points": 64,
            },
            "patching": TINY_PATCHES,
            "student": {**TINY_STUDENT, "drop_path": 0.0},
            "head_dropout": 0.0,
            # batch 4: ~130 steps, enough for the batch-norm running variance to forget its initial 1.0
            # (0.9^130),
            # which dwarfs these patch features' variance (~1e-4) for the first ~100 steps
            "optim": {"epochs": 12, "batch_size": 4, "lr": 2e-3, "warmup_epochs": 1},
            "runtime": {"progress": False},
        },
    )
    results = finetune(cfg, tmp_path / "ft").downstream
    assert results.val["oa"] >= 0.8 and results.test["oa"] >= 0.9, results


def test_a_failing_torch_compile_falls_back_to_eager(teacher_cfg, tmp_path, monkeypatch, caplog):
    """torch.compile compiles at the first call, where a missing compiler or an unsupported op raises:
    training then goes on with the eager model, saying so."""

    class Uncompilable(torch.nn.Module):
        def __init__(self, module, mode):
            super().__init__()
            self.module, self.mode = module, mode

        def forward(self, *args):
            raise RuntimeError("no C++ compiler found\nmore details")

    modes = []
    monkeypatch.setattr(torch, "compile", lambda m, mode: modes.append(mode) or Uncompilable(m, mode))
    teacher_cfg.runtime.compile, teacher_cfg.runtime.compile_mode = True, "reduce-overhead"
    teacher_cfg.optim.max_steps = 2
    result = train_teacher(teacher_cfg, tmp_path / "s1")
    assert result.steps == 2 and modes == ["reduce-overhead"]
    assert (
        "torch.compile failed (RuntimeError: no C++ compiler found); training goes on without it"
        in caplog.text
    )


def test_a_scratch_classifier_keeps_pytorchs_default_init_as_the_official_runner(finetune_cfg):
    """runner_finetune.py l.89-93 calls load_model_from_ckpt, whose apply(_init_weights) (act.py l.865-867)
    is PointTransformer's only trunc-normal init, only with a checkpoint: from scratch every layer keeps
    PyTorch's default init, and only cls_token and cls_pos are trunc-normal(0.02) (act.py l.791-792)."""
    torch.manual_seed(0)
    finetune_cfg.student.width = 128
    model = build_classifier(finetune_cfg, [f"c{i}" for i in range(10)])
    first = model.head[0].weight
    # PyTorch's default Linear init: uniform within 1 / sqrt(fan_in), std 1 / sqrt(3 fan_in)
    fan_in = first.shape[1]
    assert first.abs().max() <= 1 / fan_in**0.5 and abs(first.std().item() - 1 / (3 * fan_in) ** 0.5) < 0.003
    qkv = next(m for n, m in model.encoder.blocks.named_modules() if isinstance(m, torch.nn.Linear))
    assert qkv.weight.std().item() > 0.05  # trunc-normal(0.02) would give 0.02
    assert abs(model.encoder.cls_token.std().item() - 0.02) < 0.006


def test_fewshot_trains_on_every_support_cloud_and_reports_the_last_model(tmp_path):
    """Official few-shot: all way x shot support clouds train (no validation split), 150 epochs; act3d
    scores the last model and names the official best-test-epoch number for what it is."""
    from conftest import TINY_STUDENT
    from layouts import write_fewshot

    from act3d.config import load_config, to_dict
    from act3d.train.finetune import FinetuneRunConfig

    root = write_fewshot(tmp_path)  # 5-way 10-shot: 50 support clouds
    over = [f"data.root={root}", "data.num_points=64", "data.load_points=256", "data.on_device=false"]
    over += ["patching.num_groups=8", "patching.group_size=8", "optim.epochs=2", "optim.batch_size=5"]
    over += [f"student.{k}={v}" for k, v in TINY_STUDENT.items()] + [
        "runtime.progress=false",
        "runtime.precision=float32",
    ]
    cfg = load_config(FinetuneRunConfig, "finetune", "modelnet40_fewshot", overrides=over)
    assert (cfg.optim.epochs, cfg.val_fraction) == (2, 0.0) and to_dict(cfg)["report_test_selected"]
    res = finetune(cfg, tmp_path / "fs").downstream
    assert res.steps == 2 * 50 // 5  # every support cloud, every epoch (90% of them trained 9 steps)
    assert res.val_samples == 0 and res.val == {} and res.selected_step == res.steps
    assert 0 <= res.test_selected_on_test["oa"] <= 1 and res.test_selected_on_test["oa"] >= res.test["oa"]
    # the official head scores 40 classes in every episode (fewshot_modelnet.yaml l.35)
    assert len(res.class_names) == 40 and res.class_names[5:] == [f"unused_{i}" for i in range(5, 40)]
    assert len(res.confusion) == 40 and sum(map(sum, res.confusion)) == res.test_samples


def test_the_fps_pool_changes_every_step(finetune_cfg):
    """The official readers shuffle each training cloud before FPS: the 1200-point pool is not the same
    stored points every epoch."""
    from act3d.train import finetune as ft

    finetune_cfg.sampling, finetune_cfg.data.num_points = "fps", 64
    task = ft.ClassifierTask(build_classifier(finetune_cfg, [f"c{i}" for i in range(15)]), finetune_cfg)
    pools = []
    original = ft.random_subset
    ft.random_subset = lambda pool, count: pools.append(pool) or original(pool, count)
    try:
        clouds = torch.randn(2, 256, 3)
        for seed in (0, 1, 0):
            torch.manual_seed(seed)  # the loop seeds every step
            task.step(task.module, (clouds, torch.tensor([0, 1])), 0)
    finally:
        ft.random_subset = original
    assert pools[0].shape == (2, 75, 3)  # fps_pool_size(64) = round(64 x 1.17)
    assert not torch.equal(pools[0], pools[1]) and torch.equal(pools[0], pools[2])


def test_the_test_selected_readings_are_the_official_runners(finetune_cfg, tmp_path, monkeypatch):
    """ACT's runner tests after every epoch but its first (runner_finetune.py l.223), keeps the best as
    ckpt-best and runs its voting rounds on that model (l.369-432): act3d's test-selected readings do the
    same, beside the validation-selected test score."""
    from act3d.train import finetune as ft

    readings, test_split, original = [], [], ft.evaluate_classifier

    def recording(model, points, labels, cfg, votes=1, seed=0):
        measured = original(model, points, labels, cfg, votes, seed)
        if votes == 1:  # val_fraction 0: every reading with one vote is of the test split
            readings.append((measured["acc"], {k: v.clone() for k, v in model.state_dict().items()}))
            test_split[:] = [points, labels]
        return measured

    monkeypatch.setattr(ft, "evaluate_classifier", recording)
    cfg = replace(finetune_cfg, val_fraction=0.0, report_test_selected=True, test_selected_vote_rounds=2)
    cfg.optim.epochs, cfg.votes = 3, 1
    res = finetune(cfg, tmp_path / "ft").downstream
    # the readings after epochs 2 and 3 (none after the first, as officially); the final test read follows
    assert len(readings) == 3
    per_epoch = readings[:2]
    best = max(range(2), key=lambda i: (per_epoch[i][0], -i))  # the first of equals
    assert res.test_selected_on_test["oa"] == per_epoch[best][0]
    model = build_classifier(cfg, res.class_names)
    model.load_state_dict(per_epoch[best][1])
    votes = [original(model.eval(), *test_split, cfg, votes=2, seed=r)["acc"] for r in range(2)]
    assert res.test_selected_on_test["vote_oa"] == max(votes)
