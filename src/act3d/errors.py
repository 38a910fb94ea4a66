"""Errors that reach the user: the CLI prints their message without a traceback."""


class Act3dError(Exception):
    """Base class of act3d's user-facing errors."""


class ConfigError(Act3dError, ValueError):
    """A configuration key is unknown, missing or of the wrong type."""


class DataError(Act3dError, ValueError):
    """A dataset or file is missing, truncated, malformed or holds bad values."""


class InputError(Act3dError, ValueError):
    """A tensor given to a point op or a model has the wrong type, shape or values (NaN, empty)."""


class CheckpointError(Act3dError, ValueError):
    """A checkpoint or weight file is missing, corrupt, or belongs to another model."""


def require(ok: bool, key: str, expected: str, value: object) -> None:
    """Raise `ConfigError` naming `key` unless `ok`: the domain checks in the config dataclasses'
    `__post_init__` (`act3d.config.from_dict` prefixes the section, e.g. `optim.lr`)."""
    if not ok:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")
