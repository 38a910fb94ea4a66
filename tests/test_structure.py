"""One record per stage, one pooling function, errors of one class per cause, fit's history; an import graph
without cycles and modules of at most 500 lines."""

from pathlib import Path

import pytest
import torch

import act3d
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
    assert resumable("optim.lr", TeacherRunConfig) and not resumable("patching.group_size", FinetuneRunConfig)


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


def _module_imports() -> dict[str, set[str]]:
    """act3d module -> the act3d modules it imports when it is imported (module-level statements only)."""
    import ast

    src = Path(act3d.__file__).parent
    names = {
        ".".join(p.relative_to(src.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in src.rglob("*.py")
    }
    graph = {}
    for name, path in names.items():
        edges = set()
        for node in ast.parse(path.read_text()).body:  # top level: imports inside functions run later
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("act3d"):
                # `from package import module` runs the package's own `__init__` too: an edge to both
                edges.add(node.module)
                edges |= {f"{node.module}.{a.name}" for a in node.names} & names.keys()
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("act3d.")}
        graph[name] = edges - {name}
    return graph


def test_the_import_graph_has_no_cycle():
    graph, done, path = _module_imports(), set(), []

    def visit(module: str) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module) :] + [module]))
        if module in done:
            return
        path.append(module)
        for other in sorted(graph.get(module, ())):
            visit(other)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_no_module_is_over_500_lines():
    src = Path(act3d.__file__).parent
    long = {p.relative_to(src): n for p in src.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long


def test_every_teacher_kind_has_one_route():
    from typing import get_args

    from act3d.models.pretrained import ROUTES, TransformerKind

    assert set(ROUTES) == set(get_args(TransformerKind))
