"""Segmentation transfer: ShapeNetPart part segmentation and S3DIS (Area 5) semantic segmentation."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from act3d.data.dataset import DataConfig, check_points_per_cloud, open_source, split_validation
from act3d.data.s3dis import CLASSES as S3DIS_CLASSES
from act3d.data.segmentation import PartShapes, RoomBlocks, centred_block, label_weights, whole_room_blocks
from act3d.data.shapenet import NUM_PARTS, PART_IDS
from act3d.data.transforms import scale_and_shift
from act3d.errors import require
from act3d.eval.metrics import iou_per_class, mean_class_accuracy, overall_accuracy, part_segmentation_miou
from act3d.models import zoo
from act3d.models.segmenter import HIDDEN, PROPAGATION, PointSegmenter, SegmenterHead
from act3d.models.student import StudentConfig
from act3d.ops.grouping import PatchConfig
from act3d.train.metrics_log import Metric
from act3d.train.options import OptimConfig, RuntimeConfig
from act3d.train.run_folder import refuse_held_run, run_files
from act3d.train.stage import (
    DownstreamResult,
    StageResult,
    best_on_test,
    reload_best,
    student_backbone,
    train,
)

log = logging.getLogger(__name__)
KIND = zoo.SEGMENTER


# the data formats each task reads
TASK_FORMATS = {"part": ("shapenetpart",), "semantic": ("s3dis",)}


@dataclass
class SegmentRunConfig:
    task: Literal["part", "semantic"] = "part"
    data: DataConfig = field(default_factory=lambda: DataConfig(format="shapenetpart", num_points=2048))
    patching: PatchConfig = field(default_factory=lambda: PatchConfig(num_groups=128, group_size=32))
    student: StudentConfig = field(default_factory=StudentConfig)  # architecture when training from scratch
    checkpoint: str | None = None  # Stage II student checkpoint; None = from scratch
    # widths of the feature propagation and of the head's two hidden layers (official pt.py: 1536, 1024; 512, 256)
    propagation: list[int] = field(default_factory=lambda: list(PROPAGATION))
    hidden: list[int] = field(default_factory=lambda: list(HIDDEN))
    # random scale 0.8-1.25 and shift 0.1 of every training batch, both tasks (official main.py)
    augmentation: Literal["none", "scale_shift"] = "scale_shift"
    block: float = 1.0  # S3DIS block size in metres
    # S3DIS: an epoch draws int(training points x sample_rate / num_points) blocks (official S3DISDataset)
    sample_rate: float = 1.0
    class_weights: bool = True  # S3DIS: cross-entropy weighted by (max_freq / freq)^(1/3), as the official
    color: bool = False  # S3DIS: feed rgb to the head (the official model sees xyz only)
    # > 0: the checkpoint is selected on validation data: S3DIS holds out this fraction of the training rooms,
    # ShapeNetPart uses its own val split (whatever the fraction). 0: the official data, no validation and
    # the last model scored: S3DIS trains on every training room, ShapeNetPart on train + val
    # (part_segmentation/main.py l.109)
    val_fraction: float = 0.1
    # the official reading beside act3d's: the test split scored after every epoch and each measure's best
    # kept on its own (part_segmentation/main.py l.332-337: class and instance mIoU; semantic_segmentation/
    # main.py l.304-305: the Area 5 block mIoU), reported apart as `test_selected_on_test`
    report_test_selected: bool = False
    # S3DIS test: `blocks`, random blocks of Area 5 as the official main.py scores every epoch; `whole_rooms`,
    # every Area 5 point in 1 m columns at `stride` with `votes` passes, as the official main_test.py
    test_protocol: Literal["blocks", "whole_rooms"] = "blocks"
    stride: float = 0.5
    votes: int = 3
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, weight_decay=0.05, batch_size=16))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    pictures: int = 4

    # what a resumed run may change besides optim and runtime (act3d.train.run_folder.resumable)
    RESUMABLE: ClassVar[tuple[str, ...]] = ("pictures", "report_test_selected")

    def __post_init__(self) -> None:
        check_points_per_cloud(self.data, self.patching)
        require(
            self.data.format in TASK_FORMATS[self.task],
            "data.format",
            f"{' or '.join(TASK_FORMATS[self.task])} for task {self.task!r} "
            f"(task semantic reads s3dis, part reads shapenetpart)",
            self.data.format,
        )
        require(
            self.block > 0 and self.stride > 0,
            "block / stride",
            "sizes in metres > 0",
            (self.block, self.stride),
        )
        require(self.sample_rate > 0, "sample_rate", "a value > 0", self.sample_rate)
        require(
            len(self.propagation) >= 1 and len(self.hidden) == 2 and min(self.propagation + self.hidden) >= 1,
            "propagation / hidden",
            "one or more widths >= 1 / two widths >= 1",
            (self.propagation, self.hidden),
        )
        require(self.votes >= 1, "votes", "an integer >= 1", self.votes)
        require(0 <= self.val_fraction < 1, "val_fraction", "a fraction in [0, 1)", self.val_fraction)


class SegmentTask:
    kind = KIND

    def __init__(
        self, model: PointSegmenter, cfg: SegmentRunConfig, class_weights: torch.Tensor | None = None
    ):
        self.module, self.cfg, self.class_weights = model, cfg, class_weights
        self.part = cfg.task == "part"  # part segmentation (ShapeNetPart), else semantic (S3DIS)

    def to(self, device: torch.device) -> None:
        self.module.to(device)
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device)

    def forward(self, model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        if self.part:
            points, labels, category = batch
            extra = None
        else:
            points, color, labels, category = batch
            extra = color if self.cfg.color else None
        return model(points, extra, category if self.part else None), labels

    def step(self, model: nn.Module, batch, step: int) -> tuple[torch.Tensor, dict[str, Metric]]:
        if self.cfg.augmentation == "scale_shift":
            batch = (scale_and_shift(batch[0]), *batch[1:])
        logits, labels = self.forward(model, batch)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), weight=self.class_weights
        )
        return loss, {"train_acc": (logits.argmax(-1) == labels).float().mean()}


def _datasets(cfg: SegmentRunConfig):
    """(training source, training, validation (None with `val_fraction` 0) and test datasets). ShapeNetPart
    validates on its own val split; S3DIS on `val_fraction` of the training rooms (Area 5 is the test set)."""
    test_src, n, seed = open_source(cfg.data, "test"), cfg.data.num_points, cfg.runtime.seed
    if cfg.task == "part":
        official = cfg.val_fraction == 0
        train_src = open_source(cfg.data, "trainval" if official else "train")
        val = None if official else PartShapes(open_source(cfg.data, "val"), n, False, seed)
        return train_src, PartShapes(train_src, n, True, seed), val, PartShapes(test_src, n, False, seed)
    train_src = open_source(cfg.data, "train")
    fit_src, val_src = split_validation(train_src, cfg.val_fraction, seed)
    blocks = dict(block=cfg.block, sample_rate=cfg.sample_rate, seed=seed)
    return (
        train_src,
        RoomBlocks(fit_src, n, True, **blocks),
        RoomBlocks(val_src, n, False, **blocks) if val_src is not None else None,
        RoomBlocks(test_src, n, False, **blocks),
    )


@torch.no_grad()
def predict_all(
    task: SegmentTask, data, class_names: list[str], batch_size: int = 16
) -> tuple[list[np.ndarray], list[np.ndarray], list[int], list]:
    """Per-sample predictions, truths and categories. Part predictions are restricted to the parts of the
    shape's category, as the standard ShapeNetPart evaluation does."""
    model = task.module.eval()
    device = next(model.parameters()).device
    preds, truths, cats, inputs = [], [], [], []
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    part_mask = None
    if task.part:
        part_mask = torch.full((len(class_names), NUM_PARTS), float("-inf"), device=device)
        for c, name in enumerate(class_names):
            part_mask[c, PART_IDS[name]] = 0.0
    for batch in loader:
        batch = [b.to(device) if isinstance(b, torch.Tensor) else b for b in batch]
        logits, labels = task.forward(model, batch)
        category = batch[-1]
        if part_mask is not None:
            logits = logits + part_mask[category].unsqueeze(1)
        preds += list(logits.argmax(-1).cpu().numpy())
        truths += list(labels.cpu().numpy())
        cats += [int(c) for c in torch.as_tensor(category).reshape(-1).tolist()]
        inputs += list(batch[0].cpu().numpy())
    return preds, truths, cats, inputs


