"""Bad inputs on the surfaces added since the first battery (tests/test_bad_inputs.py): teachers from
Hugging Face and timm files, PEFT training, import / export of every layout, `--precision` and the Python
API, `embed` / `predict` on files and folders. Each case runs the real command line on real files in their
real formats: a user error ends in exit code 2 and one line on stderr, nothing is written, no file that
existed is changed, no code from a model folder runs or is offered to run, and no model runs on weights it
did not load."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_DATA, TINY_PATCHES, TINY_RUNTIME, TINY_STUDENT, TINY_TEACHER_MODEL
from safetensors.torch import load_file, save_file
from test_bad_inputs import fails, snapshot

from act3d.cli import main
from act3d.models import zoo
from act3d.models.checkpoint import load_checkpoint, model_payload, save_checkpoint

transformers = pytest.importorskip("transformers")

# --------------------------------------------------------------------------------------------------
# files the cases start from
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def hf_folder(tmp_path) -> Path:
    """A tiny DINOv2 that transformers itself built and saved (config.json + model.safetensors)."""
    torch.manual_seed(0)
    config = transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32
    )
    folder = tmp_path / "dinov2-tiny"
    transformers.Dinov2Model(config).save_pretrained(folder)
    return folder


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | changes))


def edit_weights(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    save_file(edit(load_file(path)), path)


@pytest.fixture
def teacher_yaml(scan_root, tmp_path) -> Path:
    """A tiny Stage I config reading its Transformer from a Hugging Face folder (set per case)."""
    cfg = {
        "data": {**TINY_DATA, "root": scan_root},
        "patching": TINY_PATCHES,
        "model": {**TINY_TEACHER_MODEL, "transformer": {"kind": "hf", "depth": None}},
        "anneal": {"steps": 4},
        "optim": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0.5, "max_steps": 2},
        "runtime": TINY_RUNTIME,
        "gallery": 2,
    }
    path = tmp_path / "teacher.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train_teacher(teacher_yaml: Path, folder: Path, out: Path, *more: str) -> list[str]:
    return [
        "train-teacher",
        "--config",
        str(teacher_yaml),
        "--set",
        f"model.transformer.path={folder}",
        "--out",
        str(out),
        *more,
    ]


def refused_teacher(capsys, teacher_yaml, folder, tmp_path, *words) -> None:
    """The folder's teacher is refused in one line and leaves no run folder behind."""
    out = tmp_path / "refused-run"
    fails(capsys, train_teacher(teacher_yaml, folder, out), *words)
    assert not out.exists()


@pytest.fixture
def finetune_yaml(scan_root, tmp_path) -> Path:
    cfg = {
        "data": {**TINY_DATA, "root": scan_root},
        "patching": TINY_PATCHES,
        "student": TINY_STUDENT,
        "val_fraction": 0.0,
        "optim": {"epochs": 1, "batch_size": 4, "lr": 1e-3, "warmup_epochs": 0.5, "max_steps": 2},
        "runtime": TINY_RUNTIME,
    }
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def classifier_checkpoint(path: Path, transfer: str = "full", peft: dict | None = None) -> Path:
    """A classifier checkpoint of the tiny sizes, as `act3d finetune` writes one, with random weights."""
    from act3d.config import from_dict
    from act3d.models.classifier import ClassifierHead
    from act3d.models.student import StudentConfig
    from act3d.ops.grouping import PatchConfig

    torch.manual_seed(0)
    head = ClassifierHead(3, transfer, peft=peft)
    arch = zoo.classifier_arch(
        from_dict(StudentConfig, TINY_STUDENT),
        from_dict(PatchConfig, TINY_PATCHES),
        64,
        ["a", "b", "c"],
        head,
    )
    model = zoo.build(zoo.CLASSIFIER, arch)
    with torch.no_grad():  # BatchNorm statistics away from their init, so the head's input matters
        for name, t in model.state_dict().items():
            if "running_var" in name:
                t.uniform_(0.5, 1.5)
    save_checkpoint(path, model_payload(zoo.CLASSIFIER, model.state_dict(), 0, None, arch))
    return path


@pytest.fixture
def classifier(tmp_path) -> Path:
    return classifier_checkpoint(tmp_path / "classifier.pt")


