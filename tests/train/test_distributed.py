"""Two CPU processes over gloo, launched by torchrun, train the same weights as one process."""

import os
import subprocess
import sys

import pytest
import torch
import yaml
from conftest import TINY_PATCHES, TINY_STUDENT, load_classifier

from act3d.models.checkpoint import load_checkpoint


def _run(tmp_path, nproc: int, cfg_path, out) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "act3d",
        "finetune",
        "--config",
        str(cfg_path),
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _shifts_absorbed_by_batchnorm(model: torch.nn.Module) -> set[str]:
    """Names of `Linear.bias` entries followed directly by a BatchNorm, and of that BatchNorm's running mean."""
    names = set()
    for prefix, seq in model.named_modules():
        if isinstance(seq, torch.nn.Sequential):
            for i in range(len(seq) - 1):
                if isinstance(seq[i], torch.nn.Linear) and isinstance(seq[i + 1], torch.nn.BatchNorm1d):
                    names |= {f"{prefix}.{i}.bias", f"{prefix}.{i + 1}.running_mean"}
    return names


def test_two_processes_match_one(scan_root, pretrain_cfg, tmp_path):
    from act3d.train.stage2 import pretrain

    # an untrained student (Stage II without a target: its trunc-normal init, no step): from scratch the
    # official init is PyTorch's default, whose larger weights leave a few mini-PointNet weights with
    # gradients at float-noise level, which AdamW turns into full steps in either run
    pretrain_cfg.student.target = "none"
    student = str(pretrain(pretrain_cfg, tmp_path / "student").checkpoint)
    # randomness off (no augmentation, dropout or drop path) so both runs see identical computations
    cfg = {
        "checkpoint": student,
        "data": {"format": "scanobjectnn", "variant": "obj_bg", "root": scan_root, "num_points": 64},
        "patching": TINY_PATCHES,
        "student": {**TINY_STUDENT, "drop_path": 0.0},
        "augmentation": "none",
        "head_dropout": 0.0,
        "eval_every": 0,
        "val_fraction": 0.0,
        "optim": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "warmup_epochs": 0.5},
        "runtime": {"progress": False, "log_every": 1},
    }
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    _run(tmp_path, 1, cfg_path, tmp_path / "one")
    two = _run(tmp_path, 2, cfg_path, tmp_path / "two")
    console = two.stdout + two.stderr
    # one voice: rank 0 tells the user, once; no deprecated collective warns (the differentiable all-reduce
    # of the batch-norm statistics is act3d's own)
    assert console.count("test, over 1 seed(s):") == 1 and "Warning" not in console, console[-3000:]
    a = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4
    # A bias that feeds a BatchNorm has a zero gradient in exact arithmetic, so AdamW turns float noise into
    # full-size steps there; such shifts (and the running means tracking them) cannot change the output.
    model, _, _ = load_classifier(tmp_path / "one" / "checkpoints" / "last.pt")
    # also shifts that reach a BatchNorm through max-pooling, concatenation and a Linear
    absorbed = _shifts_absorbed_by_batchnorm(model) | {
        "encoder.norm.bias",
        "encoder.patch_embed.first_conv.3.bias",
    }
    # A weight entry whose gradient is float noise too (the column of a unit a ReLU left dead) moves the same
    # way: at most one entry in a thousand of any tensor may differ.
    compared = 0
    for k, v in a["model"].items():
        if v.is_floating_point() and k not in absorbed:
            off = ~torch.isclose(b["model"][k], v, atol=2e-4, rtol=1e-3)
            assert off.sum() <= v.numel() // 1000, (k, int(off.sum()), v.numel())
            compared += 1
    assert compared >= 40  # every Transformer, embedding and head weight
    # and the two models compute the same function (with batch statistics, which remove those shifts exactly)
    other, _, _ = load_classifier(tmp_path / "two" / "checkpoints" / "last.pt")
    points = torch.randn(4, 64, 3)
    with torch.no_grad():
        torch.testing.assert_close(other.train()(points), model.train()(points), atol=1e-3, rtol=1e-3)
    # metrics are reduced across ranks and written once
    assert (tmp_path / "two" / "metrics.csv").read_text().count("\n") == (
        tmp_path / "one" / "metrics.csv"
    ).read_text().count("\n")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_nodes(cfg_path, out, extra: list[str] = ()) -> list[subprocess.CompletedProcess]:
    """The README's two-node command on one machine: two launchers, one process each, rendezvous on
    127.0.0.1 (c10d)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    port = _free_port()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
    launcher += ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "act3d-test"]
    cmd = launcher + ["-m", "act3d", "finetune", "--config", str(cfg_path), "--out", str(out), *extra]
    nodes = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    nodes.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = []
    for node in nodes:
        stdout, stderr = node.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(cmd, node.returncode, stdout, stderr))
    for d in done:
        assert d.returncode == 0, d.stdout[-3000:] + d.stderr[-3000:]
    return done


def test_two_nodes_train_what_two_processes_on_one_node_train(scan_root, tmp_path):
    cfg = {
        "data": {"format": "scanobjectnn", "variant": "obj_bg", "root": scan_root, "num_points": 64},
        "patching": TINY_PATCHES,
        "student": TINY_STUDENT,
        "eval_every": 0,
        "val_fraction": 0.0,
        "optim": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "warmup_epochs": 0.5},
        "runtime": {"progress": False, "log_every": 1, "checkpoint_every": 1},
    }
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    _run(tmp_path, 2, cfg_path, tmp_path / "one-node")
    consoles = _two_nodes(cfg_path, tmp_path / "two-nodes")
    a = load_checkpoint(tmp_path / "one-node" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "two-nodes" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 4
    for k, v in a["model"].items():
        assert torch.equal(b["model"][k], v), k  # the same processes, the same reductions: the same bits
    text = "".join(c.stdout + c.stderr for c in consoles)
    assert text.count("test, over 1 seed(s):") == 1  # one folder, one voice
    # stopped after 2 steps, then resumed: bit-identical to the uninterrupted two-node run
    _two_nodes(cfg_path, tmp_path / "resumed", ["--set", "optim.max_steps=2"])
    _two_nodes(cfg_path, tmp_path / "resumed", ["--resume"])
    c = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert c["step"] == 4 and all(torch.equal(c["model"][k], v) for k, v in b["model"].items())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sync_batchnorm_on_cuda_is_pytorchs():
    from act3d.train.distributed import synchronise_batchnorm

    model = synchronise_batchnorm(
        torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)), torch.device("cuda")
    )
    assert isinstance(model[1], torch.nn.SyncBatchNorm)
