"""Stage III: fine-tune (or probe with a frozen backbone) the student on a labelled classification set."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from act3d.data.dataset import (
    DataConfig,
    check_points_per_cloud,
    open_source,
    split_validation,
    stack_clouds,
    training_clouds,
)
from act3d.data.transforms import AUGMENTATIONS, scale_and_translate
from act3d.errors import ConfigError, require
from act3d.eval.metrics import confusion_matrix, mean_class_accuracy, overall_accuracy
from act3d.models import zoo
from act3d.models.checkpoint import host_copy
from act3d.models.classifier import ClassifierHead, PointClassifier, check_transfer
from act3d.models.peft import METHODS, settings_of
from act3d.models.student import StudentConfig, StudentEncoder
from act3d.ops.fps import FpsRule, farthest_point_sampling
from act3d.ops.grouping import PatchConfig
from act3d.ops.indexing import gather_points
from act3d.train.metrics_log import Metric
from act3d.train.options import OptimConfig, RuntimeConfig
from act3d.train.run_folder import refuse_held_run, run_files
from act3d.train.stage import DownstreamResult, StageResult, reload_best, student_backbone, train

log = logging.getLogger(__name__)
KIND = zoo.CLASSIFIER


@dataclass
class FinetuneRunConfig:
    data: DataConfig = field(default_factory=lambda: DataConfig(variant="scan"))
    patching: PatchConfig = field(default_factory=PatchConfig)
    student: StudentConfig = field(default_factory=StudentConfig)  # architecture when training from scratch
    checkpoint: str | None = None  # Stage II student checkpoint; None = from scratch
    # full | linear | mlp3 (the paper's), or a PEFT method: vpt_deep | idpt | dapt | pointgst | ppt
    # (act3d.models.peft), whose settings `peft` holds (that method's `Config`; null: its defaults)
    transfer: str = "full"
    peft: Any = None
    # the head's outputs; null: the dataset's classes. The official few-shot config has cls_dim 40 for every
    # episode (fewshot_modelnet.yaml l.35): a 5-way episode's head scores 40 classes, 35 of them never seen
    num_classes: int | None = None
    head_dropout: float = 0.5
    # linear / mlp3: the frozen backbone's mode while the head trains. `train` is the official code's (its
    # whole model is in train mode: batch statistics in the mini-PointNet, drop path); `eval` freezes those
    # too.
    frozen_backbone_mode: Literal["train", "eval"] = "train"
    augmentation: Literal["none", "scale_translate", "rotate", "scale_translate_rotate"] = "rotate"
    # `fps`: the official runner_finetune protocol. Training clouds are FPS-sampled to a pool (1200 points
    # for 1024, 2400 for 2048, 4800 for 4096) and a random `num_points` of the pool are kept; test clouds are
    # FPS-sampled to `num_points`; the loader hands over `data.load_points` stored points per cloud.
    # `random`: a random `num_points` subset per epoch (cheap; the CPU presets).
    sampling: Literal["random", "fps"] = "random"
    votes: int = 1  # test passes whose logits are averaged, each a new subset and a scale-and-translate
    val_fraction: float = 0.1  # stratified share of the training split held out to select the checkpoint
    eval_every: int = 1  # validate (and keep the best checkpoint) every N epochs; 0 = only the last model
    # Paper-comparison numbers, selected on the test set as the official code does; reported under names
    # that say so, never as test_acc: the best test accuracy over the epochs after the first, and the best of
    # `test_selected_vote_rounds` voting rounds with that test-selected model (the official ModelNet40 93.7:
    # 299 rounds of 10 votes on ckpt-best, runner_finetune.py l.369-432; set 299 for it).
    report_test_selected: bool = False
    test_selected_vote_rounds: int = 0
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-4, weight_decay=0.05, batch_size=32))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    # a transfer's own training settings: `--compare-to` pairs runs of two transfers (a PEFT method against
    # full fine-tuning of the same backbone) that differ in these, on the same data, split and test protocol
    RECIPE: ClassVar[tuple[str, ...]] = (
        "peft",
        "optim",
        "augmentation",
        "student",
        "head_dropout",
        "frozen_backbone_mode",
    )
    # what a resumed run may change besides optim and runtime (act3d.train.run_folder.resumable)
    RESUMABLE: ClassVar[tuple[str, ...]] = (
        "eval_every",
        "votes",
        "report_test_selected",
        "test_selected_vote_rounds",
    )

    def __post_init__(self) -> None:
        check_points_per_cloud(self.data, self.patching)
        check_transfer(self.transfer)
        self.peft = settings_of(self.transfer, self.peft)
        if self.transfer in METHODS:
            METHODS[self.transfer].check_data(self.peft, self.data.num_points)
        require(0 <= self.head_dropout < 1, "head_dropout", "a rate in [0, 1)", self.head_dropout)
        require(
            self.num_classes is None or self.num_classes >= 1, "num_classes", "null or >= 1", self.num_classes
        )
        require(self.votes >= 1, "votes", "an integer >= 1", self.votes)
        require(0 <= self.val_fraction < 1, "val_fraction", "a fraction in [0, 1)", self.val_fraction)
        require(self.eval_every >= 0, "eval_every", "an integer >= 0", self.eval_every)
        require(
            self.test_selected_vote_rounds >= 0,
            "test_selected_vote_rounds",
            "an integer >= 0",
            self.test_selected_vote_rounds,
        )
        require(
            not self.test_selected_vote_rounds or self.report_test_selected,
            "test_selected_vote_rounds",
            "0 unless report_test_selected is true (the rounds vote with the test-selected model)",
            self.test_selected_vote_rounds,
        )


# official runner_finetune: the FPS pool a training subset is drawn from, by subset size
_FPS_POOL = {1024: 1200, 2048: 2400, 4096: 4800, 8192: 8192}


def fps_pool_size(num_points: int, available: int) -> int:
    return min(_FPS_POOL.get(num_points, round(num_points * 1.171875)), available)


def fps_points(points: torch.Tensor, count: int, rule: FpsRule, random_start: bool = False) -> torch.Tensor:
    """`(B, M, 3)` -> `(B, count, 3)`: farthest point sampling (under `rule`, `ops.fps`) from the first point,
    or from a random one."""
    return gather_points(points, farthest_point_sampling(points, count, random_start, rule=rule))


def random_subset(points: torch.Tensor, count: int) -> torch.Tensor:
    """The same random `count` columns of every cloud (official: one `np.random.choice` per batch)."""
    return points[:, torch.randperm(points.shape[1], device=points.device)[:count]]


class ClassifierTask:
    kind = KIND

    def __init__(self, model: PointClassifier, cfg: FinetuneRunConfig):
        self.module, self.cfg = model, cfg

    def to(self, device: torch.device) -> None:
        self.module.to(device)

    def step(self, model: nn.Module, batch, step: int) -> tuple[torch.Tensor, dict[str, Metric]]:
        points, labels = batch
        if self.cfg.sampling == "fps":
            # the official training readers shuffle each cloud's points before runner_finetune's FPS
            # (ScanObjectNNDataset.py l.35-37, ModelNetDataset.py l.144-147): FPS from a random point, so
            # the pool changes every epoch
            pool_size = fps_pool_size(self.cfg.data.num_points, points.shape[1])
            pool = fps_points(points, pool_size, self.cfg.patching.fps, random_start=True)
            points = random_subset(pool, self.cfg.data.num_points)
        points = AUGMENTATIONS[self.cfg.augmentation](points, None)
        logits = model(points)
        loss = F.cross_entropy(logits, labels)
        return loss, {"train_acc": (logits.argmax(-1) == labels).float().mean()}


def build_classifier(
    cfg: FinetuneRunConfig, class_names: list[str], encoder: StudentEncoder | None = None
) -> PointClassifier:
    """A classifier on `encoder`, by default the one `student_backbone(cfg)` gives (fresh, or the
    pretrained student `cfg.checkpoint`)."""
    if encoder is None:
        encoder, _ = student_backbone(cfg)
    model = PointClassifier(encoder, classifier_head(cfg, class_names), cfg.patching)
    if cfg.checkpoint is None:
        official_scratch_init(model)
    return model  # a pretrained run keeps the student's weights and PyTorch's default head init


def official_scratch_init(model: PointClassifier) -> None:
    """The official classifier from scratch: runner_finetune.py (l.89-93) calls `load_model_from_ckpt`,
    whose `self.apply(self._init_weights)` (act.py l.865-867) is the only trunc-normal init, only with a
    checkpoint, so every layer keeps PyTorch's default init and only `cls_token` and `cls_pos` are drawn
    trunc-normal(0.02) (act.py l.795-796, in `__init__`)."""
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    nn.init.trunc_normal_(model.encoder.cls_token, std=0.02)
    nn.init.trunc_normal_(model.encoder.cls_pos, std=0.02)


def head_classes(cfg: FinetuneRunConfig, class_names: list[str]) -> list[str]:
    """The name of every head output: the dataset's classes, then `unused_<i>` up to `cfg.num_classes`."""
    if cfg.num_classes is not None and cfg.num_classes < len(class_names):
        raise ConfigError(
            f"num_classes {cfg.num_classes} is fewer than the data's {len(class_names)} classes; "
            "expected null or at least that many"
        )
    return class_names + [f"unused_{i}" for i in range(len(class_names), cfg.num_classes or 0)]


