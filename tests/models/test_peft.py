"""PEFT methods on the student backbone: each equals the reference statement of its official code for the same
weights (tests/peft_reference.py), trains what the official freezing rule trains, counts the published
parameters at the paper sizes, and travels in and out of the official checkpoint layout."""

from dataclasses import replace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import load_classifier
from peft_reference import (
    DaptClassifier,
    IdptClassifier,
    PointGstClassifier,
    PptClassifier,
    VptDeepClassifier,
    adapt_trainable,
    dapt_trainable,
    get_basis,
    only_new_trainable,
    ppt_trainable,
    xyz2key,
)
from safetensors.torch import load_file

from act3d.config import to_dict
from act3d.errors import CheckpointError, ConfigError
from act3d.models.classifier import ClassifierHead, PointClassifier
from act3d.models.layers import optimized_parameters
from act3d.models.official import export_official, import_official, official_names, to_official, unaliased
from act3d.models.peft.dapt import DaptConfig
from act3d.models.peft.idpt import IdptConfig
from act3d.models.peft.pointgst import PointGstConfig, graph_basis, z_order_keys
from act3d.models.peft.ppt import PptConfig
from act3d.models.peft.vpt_deep import VptDeepConfig
from act3d.models.student import StudentConfig, StudentEncoder
from act3d.ops.grouping import PatchConfig, group_patches

WIDTH, DEPTH, HEADS, HIDDEN, CLASSES, GROUPS = 32, 3, 4, 0.125, 5, 24


def _randomise(model: torch.nn.Module) -> None:
    """Every weight and every BatchNorm statistic random, so no equality holds by initialisation."""
    gen = torch.Generator().manual_seed(0)
    for name, t in model.state_dict().items():
        if t.is_floating_point():
            values = torch.rand(t.shape, generator=gen) + 0.5 if "running_var" in name else None
            t.copy_(values if values is not None else 0.3 * torch.randn(t.shape, generator=gen))


def _act3d(transfer: str, peft: Any) -> PointClassifier:
    student = StudentConfig(width=WIDTH, depth=DEPTH, heads=HEADS, decoder_heads=HEADS, embed_hidden=HIDDEN)
    head = ClassifierHead(CLASSES, transfer, peft=peft)
    model = PointClassifier(StudentEncoder(student), head, PatchConfig(GROUPS, 8))
    _randomise(model)
    return model.eval()


CASES = {
    "vpt_deep": (
        VptDeepConfig(prompts=3),
        lambda: VptDeepClassifier(WIDTH, DEPTH, HEADS, HIDDEN, CLASSES, 3),
    ),
    **{
        f"idpt-{features}": (
            IdptConfig(prompt_layer=layer, head_features=features, neighbours=k),
            lambda layer=layer, features=features, k=k: IdptClassifier(
                WIDTH, DEPTH, HEADS, HIDDEN, CLASSES, layer, features, k
            ),
        )
        for features, layer, k in [
            ("all", 2, 20),
            ("promptonly", 1, 6),
            ("promptcls", 0, 20),
            ("pointcls", 2, 24),
        ]
    },
    **{
        f"dapt-{cls}-{prompts}-{patches}": (
            DaptConfig(rank=6, cls=cls == "use", prompts=prompts, patches=patches),
            lambda cls=cls, prompts=prompts, patches=patches: DaptClassifier(
                WIDTH,
                DEPTH,
                HEADS,
                HIDDEN,
                CLASSES,
                6,
                cls,
                {"none": "None"}.get(prompts, prompts),
                {"none": "None"}.get(patches, patches),
            ),
        )
        for cls, prompts, patches in [
            ("use", "mean", "max"),  # ScanObjectNN PB_T50_RS and OBJ_BG
            ("use", "mean", "none"),  # OBJ_ONLY
            ("use", "none", "max"),  # ModelNet40
            ("None", "max", "max"),
        ]
    },
    **{
        f"pointgst-{local}": (
            PointGstConfig(rank=5, local=local),
            lambda local=local: PointGstClassifier(WIDTH, DEPTH, HEADS, HIDDEN, CLASSES, 5, local),
        )
        for local in (8, 24)
    },
    **{
        f"ppt-{groups}-{size}": (
            PptConfig(prompt_groups=groups, prompt_group_size=size),
            lambda: PptClassifier(WIDTH, DEPTH, HEADS, HIDDEN, CLASSES),
        )
        for groups, size in ((GROUPS, 8), (10, 12))
    },
}
RULES = {
    "vpt_deep": only_new_trainable,
    "idpt": only_new_trainable,
    "dapt": dapt_trainable,
    "pointgst": adapt_trainable,
    "ppt": ppt_trainable,
}


