"""Errors that reach the user: the CLI prints their message without a traceback."""


class Act3dError(Exception):
    """Base class of act3d's user-facing errors."""


class ConfigError(Act3dError, ValueError):
    """A configuration key is unknown, missing or of the wrong type."""


class DataError(Act3dError, ValueError):
    """A dataset or file is missing, truncated, malformed or holds bad values."""


class CheckpointError(Act3dError, ValueError):
    """A checkpoint or weight file is missing, corrupt, or belongs to another model."""