@pytest.fixture
def clouds(tmp_path) -> Path:
    """A folder of five `.npy` clouds."""
    folder = tmp_path / "clouds"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        np.save(folder / f"cloud{i}.npy", rng.normal(size=(80, 3)).astype(np.float32))
    return folder


# --------------------------------------------------------------------------------------------------
# teachers from Hugging Face folders
# --------------------------------------------------------------------------------------------------


def test_a_model_folder_naming_its_own_code_is_refused_without_asking_or_running_it(
    hf_folder, teacher_yaml, tmp_path, capsys, monkeypatch
):
    marker = tmp_path / "the-folder-code-ran"
    (hf_folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    edit_config(hf_folder, auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("act3d asked whether to run the code"))
    refused_teacher(
        capsys, teacher_yaml, hf_folder, tmp_path, "names model code of its own", "never runs code"
    )
    assert not marker.exists()
    assert "[y/N]" not in capsys.readouterr().out


def test_a_recorded_config_naming_its_own_code_is_refused_when_a_checkpoint_is_rebuilt():
    from act3d.errors import CheckpointError
    from act3d.models.hf_transformers import model_from_config

    config = {"model_type": "dinov2", "auto_map": {"AutoModel": "evil.EvilModel"}, "hidden_size": 32}
    with pytest.raises(CheckpointError, match="never runs code"):
        model_from_config(config)


def test_weights_matching_none_of_the_models_names_are_refused(hf_folder, teacher_yaml, tmp_path, capsys):
    edit_weights(hf_folder, lambda state: {f"renamed.{k}": v for k, v in state.items()})
    refused_teacher(capsys, teacher_yaml, hf_folder, tmp_path, "lacks weights of layers", "would stay random")


def test_a_config_claiming_more_layers_than_the_weights_hold_is_refused(
    hf_folder, teacher_yaml, tmp_path, capsys
):
    edit_config(hf_folder, num_hidden_layers=4)
    refused_teacher(capsys, teacher_yaml, hf_folder, tmp_path, "missing", "encoder.layer.2.")


def test_a_config_that_lies_about_widths_is_refused(hf_folder, teacher_yaml, tmp_path, capsys):
    edit_config(hf_folder, hidden_size=64)
    refused_teacher(capsys, teacher_yaml, hf_folder, tmp_path, "other shapes than its config.json says")


def test_a_truncated_safetensors_file_is_refused(hf_folder, teacher_yaml, tmp_path, capsys):
    with open(hf_folder / "model.safetensors", "r+b") as f:
        f.truncate(300)
    refused_teacher(capsys, teacher_yaml, hf_folder, tmp_path, "could not load", "SafetensorError")


def test_pickled_weights_are_refused_in_one_line(hf_folder, teacher_yaml, tmp_path, capsys):
    torch.save(load_file(hf_folder / "model.safetensors"), hf_folder / "pytorch_model.bin")
    (hf_folder / "model.safetensors").unlink()
    refused_teacher(capsys, teacher_yaml, hf_folder, tmp_path, "pytorch_model.bin", "pickle")
    out = tmp_path / "bert-run"  # the hand-mapped BERT route of folders is gone: transformers builds them
    argv = train_teacher(teacher_yaml, hf_folder, out, "--set", "model.transformer.kind=hf-bert")
    fails(capsys, argv, "model.transformer.kind", "'hf'")
    assert not out.exists()


def test_a_hugging_face_file_given_as_a_timm_file_is_sent_to_its_route(
    hf_folder, teacher_yaml, tmp_path, capsys
):
    """One route per family (`pretrained.ROUTES`): a DINOv2 in Hugging Face names is built by transformers
    from its folder (kind hf), not hand-mapped from its weight file as a timm ViT."""
    out = tmp_path / "timm-run"
    argv = train_teacher(
        teacher_yaml, hf_folder / "model.safetensors", out, "--set", "model.transformer.kind=timm"
    )
    fails(capsys, argv + ["--set", "model.transformer.heads=2"], "Hugging Face names", "kind=hf")
    assert not out.exists()


def test_nan_weights_in_a_model_folder_are_refused(hf_folder, teacher_yaml, tmp_path, capsys):
    def poison(state):
        state["encoder.layer.1.mlp.fc2.weight"][0, 0] = float("nan")
        return state

    edit_weights(hf_folder, poison)
    refused_teacher(capsys, teacher_yaml, hf_folder, tmp_path, "NaN/inf", "encoder.layer.1.mlp.fc2.weight")


def test_a_model_type_transformers_does_not_know_is_refused(hf_folder, teacher_yaml, tmp_path, capsys):
    edit_config(hf_folder, model_type="not-a-model")
    refused_teacher(capsys, teacher_yaml, hf_folder, tmp_path, "'not-a-model'", "could not load")


def test_a_missing_or_wrong_path_is_named_as_such(hf_folder, teacher_yaml, tmp_path, capsys):
    refused_teacher(capsys, teacher_yaml, tmp_path / "nowhere", tmp_path, "no such folder")
    refused_teacher(capsys, teacher_yaml, hf_folder / "config.json", tmp_path, "a file", "model folder")
    (hf_folder / "config.json").unlink()
    refused_teacher(capsys, teacher_yaml, hf_folder, tmp_path, "no config.json")


def test_a_missing_timm_file_is_named_as_missing(teacher_yaml, tmp_path, capsys):
    out = tmp_path / "timm-run"
    argv = train_teacher(teacher_yaml, tmp_path / "vit.pth", out, "--set", "model.transformer.kind=timm")
    fails(capsys, argv, "vit.pth", "no such file")
    assert not out.exists()


def test_a_refused_teacher_leaves_nothing_so_the_corrected_run_starts(
    hf_folder, teacher_yaml, tmp_path, capsys
):
    out = tmp_path / "run"
    fails(capsys, train_teacher(teacher_yaml, tmp_path / "typo", out), "no such folder")
    assert not out.exists()
    assert main(train_teacher(teacher_yaml, hf_folder, out)) == 0
    # --overwrite with a bad teacher: refused before the finished run is touched
    before = snapshot(out)
    fails(capsys, train_teacher(teacher_yaml, tmp_path / "typo", out, "--overwrite"), "no such folder")
    assert snapshot(out) == before


def test_a_teacher_refuses_a_stage_ii_run_without_leaving_a_folder(pretrain_cfg, tmp_path, capsys):
    from act3d.config import to_dict

    config = tmp_path / "pretrain.yaml"
    config.write_text(yaml.safe_dump(to_dict(pretrain_cfg)))
    out = tmp_path / "student"
    base = ["pretrain", "--config", config, "--out", out]
    fails(capsys, base + ["--teacher", tmp_path / "nowhere.pt"], "checkpoint not found", "nowhere.pt")
    assert not out.exists()


def test_a_teacher_checkpoint_of_a_model_type_this_transformers_lacks_is_one_line(
    hf_folder, teacher_yaml, pretrain_cfg, tmp_path, capsys
):
    from act3d.config import to_dict

    assert main(train_teacher(teacher_yaml, hf_folder, tmp_path / "teacher")) == 0
    ckpt = load_checkpoint(tmp_path / "teacher" / "checkpoints" / "last.pt")
    ckpt["arch"]["transformer"]["config"]["model_type"] = "dinov7"  # as a newer transformers would write
    save_checkpoint(tmp_path / "future.pt", {k: v for k, v in ckpt.items() if k != "format_version"})
    config = tmp_path / "pretrain.yaml"
    config.write_text(yaml.safe_dump(to_dict(pretrain_cfg)))
    out = tmp_path / "student"
    argv = ["pretrain", "--config", config, "--teacher", tmp_path / "future.pt", "--out", out]
    fails(capsys, argv, "'dinov7'", f"transformers {transformers.__version__} here cannot build")
    assert not out.exists()
    # the official layout holds timm ViT teachers: a teacher built by transformers is not exported
    exported = tmp_path / "official"
    fails(
        capsys,
        ["export-official", tmp_path / "teacher" / "checkpoints" / "last.pt", "--out", exported],
        "timm ViT teachers only",
    )
    assert not list(tmp_path.glob("official*"))


# --------------------------------------------------------------------------------------------------
# PEFT training
# --------------------------------------------------------------------------------------------------


def test_a_peft_run_without_a_pretrained_backbone_is_refused(finetune_yaml, tmp_path, capsys):
    out = tmp_path / "peft"
    argv = ["finetune", "--config", finetune_yaml, "--set", "transfer=vpt_deep", "--out", out]
    fails(capsys, argv, "transfer vpt_deep trains on a frozen backbone", "--checkpoint")
    assert not out.exists()


def test_settings_of_another_peft_method_are_refused(finetune_yaml, untrained_student, tmp_path, capsys):
    out = tmp_path / "peft"
    argv = ["finetune", "--config", finetune_yaml, "--checkpoint", untrained_student, "--out", out]
    argv += ["--set", "transfer=vpt_deep", "--set", "peft.dapt.rank=4"]
    fails(capsys, argv, "peft.dapt is set, but transfer is vpt_deep")
    fails(capsys, argv[:-1] + ["peft.rank=4"], "unknown config key(s): peft.rank", "prompts")
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# embed and predict
# --------------------------------------------------------------------------------------------------


def test_embed_never_writes_over_its_input(classifier, clouds, capsys):
    cloud = clouds / "cloud0.npy"
    before = cloud.read_bytes()
    fails(capsys, ["embed", cloud, "--checkpoint", classifier, "--out", cloud], "one of the inputs")
    fails(
        capsys,
        ["embed", cloud, "--checkpoint", classifier, "--out", cloud, "--overwrite"],
        "one of the inputs",
    )
    assert cloud.read_bytes() == before


def test_embed_refuses_an_existing_output_without_overwrite(classifier, clouds, tmp_path, capsys):
    out = tmp_path / "mine.npy"
    out.write_bytes(b"the user's own file")
    fails(capsys, ["embed", clouds, "--checkpoint", classifier, "--out", out], "already exist", "--overwrite")
    assert out.read_bytes() == b"the user's own file"
    names = tmp_path / "other.files.txt"  # a file beside --out that embed would write
    names.write_text("the user's own notes\n")
    fails(
        capsys, ["embed", clouds, "--checkpoint", classifier, "--out", tmp_path / "other"], "other.files.txt"
    )
    assert names.read_text() == "the user's own notes\n"


def test_embed_into_its_input_folder_does_not_embed_its_own_output(classifier, clouds, capsys):
    for run in range(2):  # the second run finds the first run's output in the folder
        extra = ["--overwrite"] if run else []
        assert (
            main(["embed", str(clouds), "--checkpoint", str(classifier), "--out", str(clouds / "f")] + extra)
            == 0
        )
        assert np.load(clouds / "f.npy").shape[0] == 5
        assert len((clouds / "f.files.txt").read_text().splitlines()) == 5
    # another --out in the same folder: the first run's features are not read as a cloud either
    assert main(["embed", str(clouds), "--checkpoint", str(classifier), "--out", str(clouds / "g")]) == 0
    assert np.load(clouds / "g.npy").shape[0] == 5


def test_a_line_break_in_a_file_name_never_shifts_the_names_file(classifier, clouds, tmp_path, caplog):
    shutil.copy(clouds / "cloud1.npy", clouds / "two\nlines.npy")
    out = tmp_path / "f.npy"
    with caplog.at_level("WARNING"):
        assert main(["embed", str(clouds), "--checkpoint", str(classifier), "--out", str(out)]) == 0
    names = (tmp_path / "f.files.txt").read_text().splitlines()
    assert len(names) == np.load(out).shape[0] == 5
    assert all(Path(n).is_file() for n in names)
    assert any("line break" in r.getMessage() for r in caplog.records)


def test_a_refused_embed_leaves_no_folder_behind(clouds, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "f.npy"
    fails(capsys, ["embed", clouds, "--checkpoint", tmp_path / "nowhere.pt", "--out", out], "nowhere.pt")
    assert not (tmp_path / "new").exists()


def test_embed_out_naming_a_folder_is_one_line(classifier, clouds, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fails(capsys, ["embed", clouds, "--checkpoint", classifier, "--out", "."], "is a folder")
    fails(capsys, ["embed", clouds, "--checkpoint", classifier, "--out", "sub/"], "is a folder")
    assert not (tmp_path / "sub").exists()


@pytest.mark.parametrize(
    "transfer, peft",
    [("vpt_deep", {"prompts": 3}), ("dapt", {"rank": 4})],
)
def test_embed_of_a_peft_classifier_returns_what_its_head_reads(transfer, peft, clouds, tmp_path, caplog):
    import act3d

    path = classifier_checkpoint(tmp_path / f"{transfer}.pt", transfer, peft)
    model = act3d.load_model(path)
    points = np.stack([np.load(clouds / f"cloud{i}.npy") for i in range(5)])
    head_input = model.embed(points, "head")
    with torch.no_grad():
        logits = model.model(model.prepare(points))
        from_features = model.model.head(torch.from_numpy(head_input))
    torch.testing.assert_close(from_features, logits, rtol=1e-5, atol=1e-5)
    assert head_input.shape[1] == model.model.head[0].in_features
    # the CLI gives the same rows, and says what it gives when asked for the plain backbone's features
    out = tmp_path / f"{transfer}-head.npy"
    argv = ["embed", str(clouds), "--checkpoint", str(path), "--pooling", "head", "--out", str(out)]
    assert main(argv) == 0
    one_by_one = [model.embed(np.load(clouds / f"cloud{i}.npy"), "head") for i in range(5)]  # as it reads
    np.testing.assert_allclose(np.load(out), np.concatenate(one_by_one), rtol=1e-5, atol=1e-6)
    with caplog.at_level("WARNING"):
        assert main(["embed", str(clouds), "--checkpoint", str(path), "--out", str(tmp_path / "plain")]) == 0
    assert any("without its prompts/adapters" in r.getMessage() for r in caplog.records)


def test_pooling_head_and_predict_need_a_classifier(untrained_student, clouds, tmp_path, capsys):
    out = tmp_path / "f.npy"
    argv = ["embed", clouds, "--checkpoint", untrained_student, "--pooling", "head", "--out", out]
    fails(capsys, argv, "not a fine-tuned classifier", "--pooling head")
    fails(capsys, ["predict", clouds, "--checkpoint", untrained_student], "not a fine-tuned classifier")
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# import-official / export-official
# --------------------------------------------------------------------------------------------------


def test_export_adds_its_suffixes_and_never_replaces_a_file_unasked(classifier, tmp_path, capsys):
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / "model.json").write_text("the user's own file")
    assert main(["export-official", str(classifier), "--out", str(folder / "model.v2")]) == 0
    assert (folder / "model.v2.safetensors").is_file() and (folder / "model.v2.json").is_file()
    assert (folder / "model.json").read_text() == "the user's own file"
    fails(capsys, ["export-official", classifier, "--out", folder / "model"], "model.json", "--overwrite")
    assert not (folder / "model.safetensors").exists()
    before = snapshot(folder)
    fails(capsys, ["export-official", classifier, "--out", folder / "model.v2"], "already exist")
    assert snapshot(folder) == before
    assert main(["export-official", str(classifier), "--out", str(folder / "model.v2"), "--overwrite"]) == 0


def test_import_refuses_nan_weights_and_writes_nothing(classifier, finetune_yaml, tmp_path, capsys):
    assert main(["export-official", str(classifier), "--out", str(tmp_path / "official")]) == 0
    state = load_file(tmp_path / "official.safetensors")
    state["cls_head_finetune.0.weight"][0, 0] = float("nan")
    save_file(state, tmp_path / "nan.safetensors")
    out = tmp_path / "imported.pt"
    argv = ["import-official", tmp_path / "nan.safetensors", "--layout", "classifier", "--out", out]
    fails(capsys, argv + ["--config", finetune_yaml], "NaN/inf", "head.0.weight")
    assert not out.exists()


def test_import_keeps_the_class_names_its_export_recorded(classifier, finetune_yaml, tmp_path):
    assert main(["export-official", str(classifier), "--out", str(tmp_path / "official")]) == 0
    out = tmp_path / "back.pt"
    argv = ["import-official", str(tmp_path / "official.safetensors"), "--layout", "classifier"]
    assert main(argv + ["--config", str(finetune_yaml), "--out", str(out)]) == 0
    assert load_checkpoint(out)["arch"]["class_names"] == ["a", "b", "c"]


def test_import_never_writes_over_its_input_or_an_existing_file(classifier, finetune_yaml, tmp_path, capsys):
    assert main(["export-official", str(classifier), "--out", str(tmp_path / "official")]) == 0
    weights = tmp_path / "official.safetensors"
    base = ["import-official", weights, "--layout", "classifier", "--config", finetune_yaml]
    before = weights.read_bytes()
    fails(capsys, base + ["--out", weights, "--overwrite"], "one of the inputs")
    assert weights.read_bytes() == before
    existing = tmp_path / "mine.pt"
    existing.write_bytes(b"the user's own file")
    fails(capsys, base + ["--out", existing], "already exist", "--overwrite")
    assert existing.read_bytes() == b"the user's own file"
    fails(capsys, base + ["--out", tmp_path], "is a folder")


# --------------------------------------------------------------------------------------------------
# precision, from the command line and from Python
# --------------------------------------------------------------------------------------------------


def test_load_model_takes_the_precision_the_docs_name(classifier, clouds):
    import act3d
    from act3d.errors import ConfigError

    points = np.load(clouds / "cloud0.npy")
    fast = act3d.load_model(classifier, precision="bf16")
    assert fast.precision == "bf16"
    exact = act3d.load_model(classifier)
    assert np.abs(fast.embed(points) - exact.embed(points)).max() < 0.1 * np.abs(exact.embed(points)).max()
    with pytest.raises(ConfigError, match="precision must be one of"):
        act3d.load_model(classifier, precision="fp64")


@pytest.mark.parametrize("command", ["embed", "predict"])
def test_an_unknown_precision_is_one_line(command, classifier, clouds, tmp_path, capsys):
    argv = [command, clouds, "--checkpoint", classifier, "--precision", "fp8"]
    argv += ["--out", tmp_path / "f.npy"] if command == "embed" else []
    fails(capsys, argv, "--precision", "fp8")
    assert not (tmp_path / "f.npy").exists()


def test_export_out_naming_a_folder_is_one_line(classifier, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    fails(capsys, ["export-official", classifier, "--out", "."], "is a folder")
    fails(capsys, ["export-official", classifier, "--out", tmp_path], "is a folder")
    assert snapshot(tmp_path) == before


def test_a_pickle_holding_code_is_refused_without_offering_to_load_it(teacher_yaml, tmp_path, capsys):
    import pickle

    marker = tmp_path / "the-pickle-ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "vit_small_patch16_224.pth"
    path.write_bytes(pickle.dumps({"model": {"blocks.0.norm1.weight": Payload()}}))
    out = tmp_path / "run"
    argv = train_teacher(teacher_yaml, path, out, "--set", "model.transformer.kind=timm")
    err = fails(capsys, argv, "pickled Python objects besides weights", "never loads those")
    assert "weights_only=False" not in err and "will likely succeed" not in err
    assert not marker.exists() and not out.exists()
    fails(capsys, ["embed", path, "--checkpoint", path, "--out", tmp_path / "f"], "never loads those")
    assert not marker.exists()


def test_timm_blocks_lacking_weights_are_named(teacher_yaml, tmp_path, capsys):
    from act3d.models.pretrained import random_vit

    state = random_vit(32, 2, 2, True).state_dict()
    del state["blocks.1.mlp.fc1.weight"]
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in state.items() if not k.startswith("input_norm")}, path)
    out = tmp_path / "run"
    argv = train_teacher(teacher_yaml, path, out, "--set", "model.transformer.kind=timm")
    fails(capsys, argv + ["--set", "model.transformer.heads=2"], "lack weights", "blocks.1.mlp.fc1.weight")
    assert not out.exists()


def test_predict_refuses_a_dataset_with_more_classes_than_the_classifier(classifier, scan_root, capsys):
    argv = ["predict", "--checkpoint", classifier, "--format", "scanobjectnn", "--root", scan_root]
    fails(capsys, argv + ["--variant", "obj_bg"], "has 15 classes, the classifier 3")


def test_an_export_of_one_prompt_layer_is_not_imported_as_another(tmp_path, finetune_yaml, capsys):
    """IDPT's prompt_layer changes no weight's shape: the act3d export records it, and an import under
    another is refused (the weights would compute another network)."""
    peft = {"prompt_layer": 1, "neighbours": 4}
    classifier = classifier_checkpoint(tmp_path / "idpt.pt", "idpt", peft)
    assert main(["export-official", str(classifier), "--out", str(tmp_path / "idpt-official")]) == 0
    base = ["import-official", tmp_path / "idpt-official.safetensors", "--layout", "classifier"]
    base += ["--config", finetune_yaml, "--set", "transfer=idpt", "--set", "peft.neighbours=4"]
    out = tmp_path / "back.pt"
    fails(capsys, base + ["--set", "peft.prompt_layer=0", "--out", out], "peft.prompt_layer 1")
    assert not out.exists()
    assert main([str(a) for a in base + ["--set", "peft.prompt_layer=1", "--out", out]]) == 0