def _official_logits(official: torch.nn.Module, case: str, points: torch.Tensor) -> torch.Tensor:
    """The reference model on `points`, grouped as act3d groups them (the grouping is tested on its own)."""
    patches = group_patches(points, GROUPS, 8)
    if case.startswith("ppt"):  # PPT's second grouping, `center_divider`
        groups, size = (int(v) for v in case.split("-")[1:])
        extra = group_patches(points, groups, size)
        return official(patches.neighborhood, patches.center, extra.neighborhood, extra.center)
    return official(patches.neighborhood, patches.center)


@pytest.mark.parametrize("case", CASES)
def test_method_equals_its_official_code_for_the_same_weights(case):
    peft, reference = CASES[case]
    model = _act3d(case.split("-")[0], peft)
    official = reference().eval()
    official.load_state_dict(to_official(model.state_dict(), "classifier"), strict=True)
    points = torch.randn(3, 256, 3)
    with torch.no_grad():
        ours, theirs = (
            model(points),  # cut into PatchConfig(GROUPS, 8) patches, the reference's grouping
            _official_logits(official, case, points),
        )
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-4)
    assert ours.std() > 0.1  # the comparison is not between two constants


@pytest.mark.parametrize("case", CASES)
def test_method_trains_what_the_official_rule_trains(case):
    peft, reference = CASES[case]
    model = _act3d(case.split("-")[0], peft)
    names = official_names([n for n, _ in model.named_parameters()], "classifier")
    trainable = {names[n] for n, _ in optimized_parameters(model)}
    # IDPT's DGCNNView registers its BatchNorms twice: named_parameters reports them as bn<i>
    assert trainable == {unaliased(n, "classifier") for n in RULES[case.split("-")[0]](reference())}


@pytest.mark.parametrize("backbone_gradients", [True, False])
def test_idpt_gradients_reach_what_the_official_run_computes(backbone_gradients):
    """Officially every parameter keeps its gradient and the optimiser updates only what the rule names;
    with `backbone_gradients: false` only what trains gets a gradient."""
    cfg = IdptConfig(prompt_layer=1, neighbours=8, backbone_gradients=backbone_gradients)
    model = _act3d("idpt", cfg).train()
    model(torch.randn(4, 256, 3)).square().sum().backward()
    optimized = {n for n, _ in optimized_parameters(model)}
    for name, p in model.named_parameters():
        assert (p.grad is not None) == (backbone_gradients or name in optimized), name
    assert "encoder.blocks.blocks.0.attn.qkv.weight" not in optimized and "peft.prompt_pos" not in optimized
    assert model.peft.generator.conv1[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "transfer, groups, published",
    [
        ("full", 128, 22_093_327),  # the ACT paper's 22.1M
        ("vpt_deep", 128, 360_463),
        ("idpt", 128, 1_696_783),  # IDPT's 1.7M (7.69%)
        ("idpt", 64, 1_696_783),  # ModelNet40: the counts do not depend on the patch count
        ("dapt", 128, 1_087_771),  # DAPT's 1.1M (4.97%)
        ("pointgst", 128, 622_831),  # PointGST's 0.6M (2.77%; 2.82% of 22,093,327)
        ("ppt", 128, 1_042_191),  # PPT's 1.04M
    ],
)
def test_trainable_counts_at_the_paper_sizes(transfer, groups, published):
    model = PointClassifier(
        StudentEncoder(StudentConfig()), ClassifierHead(15, transfer), PatchConfig(groups, 32)
    )
    assert sum(p.numel() for _, p in optimized_parameters(model)) == published
    assert model.parameter_line().startswith(f"transfer {transfer}: {published:,} parameters train")


def test_idpt_refuses_a_backbone_it_cannot_fit():
    with pytest.raises(ConfigError, match="prompt_layer 3 is past the backbone's 3 blocks"):
        _act3d("idpt", IdptConfig(prompt_layer=3))
    with pytest.raises(ConfigError, match="neighbours 30 is more than the 24 patches"):
        _act3d("idpt", IdptConfig(prompt_layer=1, neighbours=30))


