import torch
from torch import nn

from act3d.models.decoder import FoldingDecoder
from act3d.models.dgcnn import DGCNN, GroupNormLast
from act3d.models.student import (
    MaskedPointModel,
    StudentConfig,
    act_loss,
    block_mask,
    center_features,
    random_mask,
)
from act3d.models.tokenizer import PatchEmbed
from act3d.ops import group_patches
from act3d.ops.grouping import PatchConfig


def test_groupnorm_last_equals_groupnorm_channels_first():
    ours, ref = GroupNormLast(4, 16), nn.GroupNorm(4, 16)
    with torch.no_grad():
        ours.weight.normal_(), ours.bias.normal_()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(3, 10, 5, 16)  # (B, G, k, C)
    torch.testing.assert_close(ours(x), ref(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), atol=1e-5, rtol=1e-5)


def test_shapes_of_the_building_blocks():
    patches = group_patches(torch.randn(2, 256, 3), 16, 8)
    tokens = PatchEmbed(24, hidden=0.25)(patches.neighborhood)
    assert tokens.shape == (2, 16, 24)
    assert DGCNN(24, 40, k=4, hidden=0.125)(tokens, patches.center).shape == (2, 16, 40)
    coarse, fine = FoldingDecoder(24, 8, hidden=32, fold_hidden=16)(tokens)
    assert coarse.shape == (2, 16, 2, 3) and fine.shape == (2, 16, 8, 3)


def test_folding_grid_matches_point_bert_order():
    dec = FoldingDecoder(4, 8)
    # fine point 4m + s uses seed s: (-,-), (+,-), (-,+), (+,+) with spacing 0.05
    expected = torch.tensor([[-0.05, -0.05], [0.05, -0.05], [-0.05, 0.05], [0.05, 0.05]])
    torch.testing.assert_close(dec.folding_seed, expected)


def test_masks_have_exact_counts_and_blocks_are_local():
    m = random_mask(4, 64, 0.8, "cpu")
    assert (m.sum(1) == 51).all()
    center = torch.randn(3, 64, 3)
    b = block_mask(center, 0.5)
    assert (b.sum(1) == 32).all()


def test_masked_model_predicts_only_masked_patches():
    cfg = StudentConfig(width=32, depth=2, heads=2, decoder_heads=2, embed_hidden=0.125, target="mae")
    model = MaskedPointModel(cfg, PatchConfig(16, 8))
    patches = group_patches(torch.randn(2, 128, 3), 16, 8)
    mask = model.make_mask(patches.center)
    pred, masked = model(patches, mask)
    assert pred.shape == (2, int(mask[0].sum()), 24)
    assert mask.gather(1, masked).all() and (masked.diff(dim=1) > 0).all()  # the masked patches, in order


def test_act_loss_and_centred_targets():
    common = torch.randn(1, 1, 16) * 5
    target = common + 0.1 * torch.randn(2, 8, 16)  # features sharing one large direction
    constant = common.expand(2, 8, 16)
    assert act_loss(constant, target) < 0.05  # a constant prediction already scores well...
    centred = center_features(target)
    torch.testing.assert_close(centred.mean(dim=(0, 1)), torch.zeros(16), atol=1e-5, rtol=0)
    assert (
        act_loss(center_features(constant + 1e-3 * torch.randn(2, 8, 16)), centred) > 0.5
    )  # ...not once centred
    assert act_loss(target, target) < 1e-6 and abs(act_loss(-target, target).item() - 2) < 1e-6


def test_split_by_mask_selects_what_boolean_indexing_does():
    """The student's index selection gives the same rows, in the same order, as `x[~mask]` / `x[mask]`
    (which would wait for the count on a GPU), for random and block masks."""
    from act3d.models.student import select_patches, split_by_mask
    from act3d.ops.indexing import gather_points

    center = torch.randn(5, 64, 3)
    patches = torch.randn(5, 64, 32, 3)
    for mask in (random_mask(5, 64, 0.6, "cpu"), block_mask(center, 0.8)):
        num_mask = int(mask[0].sum())
        visible, masked = split_by_mask(mask, num_mask)
        assert torch.equal(gather_points(center, visible), center[~mask].reshape(5, -1, 3))
        assert torch.equal(gather_points(center, masked), center[mask].reshape(5, -1, 3))
        assert torch.equal(select_patches(patches, masked), patches[mask].reshape(5, -1, 32, 3))


def test_stage2_follows_the_official_build_and_embeds_every_patch():
    """Official ACT_PointDistillation / VisableOnlyMaskTransformer: decoder drop path 0 -> 0.1, xavier
    decoder Linears, and the patch embedding runs over all patches before the masked ones are dropped."""
    torch.manual_seed(0)
    cfg = StudentConfig(width=64, depth=2, heads=4, decoder_depth=2, decoder_heads=4, drop_path=0.1)
    model = MaskedPointModel(cfg, PatchConfig(16, 8), target_dim=32)
    assert [b.drop_path.p for b in model.decoder.blocks] == torch.linspace(0, 0.1, 2).tolist()
    fc1 = model.decoder.blocks[0].mlp.fc1.weight  # (256, 64): xavier std sqrt(2 / 320) = 0.079, not 0.02
    assert abs(fc1.std().item() / (2 / sum(fc1.shape)) ** 0.5 - 1) < 0.1
    seen = []
    model.encoder.patch_embed.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    patches = group_patches(torch.randn(3, 128, 3), 16, 8)
    model(patches, model.make_mask(patches.center))
    assert seen == [16]  # all 16 patches embedded, though 80% of them are masked
