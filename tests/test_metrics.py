import numpy as np
import pytest
import torch

from act3d.data.fewshot import draw_fewshot_episode
from act3d.eval.metrics import (
    confusion_matrix,
    iou_per_class,
    mean_class_accuracy,
    mean_std,
    overall_accuracy,
    part_segmentation_miou,
    shape_part_iou,
)
from act3d.eval.probe import svm_probe


def test_accuracies_by_hand():
    truth = np.array([0, 0, 0, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 2, 0])
    assert overall_accuracy(pred, truth) == pytest.approx(4 / 6)
    # class recalls: 2/3, 1/1, 1/2
    assert mean_class_accuracy(pred, truth, 4) == pytest.approx((2 / 3 + 1 + 0.5) / 3)
    assert confusion_matrix(pred, truth, 3).tolist() == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_iou_conventions():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    ious = iou_per_class(pred, truth, 3)
    assert ious[0] == pytest.approx(1 / 2) and ious[1] == pytest.approx(2 / 3) and np.isnan(ious[2])
    # a part absent from both prediction and truth counts as IoU 1 for that shape
    assert shape_part_iou(pred, truth, [0, 1, 5]) == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    class_miou, inst_miou = part_segmentation_miou([pred, truth], [truth, truth], [0, 1], [[0, 1], [0, 1]])
    assert inst_miou == pytest.approx(((0.5 + 2 / 3) / 2 + 1) / 2)
    assert class_miou == pytest.approx(inst_miou)  # one shape per category


def test_mean_std_is_population_std():
    assert mean_std([1.0, 3.0]) == (2.0, 1.0)


def test_svm_selection_never_touches_test_data(monkeypatch):
    rng = np.random.default_rng(0)
    train_x, train_y = rng.normal(size=(60, 5)), np.repeat(np.arange(3), 20)
    train_x[:, 0] += train_y * 3
    test_x, test_y = rng.normal(size=(30, 5)), np.repeat(np.arange(3), 10)
    test_x[:, 0] += test_y * 3
    seen = []
    import sklearn.model_selection

    real_fit = sklearn.model_selection.GridSearchCV.fit

    def spy(self, x, y=None, **kw):
        seen.append(len(x))
        return real_fit(self, x, y, **kw)

    monkeypatch.setattr(sklearn.model_selection.GridSearchCV, "fit", spy)
    a = svm_probe(train_x, train_y, test_x, test_y, 3)
    # scrambling the test labels cannot change the chosen C: selection sees the training split only
    b = svm_probe(train_x, train_y, test_x, rng.permutation(test_y), 3)
    assert seen == [60, 60] and a["C"] == b["C"] and a["val_acc"] == b["val_acc"]
    assert a["test_acc"] >= 0.8


def test_fewshot_episodes_are_deterministic_and_disjoint():
    labels = np.repeat(np.arange(8), 25)
    test_labels = np.repeat(np.arange(8), 10)
    e1 = draw_fewshot_episode(labels, test_labels, 5, 10, 20, np.random.default_rng([0, 5, 10, 3]))
    e2 = draw_fewshot_episode(labels, test_labels, 5, 10, 20, np.random.default_rng([0, 5, 10, 3]))
    for a, b in zip(e1, e2):
        assert np.array_equal(a, b)
    classes, support, query = e1
    assert len(set(classes)) == 5 and len(support) == 50 and set(labels[support]) == set(classes)
    with pytest.raises(ValueError, match="cannot draw 10-way"):
        draw_fewshot_episode(labels, test_labels, 10, 10, 20, np.random.default_rng(0))


def test_voting_on_a_deterministic_model():
    from act3d.train.finetune import FinetuneRunConfig, classify

    class Fixed(torch.nn.Module):
        """Class 0 for clouds centred left of the origin, else class 1; remembers the clouds it saw."""

        def __init__(self):
            super().__init__()
            self.w, self.seen = torch.nn.Parameter(torch.zeros(1)), []

        def forward(self, points):  # as PointClassifier: cut the clouds into the run's patches first
            patches = cfg.patching.group(points)
            self.seen.append(patches.center.shape)
            x = patches.center[..., 0].mean(1)
            return torch.stack([-x, x], dim=-1)

    points = torch.randn(6, 200, 3) * 0.1
    points[:3, :, 0] -= 1
    points[3:, :, 0] += 1
    cfg = FinetuneRunConfig(sampling="fps")
    cfg.data.num_points, cfg.patching.num_groups, cfg.patching.group_size = 64, 8, 8
    model = Fixed()
    one = classify(model, points, cfg, votes=1)
    ten = classify(model, points, cfg, votes=10, generator=torch.Generator().manual_seed(0))
    assert one.argmax(-1).tolist() == [0, 0, 0, 1, 1, 1] == ten.argmax(-1).tolist()
    assert len(model.seen) == 11 and all(s == (6, 8, 3) for s in model.seen)
    assert not torch.equal(one, ten)  # ten passes, each a new subset and a scale-and-translate, averaged
    again = classify(model, points, cfg, votes=10, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ten, again, rtol=0, atol=0)
    # logits, not probabilities, are averaged (official validate_vote): these logits are far from a simplex
    assert not torch.allclose(ten.sum(-1), torch.ones(6))


def test_official_training_sample_is_an_fps_pool_subset():
    from act3d.train.finetune import fps_points, fps_pool_size, random_subset

    assert [fps_pool_size(n, 10_000) for n in (1024, 2048, 8192)] == [1200, 2400, 8192]
    assert fps_pool_size(2048, 2048) == 2048  # ScanObjectNN stores 2048 points
    clouds = torch.rand(2, 500, 3)
    pool = fps_points(clouds, 120, "act3d")
    sample = random_subset(pool, 100)
    assert sample.shape == (2, 100, 3)
    for b in range(2):  # every sampled point is one of the cloud's FPS pool
        assert (sample[b][:, None] == pool[b][None]).all(-1).any(1).all()