def _method_cfg(finetune_cfg, transfer, peft):
    student = replace(finetune_cfg.student, width=WIDTH, depth=DEPTH, heads=HEADS, decoder_heads=HEADS)
    return replace(
        finetune_cfg, transfer=transfer, peft=peft, student=student, patching=PatchConfig(GROUPS, 8)
    )


@pytest.mark.parametrize("case", ["vpt_deep", "idpt-all", "dapt-use-mean-max", "pointgst-8", "ppt-10-12"])
def test_official_checkpoint_imports_with_equal_logits_and_exports_back(case, finetune_cfg, tmp_path):
    peft, reference = CASES[case]
    official = reference().eval()
    _randomise(official)
    path = tmp_path / "ckpt-best.pth"  # as the official trainer writes it: DataParallel prefix, extra entries
    state = {f"module.{k}": v for k, v in official.state_dict().items()}
    torch.save({"base_model": state, "epoch": 299}, path)
    cfg = _method_cfg(finetune_cfg, case.split("-")[0], peft)
    out, _ = import_official(path, "classifier", to_dict(cfg), tmp_path / "act3d.pt")
    model, arch, _ = load_classifier(out)
    assert arch["head"]["transfer"] == case.split("-")[0]
    points = torch.randn(2, 256, 3)
    with torch.no_grad():
        torch.testing.assert_close(
            model(points), _official_logits(official, case, points), atol=2e-5, rtol=1e-4
        )
    weights, _ = export_official(out, tmp_path / "exported")
    back = load_file(str(weights))
    expected = {k: v for k, v in official.state_dict().items()}
    assert back.keys() == expected.keys()
    for k, v in expected.items():
        torch.testing.assert_close(back[k], v, msg=k)


def test_a_checkpoint_of_another_method_is_refused_in_one_line(finetune_cfg, tmp_path):
    peft, reference = CASES["idpt-all"]
    torch.save({"base_model": reference().state_dict()}, tmp_path / "idpt.pth")
    cfg = _method_cfg(finetune_cfg, "vpt_deep", CASES["vpt_deep"][0])
    with pytest.raises(CheckpointError) as err:
        import_official(tmp_path / "idpt.pth", "classifier", to_dict(cfg), tmp_path / "x.pt")
    assert "holds a classifier with idpt (blocks.cls.* weights)" in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x.pt").exists()


def test_pointgst_z_order_keys_equal_the_official_lookup_tables():
    coords = torch.randint(-60000, 60000, (3, 1000))
    assert torch.equal(z_order_keys(*coords), xyz2key(*coords))


def test_pointgst_official_basis_is_the_official_computation_bit_for_bit():
    center = torch.rand(4, 32, 3) - 0.5
    assert torch.equal(graph_basis(center, "official"), get_basis(center))


def test_pointgst_intended_basis_scales_by_the_smallest_distance_between_two_centres():
    center = torch.rand(2, 32, 3) - 0.5  # over 25 points torch.cdist takes the matrix-product path
    dist = torch.cdist(center, center)
    off_diagonal = dist[:, ~torch.eye(32, dtype=torch.bool)]
    assert dist[dist > 0].min() < off_diagonal.min() / 10  # the official scale: a diagonal residue
    eye = torch.eye(32)
    weights = 1 / (dist * (1 - eye) / off_diagonal.min() + eye)
    laplacian = (
        eye
        - weights
        / (weights.sum(-1, keepdim=True) + 1e-6).sqrt()
        / (weights.sum(-2, keepdim=True) + 1e-6).sqrt()
    )
    basis = graph_basis(center, "intended")
    # the columns are the eigenvectors of that Laplacian: U^T L U is diagonal
    inner = basis.transpose(1, 2) @ laplacian @ basis
    torch.testing.assert_close(inner, torch.diag_embed(inner.diagonal(dim1=1, dim2=2)), atol=1e-5, rtol=0)


def test_pointgst_refuses_a_local_size_that_does_not_divide_the_patches():
    with pytest.raises(ConfigError, match="pointgst.local 7 does not divide the 24 patches"):
        _act3d("pointgst", PointGstConfig(local=7))


