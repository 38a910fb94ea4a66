"""One record per stage, one pooling function, errors of one class per cause, fit's history."""

import pytest
import torch

from act3d.cli import build_parser
from act3d.config import list_presets
from act3d.errors import ConfigError, InputError
from act3d.models import zoo
from act3d.models.kinds import MODELS, model_of
from act3d.models.layers import pool_tokens
from act3d.stages import STAGES, stage_training


def test_every_stage_record_is_what_the_cli_zoo_and_presets_use():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert zoo.KINDS == tuple(s.kind for s in STAGES) and MODELS == tuple(s.model for s in STAGES)
    for stage in STAGES:
        assert stage.command in commands
        assert stage.default_preset in list_presets(stage.name)
        assert stage.official_preset in list_presets(stage.name)
        assert stage.load_config(stage.official_preset).__class__ is stage.config
        assert model_of(stage.kind) == stage.model and stage_training(stage.model) is stage
    layouts = commands["import-official"]._option_string_actions["--layout"].choices
    assert list(layouts) == [s.model for s in STAGES]


def test_an_unknown_checkpoint_kind_is_refused():
    with pytest.raises(ValueError, match="unknown checkpoint kind"):
        model_of("act3d-nothing")


def test_the_two_pooling_rules():
    cls, patches = torch.randn(2, 4), torch.randn(2, 5, 4)
    torch.testing.assert_close(pool_tokens(patches, "cls+max", cls), torch.cat([cls, patches.amax(1)], -1))
    torch.testing.assert_close(
        pool_tokens(patches, "max+mean"), torch.cat([patches.amax(1), patches.mean(1)], -1)
    )
    with pytest.raises(ConfigError):
        pool_tokens(patches, "cls+max")
    with pytest.raises(ConfigError):
        pool_tokens(patches, "mean")  # type: ignore[arg-type]


def test_an_op_given_a_bad_cloud_fails_in_one_line_on_the_command_line():
    from act3d.ops import group_patches

    with pytest.raises(InputError, match="non-finite"):
        group_patches(torch.full((1, 64, 3), float("nan")), 4, 8)


def test_a_run_config_names_what_a_resume_may_change():
    from act3d.train.finetune import FinetuneRunConfig
    from act3d.train.run_folder import resumable
    from act3d.train.stage1 import TeacherRunConfig

    assert resumable("votes", FinetuneRunConfig) and not resumable("votes", TeacherRunConfig)
    assert resumable("optim.lr", TeacherRunConfig) and not resumable("patches.group_size", FinetuneRunConfig)


def test_metrics_history_reads_back_a_resumed_log(tmp_path):
    from act3d.train.metrics_log import MetricsLog

    log = MetricsLog(tmp_path, 0, True)
    log.add(5, {"loss": 0.1 + 0.2, "lr": 1e-3})
    log.add(10, {"val_acc": 0.5})
    again = MetricsLog(tmp_path, 10, True)
    assert (
        again.history()
        == log.history()
        == [{"step": 5, "loss": 0.1 + 0.2, "lr": 1e-3}, {"step": 10, "val_acc": 0.5}]
    )
