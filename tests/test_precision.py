"""Inference precision: float32 by default, bf16 autocast on request, `auto` by the hardware."""

import numpy as np
import pytest
import torch

from act3d.api import load_model
from act3d.errors import ConfigError
from act3d.models import precision
from act3d.train.finetune import finetune


def test_auto_takes_bf16_only_where_the_cpu_computes_it(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", cpu) == "float32"  # emulated bf16 would be slower
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", cpu) == "bf16"
    assert precision.resolve_precision("float32", cpu) == "float32"
    assert precision.resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ConfigError, match="precision must be one of"):
        precision.resolve_precision("fp8", cpu)


def test_bf16_and_float32_agree_on_a_fixed_set(finetune_cfg, tmp_path):
    """The same classifier in both formats: features within 5% (relative L2) and the same top-1 on at least
    90% of 64 clouds (tiny random-ish models have close logits; a paper-size student agrees closer,
    docs/benchmarks.md). float32 stays bit-reproducible."""
    finetune_cfg.optim.max_steps = 4
    checkpoint = finetune(finetune_cfg, tmp_path / "ft").checkpoint
    clouds = np.random.default_rng(0).normal(size=(64, 100, 3)).astype(np.float32)
    exact, fast = load_model(checkpoint), load_model(checkpoint, "bf16")
    assert (exact.precision, fast.precision) == ("float32", "bf16")
    a, b = exact.embed(clouds), fast.embed(clouds)
    assert a.dtype == b.dtype == np.float32 and np.array_equal(a, exact.embed(clouds))
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.05 and not np.array_equal(a, b)
    top_a = [p.labels[0] for p in exact.predict(clouds, k=1)]
    top_b = [p.labels[0] for p in fast.predict(clouds, k=1)]
    assert np.mean([x == y for x, y in zip(top_a, top_b)]) >= 0.9


def test_the_cli_takes_a_precision(finetune_cfg, tmp_path):
    from act3d.cli import main

    finetune_cfg.optim.max_steps = 2
    checkpoint = str(finetune(finetune_cfg, tmp_path / "ft").checkpoint)
    np.save(tmp_path / "a.npy", np.random.default_rng(1).normal(size=(80, 3)))
    for choice in ("float32", "bf16", "auto"):
        out = tmp_path / f"e-{choice}.npy"
        command = ["embed", str(tmp_path / "a.npy"), "--checkpoint", checkpoint, "--out", str(out)]
        assert main([*command, "--precision", choice]) == 0
        assert np.load(out).shape[0] == 1
