"""3DETR's parts against their restatement (tests/detr_model_reference.py) for the same weights."""

import detr_model_reference as official
import numpy as np
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


def _reference(model):
    """The restated official encoder and decoder holding `model`'s weights, and its other modules."""
    cfg = model.cfg
    enc = [
        official.EncoderLayer(cfg.enc_dim, cfg.enc_nhead, cfg.enc_ffn_dim, 0.0) for _ in model.encoder.layers
    ]
    for ours, theirs in zip(model.encoder.layers, enc):
        theirs.load_state_dict(ours.state_dict(), strict=True)
    if cfg.encoder == "masked":
        encoder = official.MaskedTransformerEncoder(
            torch.nn.ModuleList(enc), cfg.masking_radius, model.encoder.interim_downsampling
        )
    else:
        encoder = official.TransformerEncoder(torch.nn.ModuleList(enc))
    dec = [
        official.DecoderLayer(cfg.dec_dim, cfg.dec_nhead, cfg.dec_ffn_dim, 0.0) for _ in model.decoder.layers
    ]
    for ours, theirs in zip(model.decoder.layers, dec):
        theirs.load_state_dict(ours.state_dict(), strict=True)
    decoder = official.TransformerDecoder(torch.nn.ModuleList(dec), cfg.dec_dim)
    decoder.norm.load_state_dict(model.decoder.norm.state_dict())
    return {
        "pre_encoder": model.pre_encoder,
        "encoder": encoder.eval(),
        "decoder": decoder.eval(),
        "encoder_to_decoder_projection": model.encoder_to_decoder_projection,
        "query_projection": model.query_projection,
        "mlp_heads": model.mlp_heads,
        "gauss_B": model.pos_embedding.gauss_B,
        "nqueries": cfg.nqueries,
    }


@pytest.mark.parametrize("encoder", ["vanilla", "masked"])
def test_3detr_equals_the_official_forward_for_the_same_weights(encoder):
    from act3d.models.detr.model import Detector3DETR, DetrConfig

    cfg = DetrConfig(
        encoder=encoder, preenc_npoints=64, nqueries=16, enc_dim=32, dec_dim=32, enc_ffn_dim=16,
        dec_ffn_dim=32, dec_nlayers=3, masking_radius=[0.2**2, 0.4**2, 0.6**2],
    )  # fmt: skip
    model = Detector3DETR(cfg)
    _randomise(model)
    model.eval()
    g = torch.Generator().manual_seed(2)
    points = torch.rand(2, 600, 3, generator=g) * torch.tensor([3.0, 2.5, 1.5])
    lo, hi = points.min(1).values, points.max(1).values
    with torch.no_grad():
        ours = model.detect(points, point_cloud_dims_min=lo, point_cloud_dims_max=hi)
        theirs = official.official_forward(_reference(model), points, lo, hi)
    assert ours.keys() == theirs.keys()
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)
    assert ours["sem_cls_prob"].shape == (2, 16, 18) and ours["box_corners"].shape == (2, 16, 8, 3)
    assert ours["center_unnormalized"].std() > 0.05


def test_the_default_sizes_count_their_parameters():
    from act3d.models.detr.model import Detector3DETR, DetrConfig

    # main.py's defaults (3 encoder layers of 256, 8 decoder layers, 256 queries, 18 classes): pinned here, so
    # that any change of the architecture shows
    assert sum(p.numel() for p in Detector3DETR(DetrConfig()).parameters()) == 7_305_691


def _scenes_batch(tmp_path, count=2, points=1024):
    from layouts import write_scannet_detection

    from act3d.data.scannet import detection_sample, read_scene

    data, _ = write_scannet_detection(tmp_path, scenes=count, points=3000)
    samples = [
        detection_sample(read_scene(data, f"scene{i:04d}_00"), np.random.RandomState(i), False, points)
        for i in range(count)
    ]
    return {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]}


def test_the_set_criterion_equals_the_official_loss_for_the_same_predictions(tmp_path):
    from act3d.models.detr.criterion import CriterionConfig, detection_loss, generalized_box3d_iou
    from act3d.models.detr.model import Detector3DETR, DetrConfig

    targets = _scenes_batch(tmp_path)
    cfg = DetrConfig(
        preenc_npoints=64, nqueries=16, enc_dim=32, dec_dim=32, enc_ffn_dim=16, dec_ffn_dim=32, dec_nlayers=3
    )
    model = Detector3DETR(cfg)
    _randomise(model)
    model.eval()
    predictions = model(
        targets["point_clouds"], targets["point_cloud_dims_min"], targets["point_cloud_dims_max"]
    )
    nactual = targets["gt_box_present"].sum(1).long()
    ours = generalized_box3d_iou(predictions["outputs"]["box_corners"], targets["gt_box_corners"], nactual)
    theirs = official.official_giou(predictions["outputs"]["box_corners"], targets["gt_box_corners"], nactual)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    weights = CriterionConfig()
    loss, terms = detection_loss(predictions, targets, weights)
    expected = official.official_loss(predictions, targets, vars(weights))
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    assert set(terms) >= {
        "loss_giou",
        "loss_sem_cls",
        "loss_center",
        "loss_size",
        "loss_giou_0",
        "loss_size_1",
    }
    loss.backward()
    assert model.mlp_heads["center_head"].layers[0].weight.grad.abs().sum() > 0
    # no true box in a scene: only the class term and GIoU's zero remain
    empty = dict(targets, gt_box_present=torch.zeros_like(targets["gt_box_present"]))
    loss, terms = detection_loss(predictions, empty, weights)
    assert terms["loss_center"].item() == 0 and terms["loss_sem_cls"].item() > 0


def test_under_bf16_autocast_the_geometry_stays_float32():
    """The ball query, the Fourier positions and the box geometry compute as in float32 under autocast (the
    official code is float32 throughout; act3d.ops.float32)."""
    from act3d.models.detr.model import Detector3DETR, DetrConfig
    from act3d.ops.ball_query import ball_query

    cfg = DetrConfig(preenc_npoints=64, nqueries=16, enc_dim=32, dec_dim=32, enc_ffn_dim=16, dec_ffn_dim=32)
    model = Detector3DETR(cfg).eval()
    points = torch.rand(2, 600, 3) * torch.tensor([3.0, 2.5, 1.5])
    lo, hi = points.min(1).values, points.max(1).values
    plain = model.pos_embedding(points, lo, hi)
    neighbours = ball_query(points, points[:, :50], 0.2, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(model.pos_embedding(points, lo, hi), plain, rtol=0, atol=0)
        assert torch.equal(ball_query(points, points[:, :50], 0.2, 16), neighbours)
        out = model.detect(points, lo, hi)
    assert out["box_corners"].dtype == torch.float32 and out["center_unnormalized"].dtype == torch.float32
