"""Scene-level 3D object detection: 3DETR (facebookresearch/3detr @a5d1aad) on ScanNet's scenes or the
embedded rooms, on its own encoder or on act3d's student (`DetrConfig.encoder`, `act3d.models.detr`).

Training is 3DETR's: its augmentation (`act3d.data.scannet.detection_sample`), its set criterion
(`act3d.models.detr.criterion`), AdamW with every weight decayed, its warm-up-then-cosine schedule stepped
per iteration and its gradient clipping at 0.1 (`presets/detect.*`). The checkpoint is selected on the
mAP25 of held-out training scans (`val_fraction`) and ScanNet's val list is read once, as the test split;
3DETR's own reading (the best val mAP over its evaluations, main.py l.240-262) is reported beside it as
`test_selected_on_test` with `report_test_selected`. Evaluation is 3DETR's: `parse_predictions` (empty boxes
dropped, 3D NMS) and its AP calculator (`act3d.eval.detection`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from act3d.atomic import write_text_atomic
from act3d.data.scannet import CLASSES
from act3d.data.scenes import DetectionScenes, SceneConfig, scene_splits
from act3d.errors import require
from act3d.eval.detection import average_precision, parse_predictions
from act3d.models import zoo
from act3d.models.detr.criterion import CriterionConfig, detection_loss
from act3d.models.detr.model import Detector3DETR, DetrConfig
from act3d.models.student import StudentConfig
from act3d.ops.boxes import to_depth_np
from act3d.train.metrics_log import Metric
from act3d.train.options import OptimConfig, RuntimeConfig
from act3d.train.run_folder import refuse_held_run, run_files
from act3d.train.stage import DownstreamResult, StageResult, best_on_test, reload_best, train

log = logging.getLogger(__name__)
KIND = zoo.DETECTOR
MEASURES = ("mAP25", "mAP50", "AR25", "AR50")
# the Stage II / III checkpoints whose student an `act` encoder starts from
STUDENT_KINDS = (zoo.STUDENT, zoo.CLASSIFIER, zoo.SEGMENTER)


@dataclass
class DetectRunConfig:
    scenes: SceneConfig = field(default_factory=SceneConfig)
    detr: DetrConfig = field(default_factory=DetrConfig)
    criterion: CriterionConfig = field(default_factory=CriterionConfig)
    # detr.encoder act: a Stage II (student) or Stage III (classifier, segmenter) checkpoint whose student
    # becomes the encoder; None: a fresh student of `student`'s architecture
    checkpoint: str | None = None
    student: StudentConfig = field(default_factory=StudentConfig)
    # > 0: this fraction of the training rooms selects the checkpoint (on mAP25) and the val list is the
    # test split, read once; 0: no selection, the last model is scored
    val_fraction: float = 0.1
    evaluate_every: int = 10  # epochs between evaluations (main.py's --eval_every_epoch)
    # the official reading beside act3d's: the test split scored at every evaluation, each measure's best
    # kept (main.py l.240-262 keeps the best val mAP25), reported apart as `test_selected_on_test`
    report_test_selected: bool = False
    eval_batch_size: int = 8
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            epochs=1080,
            batch_size=8,
            lr=5e-4,
            min_lr=1e-6,
            weight_decay=0.1,
            warmup_epochs=9,
            grad_clip=0.1,
            schedule="3detr",
            warmup_lr=1e-6,
            decay="all",
        )  # fmt: skip
    )
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    pictures: int = 2  # test scenes drawn with their boxes in detections.png

    RESUMABLE: ClassVar[tuple[str, ...]] = ("pictures", "report_test_selected", "eval_batch_size")
    # what `--compare-to` lets differ between two runs: the detectors compared (3DETR against an act3d
    # student as its encoder), on the same scenes, criterion and training
    COMPARED: ClassVar[tuple[str, ...]] = ("detr", "student")

    def __post_init__(self) -> None:
        require(
            self.detr.num_classes == len(CLASSES),
            "detr.num_classes",
            f"{len(CLASSES)}, ScanNet's detection classes",
            self.detr.num_classes,
        )
        require(
            self.detr.preenc_npoints <= self.scenes.num_points,
            "detr.preenc_npoints",
            f"at most scenes.num_points = {self.scenes.num_points}",
            self.detr.preenc_npoints,
        )
        require(0 <= self.val_fraction < 1, "val_fraction", "a fraction in [0, 1)", self.val_fraction)
        require(self.evaluate_every >= 1, "evaluate_every", "an integer >= 1", self.evaluate_every)
        require(self.eval_batch_size >= 1, "eval_batch_size", "an integer >= 1", self.eval_batch_size)
        require(
            self.checkpoint is None or self.detr.encoder == "act",
            "checkpoint",
            "null unless detr.encoder is act (3DETR's own encoders start fresh)",
            self.checkpoint,
        )


class DetectTask:
    kind = KIND

    def __init__(self, model: Detector3DETR, criterion: CriterionConfig):
        self.module, self.criterion = model, criterion

    def to(self, device: torch.device) -> None:
        self.module.to(device)

    def step(self, model: nn.Module, batch: dict, step: int) -> tuple[torch.Tensor, dict[str, Metric]]:
        predictions = model(
            batch["point_clouds"], batch["point_cloud_dims_min"], batch["point_cloud_dims_max"]
        )
        loss, terms = detection_loss(predictions, batch, self.criterion)
        last = ("loss_giou", "loss_sem_cls", "loss_center", "loss_size")  # the last decoder layer's
        return loss, {k: terms[k].detach() for k in last if k in terms}


def detector(cfg: DetectRunConfig) -> tuple[Detector3DETR, DetectRunConfig]:
    """The detector a run trains, and the config that describes it: 3DETR's encoder, or a student (fresh, or
    the pretrained one of `cfg.checkpoint`, whose architecture and width then stand)."""
    if cfg.detr.encoder != "act":
        return Detector3DETR(cfg.detr), cfg
    encoder = None
    student = cfg.student
    if cfg.checkpoint is not None:
        model, ckpt = zoo.load(cfg.checkpoint, STUDENT_KINDS)
        encoder, student = model.encoder, zoo.student_config(ckpt["arch"])
        log.info("the encoder is the student of %s (%s)", cfg.checkpoint, ckpt["kind"])
    cfg = replace(cfg, student=student, detr=replace(cfg.detr, enc_dim=student.width))
    model = Detector3DETR(cfg.detr, student)
    if encoder is not None:
        model.encoder.load_student(encoder)
    return model, cfg


def ground_truths(batch: dict) -> list[list[tuple[int, np.ndarray]]]:
    """3DETR's `parse_groundtruths` (ap_calculator.py l.272-292): per scene `(class, corners (8, 3))` of each
    present box."""
    corners, classes, present = (
        batch[k].cpu().numpy() for k in ("gt_box_corners", "gt_box_sem_cls_label", "gt_box_present")
    )
    return [
        [(int(classes[i, j]), corners[i, j]) for j in range(corners.shape[1]) if present[i, j] == 1]
        for i in range(len(corners))
    ]


@torch.no_grad()
def predict_scenes(
    model: Detector3DETR, data: DetectionScenes, batch_size: int, keep: int = 0
) -> tuple[list, list, list]:
    """Every scene's predictions (`parse_predictions`) and true boxes, in order, and the first `keep`
    scenes' samples (to draw them)."""
    model = model.eval()
    device = next(model.parameters()).device
    preds, truths, samples = [], [], []
    for batch in torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False):
        points = batch["point_clouds"].to(device)
        out = model.detect(
            points, batch["point_cloud_dims_min"].to(device), batch["point_cloud_dims_max"].to(device)
        )
        preds += parse_predictions(
            out["box_corners"].cpu().numpy(),
            out["sem_cls_prob"].cpu().numpy(),
            out["objectness_prob"].cpu().numpy(),
            batch["point_clouds"].numpy(),
        )
        truths += ground_truths(batch)
        samples += [{k: v[i].numpy() for k, v in batch.items()} for i in range(len(points))][
            : keep - len(samples)
        ]
    return preds, truths, samples


