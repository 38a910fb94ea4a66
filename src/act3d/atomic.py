"""Files written whole or not at all: written under a temporary name beside their place, then renamed over
it in one step, so a crash, a kill or a full disk never leaves half a file where a reader looks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def temporary_name(path: Path) -> Path:
    """Where `path` is written before the rename: `.NAME.tmpPID` beside it (hidden, one per process)."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "w", fsync: bool = False, **open_args: Any) -> Iterator[IO]:
    """Open a temporary file beside `path`; when the block ends without error it replaces `path`, otherwise
    it is removed. `fsync`: flush it to the disk before the rename (checkpoints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, mode, **open_args) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left over when the write failed


def write_text_atomic(path: str | Path, text: str) -> None:
    """`path.write_text(text)`, whole or not at all."""
    with atomic_file(path) as f:
        f.write(text)
