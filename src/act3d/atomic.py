"""Files written whole or not at all: written under a temporary name beside their place, then renamed over
it in one step, so a crash, a kill or a full disk never leaves half a file where a reader looks; and the one
lock that keeps two processes from writing the same place at once."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def names_a_folder(path: str | Path) -> bool:
    """Whether an output path the user gave can only mean a folder (`.`, `..`, a trailing separator, or a
    folder that exists), where a file name was expected."""
    text = str(path)
    return text.endswith(("/", os.sep)) or Path(text).name in ("", ".", "..") or Path(text).is_dir()


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


@contextlib.contextmanager
def exclusive_lock(path: Path, busy: Exception | None = None) -> Iterator[None]:
    """Hold an exclusive advisory lock (`flock`) on `path`, a folder or a lock file (made if missing), while
    the context lasts. The system drops it when the process ends, however it ends (kill -9 included), so a
    crash never blocks the next process. Another process's lock is waited for, or with `busy` that error is
    raised at once. Where the platform has no advisory locks (Windows), nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy is not None else 0))
        except BlockingIOError:
            raise busy from None
        yield
    finally:
        os.close(fd)  # releases the lock
