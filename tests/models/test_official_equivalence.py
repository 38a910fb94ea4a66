"""act3d's Stage I model against a reference statement of the official one (tests/official_reference.py):
the same weights (moved across by `act3d.models.official`), the same patches and the same Gumbel noise must give
the same reconstructions, teacher features and loss."""

import pytest
import torch
from official_reference import PromptedDVAE

from act3d.config import from_dict
from act3d.models.autoencoder import autoencoder_loss
from act3d.models.official import to_official
from act3d.models.pretrained import random_vit
from act3d.ops.grouping import group_patches
from act3d.train.stage1 import TeacherRunConfig, build_autoencoder

C, V, K, WIDTH, DEPTH, HEADS, PROMPTS = 32, 16, 8, 32, 3, 2, 4


@pytest.fixture
def pair():
    """An act3d autoencoder at the official widths (tiny teacher) and the reference with its weights."""
    torch.manual_seed(0)
    cfg = from_dict(
        TeacherRunConfig,
        {
            "patching": {"num_groups": 16, "group_size": K},
            "model": {
                "tokens_dim": C,
                "codebook_size": V,
                "num_prompts": PROMPTS,
                "deep_prompts": True,
                "transformer": {"kind": "random"},
            },
        },
    )
    model = build_autoencoder(cfg, random_vit(WIDTH, DEPTH, HEADS, layer_scale=True))
    with torch.no_grad():  # move every weight off its init so that a mis-wired one shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for name, b in model.named_buffers():
            if "running_var" in name:
                b.uniform_(0.5, 1.5)
            elif "running_mean" in name:
                b.normal_(0, 0.1)
    reference = PromptedDVAE(C, V, K, WIDTH, DEPTH, HEADS, PROMPTS)
    reference.load_state_dict(to_official(model.state_dict(), "teacher"), strict=True)
    points = torch.randn(3, 256, 3)
    return model.eval(), reference.eval(), group_patches(points / points.norm(dim=-1).amax(), 16, K)


def test_reconstruction_and_loss_match_official(pair):
    model, reference, patches = pair
    with torch.no_grad():
        torch.manual_seed(1)
        out = model(patches, tau=0.5)
        torch.manual_seed(1)
        coarse, fine, logits = reference(patches.neighborhood, patches.center, tau=0.5)
        torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.coarse, coarse, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out.fine, fine, atol=1e-5, rtol=1e-5)
        recon, kl = reference.get_loss(coarse, fine, patches.neighborhood, logits)
        loss, parts = autoencoder_loss(out, patches.neighborhood, kl_weight=0.1)
    assert parts["kl"] == pytest.approx(kl.item(), rel=1e-5, abs=1e-6)
    assert parts["cd_coarse"] + parts["cd_fine"] == pytest.approx(recon.item(), rel=1e-5)
    assert loss.item() == pytest.approx((recon + 0.1 * kl).item(), rel=1e-5)


def test_teacher_features_match_official(pair):
    model, reference, patches = pair
    with torch.no_grad():
        torch.manual_seed(2)
        ours = model.teacher_features(patches)
        torch.manual_seed(2)
        theirs = reference.tokenizer_features(patches.neighborhood, patches.center)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_kl_is_zero_for_uniform_usage_and_grows_with_collapse():
    from act3d.models.autoencoder import AutoencoderOutput

    neighborhood = torch.zeros(2, 4, 8, 3)
    fake = lambda logits: AutoencoderOutput(logits, torch.zeros(2, 4, 2, 3), torch.zeros(2, 4, 8, 3))  # noqa: E731
    _, uniform = autoencoder_loss(fake(torch.zeros(2, 4, 16)), neighborhood, 1.0)
    collapsed = torch.zeros(2, 4, 16)
    collapsed[..., 0] = 10.0
    _, peaked = autoencoder_loss(fake(collapsed), neighborhood, 1.0)
    assert abs(uniform["kl"]) < 1e-6 and peaked["kl"] > 1.0
