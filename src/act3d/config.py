"""Typed configuration: plain dataclasses, loaded from YAML presets with strict checking.

An unknown key or a value of the wrong type raises `ConfigError` naming the dotted key; nothing is
ever silently `None`. Every run writes its fully resolved config next to its outputs.
"""

from __future__ import annotations

import dataclasses
import re
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from act3d.errors import ConfigError

T = TypeVar("T")
PRESET_DIR = Path(__file__).parent / "presets"
# config keys that were renamed: old -> new, named in the error a config with the old key gets
RENAMED = {"patches": "patching", "amp": "precision"}
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class RawValue(str):
    """A value typed on the command line (`--set key=value`), parsed by the type of the field it sets:
    verbatim for text fields (paths stay paths: `runs/exp #1/last.pt`, `2024`), as YAML otherwise."""


def _accepts_text(hint: Any) -> bool:
    if hint is str:
        return True
    if get_origin(hint) is Literal:
        return all(isinstance(a, str) for a in get_args(hint))
    if get_origin(hint) in (Union, types.UnionType):
        return any(_accepts_text(a) for a in get_args(hint) if a is not type(None))
    return False


def _parse_raw(value: RawValue, hint: Any, key: str) -> Any:
    text = str(value)
    if _accepts_text(hint):
        allows_none = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
        return None if allows_none and text in ("null", "~", "None") else text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        problem = str(getattr(err, "problem", None) or err).splitlines()[0]
        raise ConfigError(f"{key}: cannot read {text!r} as a value ({problem})") from None
    except RecursionError:  # PyYAML parses nested collections recursively
        raise ConfigError(f"{key}: the value is nested too deeply to be a config value") from None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = get_origin(hint)
    if isinstance(value, RawValue):
        value = _parse_raw(value, hint, key)
    if hint is Any:
        return value
    if origin is Literal:
        if value not in get_args(hint):
            raise ConfigError(f"{key}: expected one of {list(get_args(hint))}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {options}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        args = get_args(hint)
        item_hint = args[0] if args else Any
        items = [_coerce(v, item_hint, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    if hint is float:
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):  # YAML 1.1 reads `1e-6` as a string
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise ConfigError(f"{key}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {hint}")


def from_dict(cls: type[T], data: Any, prefix: str = "") -> T:
    """Build dataclass `cls` from a nested dict, checking every key and type.

    Keys left out keep the dataclass defaults.
    """
    where = prefix or cls.__name__
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        dotted = ", ".join(f"{prefix + '.' if prefix else ''}{k}" for k in unknown)
        renamed = [f"{k} is now {RENAMED[k]}" for k in unknown if RENAMED.get(k) in names]
        raise ConfigError(
            f"unknown config key(s): {dotted} ({'; '.join(renamed) or 'known: ' + ', '.join(sorted(names))})"
        )
    kwargs = {k: _coerce(v, hints[k], f"{prefix + '.' if prefix else ''}{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # a field without default was left out
        raise ConfigError(f"{where}: {err}") from None
    except ConfigError as err:  # a domain check of __post_init__: give the field its full dotted name
        raise ConfigError(f"{prefix}.{err}" if prefix else str(err)) from None


def to_dict(config: Any) -> dict[str, Any]:
    """The plain, YAML-ready dict of a dataclass config."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def parse_override(text: str) -> tuple[list[str], RawValue]:
    """`"optim.lr=1e-3"` -> `(["optim", "lr"], RawValue("1e-3"))`: the value is read by its field's type."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), RawValue(raw.strip())


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides to a nested dict (checked later by `from_dict`)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
            node = child
        node[path[-1]] = value
    return data


def list_presets(family: str) -> list[str]:
    """Names of the shipped presets of a family: a stage name (`teacher`, `pretrain`, ...; act3d.stages)."""
    return sorted(p.stem.split(".", 1)[1] for p in PRESET_DIR.glob(f"{family}.*.yaml"))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with the file named in any error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected a YAML config)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: " + " ".join(str(err).split())) from None
    except RecursionError:  # PyYAML parses nested collections recursively
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(
    cls: type[T],
    family: str,
    preset: str | None = None,
    file: str | Path | None = None,
    overrides: list[str] = (),
) -> T:
    """Resolve a config: dataclass defaults <- preset <- file <- `key=value` overrides. A preset or file
    may name a preset of the same family as its `base:`; it then holds only what differs from that."""
    data: dict[str, Any] = {}
    if preset is not None:
        data = _merge(data, _with_base(family, _preset_path(family, preset)))
    if file is not None:
        data = _merge(data, _with_base(family, Path(file)))
    data = apply_overrides(data, list(overrides))
    return from_dict(cls, data)


def _preset_path(family: str, name: str) -> Path:
    """The file of preset `name` of `family`, named as the CLI takes it (`cpu`) or as its file (`detect.cpu`)."""
    path = PRESET_DIR / f"{family}.{name.removeprefix(family + '.')}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {family} preset {name!r}; available: {', '.join(list_presets(family))}")
    return path


def _with_base(family: str, path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping merged over the preset its `base:` key names (recursively)."""
    if path in seen:
        raise ConfigError(f"{path}: its base presets form a cycle ({' -> '.join(p.name for p in seen)})")
    data = load_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected the name of a {family} preset, got {base!r}")
    return _merge(_with_base(family, _preset_path(family, base), (*seen, path)), data)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


__all__ = [
    "ConfigError",
    "RawValue",
    "apply_overrides",
    "from_dict",
    "list_presets",
    "load_config",
    "load_yaml",
    "save_config",
    "to_dict",
]
