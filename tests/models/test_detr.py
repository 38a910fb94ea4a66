"""3DETR's parts against their restatement (tests/detr_model_reference.py) for the same weights."""

import detr_model_reference as official
import pytest
import torch

from act3d.models.detr.preencoder import SetAbstraction


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(
                    torch.rand(t.shape, generator=g) + 0.5
                    if "running_var" in name
                    else torch.randn(t.shape, generator=g) * 0.5
                )


@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("with_features", [False, True])
def test_the_set_abstraction_equals_the_official_module(train, with_features):
    mlp = [3 if with_features else 0, 16, 32, 24]
    theirs = official.PointnetSAModuleVotes(list(mlp), npoint=32, radius=0.2, nsample=16)
    _randomise(theirs)
    ours = SetAbstraction(mlp, npoint=32, radius=0.2, nsample=16)
    ours.load_state_dict(official.sa_to_act3d(theirs.state_dict()), strict=True)
    ours.train(train), theirs.train(train)
    g = torch.Generator().manual_seed(1)
    xyz = torch.rand(2, 400, 3, generator=g) * torch.tensor([2.0, 2.0, 1.0])
    features = torch.randn(2, 3, 400, generator=g) if with_features else None
    with torch.no_grad():
        (c1, f1, i1), (c2, f2, i2) = ours(xyz, features), theirs(xyz, features)
    assert torch.equal(c1, c2) and torch.equal(i1, i2.long())
    torch.testing.assert_close(f1, f2, rtol=0, atol=0)
    assert f1.shape == (2, 24, 32) and f1.std() > 0.1
