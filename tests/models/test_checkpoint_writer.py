"""Checkpoints written on a background thread: a snapshot, on disk after `wait`, errors not lost."""

import pytest
import torch

from act3d.models.checkpoint import BackgroundWriter, host_copy, load_checkpoint


def test_the_written_file_is_the_snapshot_taken_at_submit(tmp_path):
    weights = torch.zeros(1000)
    writer = BackgroundWriter()
    writer.submit(
        tmp_path / "last.pt", host_copy({"kind": "k", "model": {"w": weights}, "steps": [1, (2, 3)]})
    )
    weights += 1  # training goes on and changes the weights in place
    writer.close()
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert torch.equal(ckpt["model"]["w"], torch.zeros(1000)) and ckpt["steps"] == [1, (2, 3)]


def test_a_failed_write_is_raised_by_wait(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    writer = BackgroundWriter()
    writer.submit(tmp_path / "blocker" / "last.pt", {"kind": "k", "model": {}})
    with pytest.raises(OSError):
        writer.wait()
    writer.close()