@pytest.mark.parametrize("transfer, published", [("full", 4.76), ("idpt", 7.10), ("dapt", 4.96)])
def test_forward_cost_at_the_paper_sizes_is_the_published_one(transfer, published):
    """The PointGST paper's table prints each method's cost on ACT at 2048 points ("GFLOPs", multiply-adds
    of one cloud's forward pass): an added or missing layer would move it. PointGST's own 4.81 is not held
    here: act3d counts 4.83, the batched products with its spectral bases included."""
    from torch.utils.flop_counter import FlopCounterMode

    model = PointClassifier(
        StudentEncoder(StudentConfig()), ClassifierHead(15, transfer), PatchConfig(128, 32)
    )
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.randn(1, 2048, 3))
    assert counter.get_total_flops() / 2e9 == pytest.approx(published, abs=0.005)


@pytest.mark.parametrize("method", ["idpt", "vpt_deep"])
def test_one_training_step_clips_as_the_official_run(method, finetune_cfg):
    """act3d's training step (the loop's `train_step`: forward, backward, clipping, AdamW) against the
    official one on the same weights and batch (IDPT's runner_finetune.py l.173-183 with builder.py's
    `only_new`: every parameter keeps its gradient and all of them count in clip_grad_norm_). The clipped
    gradients agree, and AdamW holds exactly the `cls` names. Without the frozen parameters' gradients
    (`backbone_gradients: false`) the clipping norm is smaller and the clipped gradients larger."""
    from act3d.train.device import MixedPrecision
    from act3d.train.distributed import DistInfo
    from act3d.train.finetune import ClassifierTask
    from act3d.train.loop import WrappedModule, train_step
    from act3d.train.optimizer import make_optimizer
    from act3d.train.options import OptimConfig, RuntimeConfig

    optim = OptimConfig(lr=1e-3, weight_decay=0.05, grad_clip=0.05)
    points, labels = torch.randn(6, 256, 3), torch.randint(CLASSES, (6,))
    case = "vpt_deep" if method == "vpt_deep" else "idpt-all"
    head_grads = {}
    for backbone_gradients in (True, False):
        peft = replace(CASES[case][0], backbone_gradients=backbone_gradients)
        model = _act3d(method, peft)
        model.head[3].p = model.head[7].p = 0.0  # no dropout, no drop path: the steps see one network
        model.encoder.blocks.set_drop_path(0.0)
        official = CASES[case][1]()
        official.load_state_dict(to_official(model.state_dict(), "classifier"), strict=True)
        official.cls_head_finetune[3].p = official.cls_head_finetune[7].p = 0.0
        official.train()
        patches = group_patches(points, GROUPS, 8)
        F.cross_entropy(official(patches.neighborhood, patches.center), labels).backward()
        torch.nn.utils.clip_grad_norm_(official.parameters(), optim.grad_clip, norm_type=2)

        model.train()
        cfg = replace(
            _method_cfg(finetune_cfg, method, peft), augmentation="none", sampling="random", optim=optim
        )
        optimizer = make_optimizer(model, optim)
        cpu = torch.device("cpu")
        wrapped = WrappedModule(model, RuntimeConfig(), DistInfo(), cpu)
        batch = iter([(points, labels)])
        train_step(
            ClassifierTask(model, cfg),
            wrapped,
            batch,
            optimizer,
            MixedPrecision("float32", cpu),
            optim,
            DistInfo(),
            0,
        )
        names = official_names([n for n, _ in model.named_parameters()], "classifier")
        ours = {names[n]: p.grad for n, p in model.named_parameters() if p.grad is not None}
        stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
        assert {names[n] for n, p in model.named_parameters() if id(p) in stepped} == {
            unaliased(n, "classifier") for n in only_new_trainable(official)
        }
        head_grads[backbone_gradients] = ours["cls_head_finetune.0.weight"]
        if backbone_gradients:
            theirs = {unaliased(n, "classifier"): p.grad for n, p in official.named_parameters()}
            assert ours.keys() == theirs.keys()
            for key, value in theirs.items():
                torch.testing.assert_close(  # act3d's Linear stands for a 1x1 convolution
                    ours[key].reshape(value.shape),
                    value,
                    atol=1e-6,
                    rtol=1e-4,
                    msg=lambda m, k=key: f"{k}: {m}",
                )
    ratio = head_grads[False].norm() / head_grads[True].norm()
    assert ratio > 1.05  # the official norm counts the backbone too: its clipped gradients are smaller