def evaluate(model: Detector3DETR, data: DetectionScenes, batch_size: int) -> dict[str, Any]:
    """3DETR's AP calculator over `data`: `MEASURES` (fractions) and `per_class`."""
    preds, truths, _ = predict_scenes(model, data, batch_size)
    return average_precision(preds, truths, (0.25, 0.5), CLASSES)


def detect(
    cfg: DetectRunConfig, out_dir: str | Path, resume: bool = False, overwrite: bool = False
) -> StageResult:
    """Train and evaluate a detector; writes `results.json`, `per_class_ap.json`, `detections.png` and the
    usual run files."""
    out_dir = Path(out_dir)
    refuse_held_run(out_dir, resume, overwrite)
    torch.manual_seed(cfg.runtime.seed)
    model, cfg = detector(cfg)
    train_data, val_data, test_data = scene_splits(cfg.scenes, cfg.val_fraction, cfg.runtime.seed)
    arch = zoo.detector_arch(
        cfg.detr, cfg.student if cfg.detr.encoder == "act" else None, cfg.scenes.num_points, list(CLASSES)
    )
    log.info(
        "3DETR (%s encoder, %s parameters): %d training, %d validation, %d test scenes",
        cfg.detr.encoder,
        f"{sum(p.numel() for p in model.parameters()):,}",
        len(train_data),
        len(val_data) if val_data is not None else 0,
        len(test_data),
    )
    with run_files(out_dir, cfg, resume, overwrite) as main:
        task = DetectTask(model, cfg.criterion)

        def evaluate_scenes(m: Detector3DETR) -> dict[str, float]:
            measured = {}
            if val_data is not None:
                scores = evaluate(m, val_data, cfg.eval_batch_size)
                measured |= {f"val_{k}": scores[k] for k in MEASURES}
            if cfg.report_test_selected:
                scores = evaluate(m, test_data, cfg.eval_batch_size)
                measured |= {f"test_{k}": scores[k] for k in MEASURES}
            return measured

        result = train(
            task,
            train_data,
            cfg,
            out_dir,
            resume,
            arch,
            evaluate=evaluate_scenes if val_data is not None or cfg.report_test_selected else None,
            best_metric="val_mAP25" if val_data is not None else None,
            evaluate_every=cfg.evaluate_every,
        )
        reload_best(model, out_dir, KIND, result)  # the validation-selected model; the test split read once
        preds, truths, samples = predict_scenes(model, test_data, cfg.eval_batch_size, keep=cfg.pictures)
        test = average_precision(preds, truths, (0.25, 0.5), CLASSES)
        results = DownstreamResult(
            task="detection",
            dataset="rooms" if cfg.scenes.root == "default" else "scannet",
            seed=cfg.runtime.seed,
            pretrained=cfg.checkpoint,
            steps=result.steps,
            seconds=round(result.seconds, 1),
            selected_step=result.best["step"] if result.best else result.steps,
            val={k.removeprefix("val_"): v for k, v in (result.best or {}).items() if k.startswith("val_")},
            test={k: test[k] for k in MEASURES},
            val_samples=len(val_data) if val_data is not None else 0,
            test_samples=len(test_data),
            protocol={
                "test": "scannetv2_val",
                "selected_on": "val_mAP25" if val_data is not None else "last",
            },
            test_selected_on_test=best_on_test(result.history, MEASURES),
            class_names=list(CLASSES),
        )
        if main:
            results.write(out_dir)
            write_text_atomic(out_dir / "per_class_ap.json", json.dumps(test["per_class"], indent=2) + "\n")
            render_detections(preds, samples, out_dir / "detections.png")
    return StageResult.of(result, results)


