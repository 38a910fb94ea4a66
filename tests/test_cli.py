import json
from dataclasses import fields

import numpy as np
import pytest
import torch
from layouts import write_fewshot, write_scanobjectnn

from act3d.cli import main
from act3d.cli.summary import SvmSummary
from act3d.train.finetune import finetune
from act3d.train.stage1 import train_teacher
from act3d.train.stage2 import pretrain


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "data", "train-teacher", "pretrain", "finetune", "eval", "embed", "predict"):
        assert command in out


def test_data_check_summarises_and_reports_problems(tmp_path, capsys):
    root = write_scanobjectnn(tmp_path)
    assert (
        main(
            [
                "data",
                "check",
                str(root),
                "--format",
                "scanobjectnn",
                "--variant",
                "obj_only",
                "--split",
                "test",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == 6 and summary["classes"] == 15 and summary["points_max"] == 2048
    assert main(["data", "check", str(tmp_path / "nowhere"), "--format", "modelnet40"]) == 2
    assert (
        main(["data", "check", str(write_fewshot(tmp_path)), "--format", "modelnet40-fewshot", "--fold", "1"])
        == 0
    )


def test_data_show_renders_a_png(tmp_path):
    np.save(tmp_path / "c.npy", np.random.default_rng(0).normal(size=(500, 3)))
    assert main(["data", "show", str(tmp_path / "c.npy"), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def trained(teacher_cfg, pretrain_cfg, finetune_cfg, tmp_path):
    teacher_cfg.optim.max_steps = 1
    pretrain_cfg.teacher_checkpoint = str(train_teacher(teacher_cfg, tmp_path / "s1").checkpoint)
    pretrain_cfg.optim.max_steps = 2
    student = pretrain(pretrain_cfg, tmp_path / "s2").checkpoint
    finetune_cfg.checkpoint = str(student)
    finetune_cfg.optim.max_steps = 2
    finetune(finetune_cfg, tmp_path / "ft")
    return {
        "student": str(student),
        "classifier": str(tmp_path / "ft" / "checkpoints" / "last.pt"),
        "root": finetune_cfg.data.root,
    }


def test_eval_embed_predict(trained, tmp_path, capsys):
    common = [
        "--checkpoint",
        trained["student"],
        "--format",
        "scanobjectnn",
        "--root",
        trained["root"],
        "--variant",
        "obj_bg",
    ]
    assert main(["eval", "svm", *common, "--out", str(tmp_path / "svm")]) == 0
    summary = json.loads((tmp_path / "svm" / "summary.json").read_text())
    rows = summary["results"]
    assert summary["command"] == "eval svm" and {r["metric"] for r in rows} == {"oa", "macc"}
    assert list(summary) == [f.name for f in fields(SvmSummary)]  # the typed record, key for key
    assert all({"value", "split", "seed", "config_hash"} <= set(r) for r in rows)
    # the same checkpoint again, paired cloud by cloud with the first run: a difference of exactly zero
    again = ["eval", "svm", *common, "--out", str(tmp_path / "svm2"), "--compare-to", str(tmp_path / "svm")]
    assert main(again) == 0
    (paired,) = json.loads((tmp_path / "svm2" / "summary.json").read_text())["paired"]
    assert (paired["measure"], paired["unit"], paired["mean"]) == ("svm test OA", "fit", 0.0)
    assert paired["clouds"] == len(summary["paired_values"]["svm test OA"]["0"]) > 1
    other = [*common[:-1], "obj_only"]  # another variant: its clouds are not these
    refused = ["eval", "svm", *other, "--out", str(tmp_path / "svm3"), "--compare-to", str(tmp_path / "svm")]
    assert main(refused) == 2 and "differs in variant" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "fewshot",
                *common,
                "--way",
                "2",
                "--shot",
                "1",
                "--folds",
                "3",
                "--out",
                str(tmp_path / "fs"),
            ]
        )
        == 0
    )
    assert "2w1s" in json.loads((tmp_path / "fs" / "summary.json").read_text())["table"]
    np.save(tmp_path / "a.npy", np.random.default_rng(0).normal(size=(100, 3)))
    np.savetxt(tmp_path / "b.xyz", np.random.default_rng(1).normal(size=(50, 3)))
    assert (
        main(
            [
                "embed",
                str(tmp_path / "a.npy"),
                str(tmp_path / "b.xyz"),
                "--checkpoint",
                trained["student"],
                "--out",
                str(tmp_path / "e.npy"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "e.npy").shape == (2, 64)
    assert (
        main(["predict", str(tmp_path / "a.npy"), "--checkpoint", trained["classifier"], "--top-k", "3"]) == 0
    )
    assert capsys.readouterr().out.count("%") == 3
    # a student cannot predict classes; a missing file is named
    assert main(["predict", str(tmp_path / "a.npy"), "--checkpoint", trained["student"]]) == 2
    assert (
        main(
            [
                "embed",
                str(tmp_path / "none.ply"),
                "--checkpoint",
                trained["student"],
                "--out",
                str(tmp_path / "x.npy"),
            ]
        )
        == 2
    )


def test_api_embed_and_predict(trained):
    import act3d
    from act3d.errors import CheckpointError, DataError

    model = act3d.load_model(trained["classifier"])
    cloud = np.random.default_rng(0).normal(size=(300, 3))
    assert model.embed(cloud).shape == (1, 64)
    # every checkpoint embeds by the probe's rule (max + mean of the patch tokens) unless asked for the
    # head's input (cls token + max of the patch tokens)
    with torch.no_grad():
        patches = model.model.patching.group(model.prepare(cloud))
        tokens = model.model.encoder(patches.neighborhood, patches.center)
    probe = torch.cat([tokens[:, 1:].max(1).values, tokens[:, 1:].mean(1)], -1).numpy()
    head_input = torch.cat([tokens[:, 0], tokens[:, 1:].max(1).values], -1).numpy()
    np.testing.assert_array_equal(model.embed(cloud), probe)
    np.testing.assert_array_equal(model.embed(cloud, "cls+max"), head_input)
    with pytest.raises(DataError, match="pooling"):
        model.embed(cloud, "mean")
    pred = model.predict(cloud, k=2)[0]
    # the classifier's own softmax on the same prepared cloud, best first, named by class
    probs = torch.softmax(model.model(model.prepare(cloud)), -1)[0]
    best = probs.argsort(descending=True)[:2]
    assert pred.labels == [model.class_names[i] for i in best.tolist()]
    np.testing.assert_allclose(pred.probabilities, probs[best].tolist(), rtol=1e-5)
    everything = model.predict(cloud, k=len(model.class_names))[0]
    assert sum(everything.probabilities) == pytest.approx(1, abs=1e-5)
    with pytest.raises(DataError, match="NaN/inf"):
        model.embed(np.full((10, 3), np.nan))
    with pytest.raises(CheckpointError, match="not a fine-tuned classifier"):
        act3d.load_model(trained["student"]).predict(cloud)