def test_idpt_checkpoints_hold_the_official_batchnorm_aliases(finetune_cfg, tmp_path):
    """The official DGCNNView saves each BatchNorm twice (bn<i> and conv<i>.1, dgcnn.py l.86-109): an exported
    IDPT classifier holds both, as IDPT's strict loader needs, and a file whose two copies differ is refused."""
    peft, reference = CASES["idpt-all"]
    official = reference()
    _randomise(official)
    state = official.state_dict()
    aliases = [k for k in state if k.startswith("blocks.cls.bn")]
    assert len(aliases) == 20
    torch.save({"base_model": state}, tmp_path / "idpt.pth")
    cfg = _method_cfg(finetune_cfg, "idpt", peft)
    out, _ = import_official(tmp_path / "idpt.pth", "classifier", to_dict(cfg), tmp_path / "act3d.pt")
    weights, _ = export_official(out, tmp_path / "exported")
    reference().load_state_dict(load_file(str(weights)), strict=True)  # IDPT's own loader is strict
    state["blocks.cls.bn2.weight"] = state["blocks.cls.bn2.weight"] + 1
    torch.save({"base_model": state}, tmp_path / "tampered.pth")
    with pytest.raises(CheckpointError, match="blocks.cls.bn2.weight and blocks.cls.conv2.1.weight"):
        import_official(tmp_path / "tampered.pth", "classifier", to_dict(cfg), tmp_path / "x.pt")


def test_a_checkpoint_of_the_earlier_peft_layout_loads_as_its_method(tmp_path):
    """Checkpoints written before each method owned its settings hold every method's under its name
    (`arch["head"]["peft"] = {vpt_deep: {...}, idpt: {...}, ...}`): they load as the transfer's own method,
    into the same network; one whose other method was set away from its defaults is refused in one line."""
    from act3d.models import zoo
    from act3d.models.checkpoint import model_payload, save_checkpoint
    from act3d.models.peft import METHODS

    own = IdptConfig(prompt_layer=1, neighbours=6)
    model = _act3d("idpt", own)
    arch = zoo.classifier_arch(
        model.encoder.cfg, model.patching, 256, [f"c{i}" for i in range(CLASSES)], _head(own)
    )
    earlier = {m: to_dict(method.Config()) for m, method in METHODS.items()} | {"idpt": to_dict(own)}
    arch["head"]["peft"] = earlier
    save_checkpoint(tmp_path / "old.pt", model_payload(zoo.CLASSIFIER, model.state_dict(), 0, None, arch))
    loaded, _ = zoo.load(tmp_path / "old.pt", zoo.CLASSIFIER)
    assert loaded.peft.prompt_layer == 1 and loaded.peft.generator.k == 6
    clouds = torch.randn(2, 256, 3)
    torch.testing.assert_close(loaded.eval()(clouds), model.eval()(clouds), rtol=0, atol=0)
    arch["head"]["peft"] = earlier | {"dapt": {"rank": 4}}
    save_checkpoint(tmp_path / "mixed.pt", model_payload(zoo.CLASSIFIER, model.state_dict(), 0, None, arch))
    with pytest.raises(
        CheckpointError, match="mixed.pt: its architecture record: peft.dapt is set, but transfer is idpt"
    ):
        zoo.load(tmp_path / "mixed.pt", zoo.CLASSIFIER)


def _head(peft: Any) -> ClassifierHead:
    return ClassifierHead(CLASSES, "idpt", peft=peft)


@pytest.mark.parametrize("case", ["vpt_deep", "idpt-all", "dapt-use-mean-max", "pointgst-8", "ppt-10-12"])
def test_activation_checkpointing_changes_no_gradient(case):
    """The backbone's checkpointing (`set_activation_checkpointing`) recomputes every block a method runs
    through the stack's seams, in train mode (drop path, DAPT's adapter dropout): the same loss and
    gradients to the bit."""
    from act3d.models.transformer import set_activation_checkpointing

    method = case.split("-")[0]
    grads = []
    for enabled in (False, True):
        model = _act3d(method, CASES[case][0]).train()
        model.encoder.blocks.set_drop_path(0.2)
        set_activation_checkpointing(model, enabled)
        torch.manual_seed(1)
        points = torch.randn(4, 256, 3)
        loss = model(points).square().mean()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]), name
