"""act3d's cache folder (the embedded default data, the shipped teacher converted once) and the lock under
which one process builds an entry."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from act3d.atomic import exclusive_lock


def cache_root() -> Path:
    """`$ACT3D_CACHE`, else `$XDG_CACHE_HOME/act3d`, else `~/.cache/act3d`."""
    if "ACT3D_CACHE" in os.environ:
        return Path(os.environ["ACT3D_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "act3d"


@contextlib.contextmanager
def cache_lock(entry: Path) -> Iterator[None]:
    """One process at a time builds a cache entry (every rank of a node under torchrun, two demos at once):
    the others wait here and then find it built. An `flock` on `<entry>.lock`, which the system releases
    when the builder ends, however it ends; entries are published by a rename, so a crash leaves none."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(entry.with_name(entry.name + ".lock")):
        yield
