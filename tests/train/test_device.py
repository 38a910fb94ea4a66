"""Device selection, with the CUDA queries substituted so the GPU paths are tested on any machine."""

import pytest
import torch

from act3d.errors import Act3dError
from act3d.train.device import resolve_device


@pytest.fixture
def fake_gpus(monkeypatch):
    """Pretend this machine has `count` GPUs, the current one being cuda:0."""

    def install(count: int):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    return install


def test_auto_without_gpu_is_cpu(fake_gpus):
    fake_gpus(0)
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("name", ["auto", "cuda"])
def test_one_gpu_gets_an_index(fake_gpus, name):
    # torch.cuda.set_device rejects torch.device("cuda") without an index: the crash at the first step
    fake_gpus(1)
    assert resolve_device(name) == torch.device("cuda", 0)


def test_explicit_index_and_torchrun_local_rank(fake_gpus):
    fake_gpus(4)
    assert resolve_device("cuda:2") == torch.device("cuda", 2)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 3)
    assert resolve_device("cpu", local_rank=3) == torch.device("cpu")


@pytest.mark.parametrize(
    "name, count, words",
    [("cuda", 0, "sees none"), ("cuda:1", 1, "does not exist"), ("banana", 1, "not a device")],
)
def test_bad_devices_are_one_clear_error(fake_gpus, name, count, words):
    fake_gpus(count)
    with pytest.raises(Act3dError, match=words):
        resolve_device(name)