def render_detections(preds: list, samples: list[dict], path: Path, threshold: float = 0.3) -> Path | None:
    """A few test scenes from above with their true boxes and their predictions, each box once under its
    best class: those scoring at least `threshold`, and at least the best as many as the scene has true
    boxes, so that an undertrained model still shows where it looks."""
    from act3d.viz import plot_scene_boxes

    if not samples:
        return None
    scenes = []
    for i, sample in enumerate(samples):
        present = sample["gt_box_present"] == 1
        centers, sizes = sample["gt_box_centers"][present], sample["gt_box_sizes"][present]
        truth = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)
        best: dict[bytes, tuple[float, np.ndarray]] = {}
        for _, corners, score in preds[i]:
            key = corners.tobytes()
            if score > best.get(key, (-1.0,))[0]:
                best[key] = (float(score), corners)
        ranked = sorted(best.values(), key=lambda sc: -sc[0])
        shown = [sc for k, sc in enumerate(ranked) if sc[0] >= threshold or k < len(truth)]
        predicted = [np.concatenate([to_depth_np(c).min(0), to_depth_np(c).max(0), [s]]) for s, c in shown]
        scenes.append(
            (
                sample["point_clouds"],
                truth,
                np.array(predicted).reshape(-1, 7),
                f"test scene {i}: {len(truth)} true boxes; predictions scoring >= {threshold} "
                f"({sum(s >= threshold for s, _ in shown)}), or the best {len(truth)}",
            )
        )
    return plot_scene_boxes(scenes, path)