def classifier_head(cfg: FinetuneRunConfig, class_names: list[str]) -> ClassifierHead:
    """The head a fine-tuning run trains: its classes, transfer mode, dropout and frozen-backbone mode."""
    return ClassifierHead(
        len(class_names), cfg.transfer, cfg.head_dropout, cfg.frozen_backbone_mode, cfg.peft
    )


def classifier_arch(cfg: FinetuneRunConfig, class_names: list[str]) -> dict:
    """What a fine-tuned checkpoint records to rebuild its classifier (`zoo.classifier_arch`)."""
    return zoo.classifier_arch(
        cfg.student, cfg.patching, cfg.data.num_points, class_names, classifier_head(cfg, class_names)
    )


@torch.no_grad()
def classify(
    model: PointClassifier,
    points: torch.Tensor,
    cfg: FinetuneRunConfig,
    votes: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """`(M, N, 3)` clouds -> `(M, classes)` logits.

    One pass: the clouds as the test protocol gives them (`fps`: FPS to `num_points`). With `votes > 1`,
    logits are averaged over passes that each draw a new subset (`fps`: of the FPS pool) and a random
    scale-and-translate, as the official `validate_vote`.
    """
    model.eval()
    device = next(model.parameters()).device
    n = cfg.data.num_points
    out = []
    for chunk in points.split(batch_size):
        chunk = chunk.to(device)
        if cfg.sampling == "fps":
            chunk = fps_points(
                chunk,
                fps_pool_size(n, chunk.shape[1]) if votes > 1 else min(n, chunk.shape[1]),
                cfg.patching.fps,
            )
        if votes == 1:
            out.append(model(chunk).float())
            continue
        total = 0
        for _ in range(votes):
            cols = torch.randperm(chunk.shape[1], generator=generator)[:n].to(device)
            pts = scale_and_translate(chunk[:, cols], generator=generator)
            total = total + model(pts).float()
        out.append(total / votes)
    return torch.cat(out).cpu()


def evaluate_classifier(
    model: PointClassifier,
    points: torch.Tensor,
    labels: torch.Tensor,
    cfg: FinetuneRunConfig,
    votes: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Overall and mean class accuracy of `classify`'s predictions, and their confusion matrix."""
    logits = classify(model, points, cfg, votes, torch.Generator().manual_seed(seed))
    pred, truth, classes = logits.argmax(-1).numpy(), labels.numpy(), logits.shape[-1]
    return {
        "acc": overall_accuracy(pred, truth),
        "macc": mean_class_accuracy(pred, truth, classes),
        "confusion": confusion_matrix(pred, truth, classes),
        "correct": (pred == truth).astype(int).tolist(),  # per cloud: the unit of paired comparisons
    }


class OfficialTestSelection:
    """The official runner's test-selected readings (`report_test_selected`), reported apart from act3d's
    scores: it tests after every epoch but its first (runner_finetune.py l.223: `epoch % val_freq == 0 and
    epoch != 0`), keeps the model of the strictly best reading as ckpt-best (`Acc_Metric.better_than`) and
    runs its test-time voting rounds on that model (l.369-432)."""

    def __init__(self, cfg: FinetuneRunConfig, points: torch.Tensor, labels: torch.Tensor, skip_first: bool):
        self.cfg, self.points, self.labels = cfg, points, labels
        # the official epoch 0 is the first evaluation when every epoch is evaluated
        self.skip_next = skip_first and cfg.eval_every == 1
        self.acc, self.state = -1.0, None

    def observe(self, model: PointClassifier) -> None:
        """One epoch's test reading (none at the official epoch 0); keeps the model if it is the best."""
        if self.skip_next:
            self.skip_next = False
            return
        acc = evaluate_classifier(model, self.points, self.labels, self.cfg)["acc"]
        if acc > self.acc:
            self.acc, self.state = acc, host_copy(model.state_dict())

    def readings(self, model: PointClassifier) -> dict[str, float]:
        """`oa`, the best reading, and with `test_selected_vote_rounds` `vote_oa`, the best voting round of
        that reading's weights loaded into a copy of `model`; empty without a reading."""
        if self.state is None:
            return {}
        readings = {"oa": self.acc}
        if self.cfg.test_selected_vote_rounds:
            selected = copy.deepcopy(model)
            selected.load_state_dict(self.state)
            votes = max(self.cfg.votes, 2)
            readings["vote_oa"] = max(
                evaluate_classifier(selected, self.points, self.labels, self.cfg, votes, seed=r)["acc"]
                for r in range(self.cfg.test_selected_vote_rounds)
            )
        return readings


def finetune(
    cfg: FinetuneRunConfig, out_dir: str | Path, resume: bool = False, overwrite: bool = False
) -> StageResult:
    """Train a classifier, select its checkpoint on a validation split, and score it once on the test split;
    writes `results.json` (and the usual run files) to `out_dir`."""
    out_dir = Path(out_dir)
    if cfg.transfer != "full" and cfg.checkpoint is None:
        raise ConfigError(
            f"transfer {cfg.transfer} trains on a frozen backbone and needs a pretrained one: give --checkpoint a "
            "Stage II student (for a random-backbone baseline, `act3d pretrain --set student.target=none` "
            "writes an untrained student to give it)"
        )
    refuse_held_run(out_dir, resume, overwrite)
    # everything is read before the run folder is touched: a run refused for its inputs leaves nothing
    torch.manual_seed(cfg.runtime.seed)
    full_train, test_source = open_source(cfg.data, "train"), open_source(cfg.data, "test")
    names = head_classes(cfg, list(full_train.class_names))
    train_source, val_source = split_validation(full_train, cfg.val_fraction, cfg.runtime.seed)
    encoder, student = student_backbone(cfg)
    cfg = replace(cfg, student=student)  # a pretrained student brings its own architecture
    model = build_classifier(cfg, names, encoder)
    log.info("%s", model.parameter_line())
    load = cfg.data.load_points or cfg.data.num_points
    test_points, test_labels = stack_clouds(test_source, load, seed=cfg.runtime.seed)
    train_data = training_clouds(train_source, load, cfg.data, cfg.runtime.seed, cfg.runtime.progress)
    val = stack_clouds(val_source, load, seed=cfg.runtime.seed) if val_source is not None else None
    with run_files(out_dir, cfg, resume, overwrite) as main:
        # a resumed run's first reading is not the official epoch 0
        resumed = resume and (out_dir / "checkpoints" / "last.pt").is_file()
        on_test = OfficialTestSelection(cfg, test_points, test_labels, skip_first=not resumed)

        def evaluate(m: PointClassifier) -> dict[str, float]:
            scores = {}
            if val is not None:
                measured = evaluate_classifier(m, *val, cfg, seed=cfg.runtime.seed)
                scores = {"val_acc": measured["acc"], "val_macc": measured["macc"]}
            if cfg.report_test_selected:
                on_test.observe(m)
            return scores

        result = train(
            ClassifierTask(model, cfg),
            train_data,
            cfg,
            out_dir,
            resume,
            classifier_arch(cfg, names),
            evaluate=evaluate if val is not None or cfg.report_test_selected else None,
            best_metric="val_acc" if val is not None else None,
            evaluate_every=cfg.eval_every,
        )
        # the validation-selected model (eval_every 0 or no validation split: the last one), scored on the
        # validation split as when it was selected (eval mode, the run's seed), cloud by cloud
        reload_best(model, out_dir, KIND, result)
        val_scores, outcomes = {}, {}
        if val is not None:
            measured = evaluate_classifier(model, *val, cfg, seed=cfg.runtime.seed)
            val_scores, outcomes["val"] = (
                {"oa": measured["acc"], "macc": measured["macc"]},
                measured["correct"],
            )
        # the test split, read once: its accuracies and confusion from the same (voted) predictions
        final = evaluate_classifier(
            model, test_points, test_labels, cfg, votes=cfg.votes, seed=cfg.runtime.seed
        )
        results = DownstreamResult(
            task="classification",
            dataset=test_source.name,
            seed=cfg.runtime.seed,
            pretrained=cfg.checkpoint,
            steps=result.steps,
            seconds=round(result.seconds, 1),
            selected_step=result.best["step"] if result.best else result.steps,
            val=val_scores,
            test={"oa": final["acc"], "macc": final["macc"]},
            val_samples=len(val[1]) if val is not None else 0,
            test_samples=len(test_labels),
            protocol={"transfer": cfg.transfer, "votes": cfg.votes},
            test_selected_on_test=on_test.readings(model),
            class_names=names,
            confusion=final["confusion"].tolist(),
            outcomes=outcomes | {"test": final["correct"]},
        )
        if main:
            results.write(out_dir)
    return StageResult.of(result, results)
