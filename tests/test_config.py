from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from act3d.config import ConfigError, from_dict, load_config, save_config, to_dict


@dataclass
class Inner:
    lr: float = 1e-3
    name: Literal["adamw", "sgd"] = "adamw"


@dataclass
class Outer:
    steps: int = 10
    tags: list[str] = field(default_factory=list)
    path: str | None = None
    inner: Inner = field(default_factory=Inner)


def test_defaults_and_nested_values():
    cfg = from_dict(Outer, {"steps": 5, "inner": {"lr": 1}, "tags": ["a"]})
    assert cfg == Outer(steps=5, tags=["a"], inner=Inner(lr=1.0))
    assert isinstance(cfg.inner.lr, float)
    # YAML 1.1 (PyYAML) reads `1e-6` as a string; a float field takes it as the number it means
    assert from_dict(Inner, yaml.safe_load("lr: 1e-6")).lr == 1e-6


@pytest.mark.parametrize(
    "data,message",
    [
        ({"stepz": 5}, "unknown config key\\(s\\): stepz"),
        ({"inner": {"lrr": 1}}, "unknown config key\\(s\\): inner.lrr"),
        ({"steps": "5"}, "steps: expected an integer"),
        ({"steps": 2.5}, "steps: expected an integer"),
        ({"steps": True}, "steps: expected an integer"),
        ({"inner": {"lr": "fast"}}, "inner.lr: expected a number"),
        ({"inner": {"name": "adam"}}, "inner.name: expected one of"),
        ({"tags": "a"}, "tags: expected a list"),
        ({"tags": [1]}, "tags\\[0\\]: expected str"),
        ({"inner": 3}, "inner: expected a mapping"),
        ({"path": 3}, "path: expected str"),
    ],
)
def test_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, data)


def test_a_renamed_key_is_named_with_its_new_name(tmp_path):
    from act3d.train.stage2 import PretrainRunConfig

    with pytest.raises(ConfigError, match=r"unknown config key\(s\): patches \(patches is now patching\)$"):
        from_dict(PretrainRunConfig, {"patches": {"num_groups": 8}})
    with pytest.raises(ConfigError, match=r"runtime.amp \(amp is now precision\)$"):
        from_dict(PretrainRunConfig, {"runtime": {"amp": "bf16"}})


def test_file_and_overrides_and_roundtrip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"steps": 7, "inner": {"name": "sgd"}}))
    cfg = load_config(Outer, "outer", file=path, overrides=["inner.lr=0.5", "path=/x"])
    assert cfg == Outer(steps=7, path="/x", inner=Inner(lr=0.5, name="sgd"))
    save_config(cfg, tmp_path / "resolved.yaml")
    assert from_dict(Outer, yaml.safe_load((tmp_path / "resolved.yaml").read_text())) == cfg
    assert to_dict(cfg)["inner"] == {"lr": 0.5, "name": "sgd"}


def test_missing_file_and_unknown_preset(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Outer, "outer", file=tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown outer preset 'nope'"):
        load_config(Outer, "outer", preset="nope")
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        load_config(Outer, "outer", overrides=["steps"])


def test_a_preset_or_file_can_build_on_a_base_preset(tmp_path):
    """`base:` names a preset of the same kind; the file holds only what differs (the ScanObjectNN grid)."""
    from act3d.config import load_config, to_dict
    from act3d.errors import ConfigError
    from act3d.train.finetune import FinetuneRunConfig

    pb = load_config(FinetuneRunConfig, "finetune", "scanobjectnn_pb_t50_rs")
    linear = load_config(FinetuneRunConfig, "finetune", "scanobjectnn_obj_bg_linear")
    assert (linear.data.variant, linear.transfer, linear.optim.lr) == ("obj_bg", "linear", 1e-3)
    assert pb.optim.lr == 5e-4 and to_dict(linear.patching) == to_dict(pb.patching)
    mine = tmp_path / "mine.yaml"
    mine.write_text("base: scanobjectnn_obj_bg\noptim: {epochs: 10}\n")
    cfg = load_config(FinetuneRunConfig, "finetune", None, mine)
    assert cfg.optim.epochs == 10 and cfg.data.variant == "obj_bg" and cfg.sampling == "fps"
    mine.write_text("base: no_such_preset\n")
    with pytest.raises(ConfigError, match="unknown finetune preset 'no_such_preset'"):
        load_config(FinetuneRunConfig, "finetune", None, mine)


def test_training_and_inference_name_float32_alike():
    """`runtime.precision` takes inference's words (float32 | bf16 | fp16); `none`, the earlier word, reads as
    float32, so run folders and configs written before keep working."""
    from act3d.config import from_dict
    from act3d.train.options import RuntimeConfig

    assert RuntimeConfig().precision == "float32"
    assert from_dict(RuntimeConfig, {"precision": "none"}).precision == "float32"
    with pytest.raises(ConfigError, match="precision"):
        from_dict(RuntimeConfig, {"precision": "auto"})
