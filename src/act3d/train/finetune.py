"""Stage III: fine-tune (or probe with a frozen backbone) the student on a labelled classification set."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from act3d.config import from_dict, to_dict
from act3d.data.dataset import DataConfig, PointClouds, open_source, stack_clouds
from act3d.data.transforms import AUGMENTATIONS, scale_and_translate
from act3d.eval.metrics import confusion_matrix, mean_class_accuracy, overall_accuracy
from act3d.models.autoencoder import PatchConfig
from act3d.models.classifier import PointClassifier, Transfer
from act3d.models.student import StudentConfig, StudentEncoder
from act3d.ops.grouping import group_patches
from act3d.train.checkpoint import load_checkpoint, load_model_state
from act3d.train.loop import FitResult, OptimConfig, RuntimeConfig, fit, run_files
from act3d.train.stage2 import load_student_for_transfer

log = logging.getLogger(__name__)
KIND = "act3d-classifier"


@dataclass
class FinetuneRunConfig:
    data: DataConfig = field(default_factory=lambda: DataConfig(variant="scan"))
    patches: PatchConfig = field(default_factory=PatchConfig)
    student: StudentConfig = field(default_factory=StudentConfig)  # architecture when training from scratch
    checkpoint: str | None = None  # Stage II student checkpoint; None = from scratch
    transfer: Transfer = "full"
    head_dropout: float = 0.5
    augmentation: Literal["none", "scale_translate", "rotate", "scale_translate_rotate"] = "scale_translate"
    votes: int = 1  # test-time augmentation passes averaged at the end (ModelNet40 voting: 10)
    eval_every: int = 1  # evaluate (and track the best checkpoint) every N epochs; 0 = only at the end
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, weight_decay=0.05, batch_size=32))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


class ClassifierTask:
    kind = KIND

    def __init__(self, model: PointClassifier, cfg: FinetuneRunConfig):
        self.module, self.cfg = model, cfg

    def step(self, model: nn.Module, batch, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        points, labels = batch
        points = AUGMENTATIONS[self.cfg.augmentation](points, None)
        logits = model(group_patches(points, self.cfg.patches.num_groups, self.cfg.patches.group_size))
        loss = F.cross_entropy(logits, labels)
        return loss, {"train_acc": (logits.argmax(-1) == labels).float().mean().item()}


def build_classifier(cfg: FinetuneRunConfig, num_classes: int) -> PointClassifier:
    if cfg.checkpoint is None:
        encoder = StudentEncoder(cfg.student)
    else:
        encoder, pre_cfg = load_student_for_transfer(cfg.checkpoint, cfg.student.drop_path)
        if pre_cfg.patches.group_size != cfg.patches.group_size:
            log.warning("the student was pretrained on %d-point patches, fine-tuning uses %d",
                        pre_cfg.patches.group_size, cfg.patches.group_size)
        cfg.student = pre_cfg.student
    return PointClassifier(encoder, num_classes, cfg.transfer, cfg.head_dropout)


@torch.no_grad()
def predict_logits(model: PointClassifier, points: torch.Tensor, patches: PatchConfig, votes: int = 1,
                   batch_size: int = 64, seed: int = 0) -> torch.Tensor:
    """`(M, N, 3)` clouds -> `(M, classes)` logits, averaged over `votes` scale/translate augmentations
    (the first pass is un-augmented)."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    out = []
    for chunk in points.split(batch_size):
        chunk = chunk.to(device)
        total = 0
        for v in range(votes):
            pts = chunk if v == 0 else scale_and_translate(chunk, generator=gen)
            total = total + F.softmax(model(group_patches(pts, patches.num_groups, patches.group_size)), dim=-1)
        out.append(total / votes)
    return torch.cat(out).cpu()


def evaluate_classifier(model: PointClassifier, points: torch.Tensor, labels: torch.Tensor, cfg: FinetuneRunConfig,
                        votes: int = 1) -> dict[str, float]:
    probs = predict_logits(model, points, cfg.patches, votes, seed=cfg.runtime.seed)
    pred, truth = probs.argmax(-1).numpy(), labels.numpy()
    return {"acc": overall_accuracy(pred, truth), "macc": mean_class_accuracy(pred, truth, probs.shape[-1])}


def finetune(cfg: FinetuneRunConfig, out_dir: str | Path, resume: bool = False) -> dict:
    """Train and evaluate a classifier; writes `results.json` (and the usual run files) to `out_dir`."""
    out_dir = Path(out_dir)
    torch.manual_seed(cfg.runtime.seed)
    train_source, test_source = open_source(cfg.data, "train"), open_source(cfg.data, "test")
    model = build_classifier(cfg, len(train_source.class_names))  # fills cfg.student from the checkpoint
    with run_files(out_dir, cfg) as main:
        test_points, test_labels = stack_clouds(test_source, cfg.data.num_points, seed=cfg.runtime.seed)
        train_data = PointClouds(train_source, cfg.data.num_points, train=True, seed=cfg.runtime.seed)
        evaluate = lambda m: evaluate_classifier(m, test_points, test_labels, cfg)  # noqa: E731
        extra = {"num_classes": len(train_source.class_names), "class_names": list(train_source.class_names)}
        result: FitResult = fit(ClassifierTask(model, cfg), train_data, cfg.optim, cfg.runtime, out_dir, to_dict(cfg),
                                resume=resume, evaluate=evaluate, best_metric="acc", evaluate_every=cfg.eval_every,
                                extra=extra)
        final = evaluate_classifier(model, test_points, test_labels, cfg, votes=cfg.votes)
        probs = predict_logits(model, test_points, cfg.patches)
        cm = confusion_matrix(probs.argmax(-1).numpy(), test_labels.numpy(), len(train_source.class_names))
        results = {
            "task": "classification", "dataset": test_source.name, "transfer": cfg.transfer,
            "pretrained": cfg.checkpoint, "seed": cfg.runtime.seed, "steps": result.steps, "seconds": round(result.seconds, 1),
            "test_acc": final["acc"], "test_macc": final["macc"], "votes": cfg.votes,
            "best_test_acc": result.best["acc"] if result.best else None,
            "class_names": list(train_source.class_names), "confusion": cm.tolist(),
        }
        if main:
            (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results


def load_classifier(path: str | Path, ckpt: dict | None = None) -> tuple[PointClassifier, FinetuneRunConfig, list[str]]:
    """A fine-tuned classifier from its checkpoint (`ckpt`: the file's already-read contents)."""
    ckpt = ckpt if ckpt is not None else load_checkpoint(path, KIND)
    cfg = from_dict(FinetuneRunConfig, ckpt["config"])
    model = PointClassifier(StudentEncoder(cfg.student), ckpt["num_classes"], cfg.transfer, cfg.head_dropout)
    load_model_state(model, ckpt["model"], str(path))
    return model.eval(), cfg, list(ckpt["class_names"])