def scores(
    task: SegmentTask, preds: list[np.ndarray], truths: list[np.ndarray], cats: list, names: list[str]
):
    """Part: class and instance mIoU; semantic: OA, mAcc and mIoU over all points."""
    if task.part:
        class_miou, instance_miou = part_segmentation_miou(preds, truths, cats, [PART_IDS[n] for n in names])
        return {"class_miou": class_miou, "instance_miou": instance_miou}
    p, t = np.concatenate(preds), np.concatenate(truths)
    return {
        "oa": overall_accuracy(p, t),
        "macc": mean_class_accuracy(p, t, len(S3DIS_CLASSES)),
        "miou": float(np.nanmean(iou_per_class(p, t, len(S3DIS_CLASSES)))),
    }


def evaluate(task: SegmentTask, data) -> dict[str, float]:
    names = data.source.class_names
    preds, truths, cats, _ = predict_all(task, data, names)
    return scores(task, preds, truths, cats, names)


@torch.no_grad()
def predict_whole_rooms(
    task: SegmentTask, rooms, seed: int, batch_size: int = 16
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every point's label of every room (official main_test.py): `votes` passes over each room's
    `whole_room_blocks`, each point's label the class it was predicted most often. -> (predictions, truths)."""
    cfg, model = task.cfg, task.module.eval()
    device = next(model.parameters()).device
    rng = np.random.default_rng([seed, 5])
    preds, truths = [], []
    for r in range(len(rooms)):
        room = rooms[r]
        counts = np.zeros((len(room.points), len(S3DIS_CLASSES)), dtype=np.int64)
        for _ in range(cfg.votes):
            pieces = whole_room_blocks(room.points, cfg.data.num_points, rng, cfg.block, cfg.stride)
            for first in range(0, len(pieces), batch_size):
                chunk = pieces[first : first + batch_size]
                batch = torch.utils.data.default_collate([centred_block(room, i, c) for i, c in chunk])
                batch = [b.to(device) if isinstance(b, torch.Tensor) else b for b in batch]
                logits, _ = task.forward(model, batch)
                np.add.at(counts, (np.stack([i for i, _ in chunk]), logits.argmax(-1).cpu().numpy()), 1)
        preds.append(counts.argmax(1))
        truths.append(room.point_labels)
    return preds, truths


def segment(
    cfg: SegmentRunConfig, out_dir: str | Path, resume: bool = False, overwrite: bool = False
) -> StageResult:
    """Train and evaluate a segmenter; writes `results.json`, `predictions.png` and the usual run files."""
    out_dir = Path(out_dir)
    refuse_held_run(out_dir, resume, overwrite)
    torch.manual_seed(cfg.runtime.seed)
    encoder, student = student_backbone(cfg)
    cfg = replace(cfg, student=student)  # a pretrained student brings its own architecture
    train_src, train_data, val_data, test_data = _datasets(cfg)
    names = list(train_src.class_names) if cfg.task == "part" else list(S3DIS_CLASSES)
    head = SegmenterHead(
        num_classes=NUM_PARTS if cfg.task == "part" else len(S3DIS_CLASSES),
        num_categories=len(names) if cfg.task == "part" else 0,
        point_extra=3 if cfg.task == "semantic" and cfg.color else 0,
        propagation=list(cfg.propagation),
        hidden=list(cfg.hidden),
    )
    arch = zoo.segmenter_arch(cfg.student, cfg.patching, cfg.data.num_points, cfg.task, names, head)
    model = PointSegmenter(encoder, head, cfg.patching)
    weights = None
    if cfg.task == "semantic" and cfg.class_weights:  # from the rooms that train, as the official loader
        weights = torch.from_numpy(label_weights(train_data.rooms, len(S3DIS_CLASSES)))
        log.info("class weights: %s", ", ".join(f"{n} {w:.2f}" for n, w in zip(S3DIS_CLASSES, weights)))
    with run_files(out_dir, cfg, resume, overwrite) as main:
        task = SegmentTask(model, cfg, weights)

        def evaluate_epoch(m: PointSegmenter) -> dict[str, float]:
            measured = {}
            if val_data is not None:
                measured |= {f"val_{k}": v for k, v in evaluate(task, val_data).items()}
            if cfg.report_test_selected:  # the official runners' per-epoch test evaluation, a new draw each
                test_data.draw += 1
                measured |= {f"test_{k}": v for k, v in evaluate(task, test_data).items()}
            return measured

        result = train(
            task,
            train_data,
            cfg,
            out_dir,
            resume,
            arch,
            evaluate=evaluate_epoch if val_data is not None or cfg.report_test_selected else None,
            best_metric=("val_instance_miou" if task.part else "val_miou") if val_data is not None else None,
        )
        # the validation-selected model (the last one without validation): the test set is read once
        reload_best(model, out_dir, KIND, result)
        test_data.draw = 0  # the draw every test score reads
        if cfg.task == "semantic" and cfg.test_protocol == "whole_rooms":
            preds, truths = predict_whole_rooms(task, test_data.source, cfg.runtime.seed)
            test_scores, test_samples = scores(task, preds, truths, [], names), sum(map(len, truths))
        else:
            test_scores, test_samples = evaluate(task, test_data), len(test_data)
        protocol = {"test": cfg.test_protocol if cfg.task == "semantic" else "shapes"}
        if cfg.report_test_selected:  # scored as the official main.py scores every epoch
            protocol["test_selected_on_test"] = "shapes" if task.part else "blocks"
        results = DownstreamResult(
            task=cfg.task,
            dataset=test_data.source.name,
            seed=cfg.runtime.seed,
            pretrained=cfg.checkpoint,
            steps=result.steps,
            seconds=round(result.seconds, 1),
            selected_step=result.best["step"] if result.best else result.steps,
            val={k.removeprefix("val_"): v for k, v in (result.best or {}).items() if k.startswith("val_")},
            test=test_scores,
            val_samples=len(val_data) if val_data is not None else 0,
            test_samples=test_samples,
            protocol=protocol,
            test_selected_on_test=best_on_test(result.history, OFFICIAL_READINGS[cfg.task]),
            class_names=names,
        )
        if main:
            results.write(out_dir)
            render_predictions(task, test_data, out_dir / "predictions.png", cfg.pictures)
    return StageResult.of(result, results)


# what the official mains keep the best of over their per-epoch test evaluations, each on its own
OFFICIAL_READINGS = {"part": ("class_miou", "instance_miou"), "semantic": ("miou",)}


def render_predictions(task: SegmentTask, data, path: Path, count: int) -> Path:
    """Ground truth beside prediction for a few test samples, coloured by label."""
    import matplotlib.pyplot as plt

    from act3d.viz import render_clouds

    subset = torch.utils.data.Subset(data, list(range(min(count, len(data)))))
    preds, truths, _, inputs = predict_all(task, subset, data.source.class_names)
    cmap = plt.get_cmap("tab20")
    clouds, colors, titles = [], [], []
    for i, (p, t, pts) in enumerate(zip(preds, truths, inputs)):
        clouds += [pts, pts]
        colors += [cmap(t % 20), cmap(p % 20)]
        titles += [f"truth {i}", f"prediction {i} ({100 * (p == t).mean():.0f}% right)"]
    return render_clouds(clouds, path, titles, colors=colors, ncols=4)
