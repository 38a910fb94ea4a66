"""A resumable sequence of named stages: each runs once into its own folder and leaves a `done.json`; a
re-run reads finished stages back instead of running them again (the demo's main loop)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from act3d.atomic import write_text_atomic

log = logging.getLogger(__name__)


class Stages:
    """Runs named stages once: a finished stage (its `done.json`) is read back instead of re-run."""

    def __init__(self, out: Path):
        self.out = out
        self.timings: dict[str, float] = {}
        self.reused: list[str] = []

    def finished(self, name: str) -> bool:
        """Whether stage `name` finished earlier (a run reads it back instead of running it)."""
        return (self.out / name / "done.json").is_file()

    def run(self, name: str, fn: Callable[[Path], dict]) -> dict:
        folder = self.out / name
        done = folder / "done.json"
        if self.finished(name):
            record = json.loads(done.read_text())
            self.timings[name] = record["seconds"]
            self.reused.append(name)
            log.info("[reuse] %s (finished earlier in %.0fs)", name, record["seconds"])
            return record["result"]
        log.info("[run] %s", name)
        start = time.perf_counter()
        result = fn(folder)
        seconds = time.perf_counter() - start
        write_text_atomic(done, json.dumps({"seconds": seconds, "result": result}, indent=2))
        self.timings[name] = seconds
        log.info("[done] %s in %.0fs", name, seconds)
        return result
