"""A resumable sequence of named runs (a teacher, a student, a probe, a fine-tuning seed): each runs once
into its own folder `OUT/<name>` and leaves its record in `OUT/done/<name>.json`; a re-run reads finished
runs back instead of running them again (the demo's main loop). The names come from `act3d.demo.arms`."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from act3d.atomic import write_text_atomic

log = logging.getLogger(__name__)


class Runs:
    """Runs each named run once: a finished one (its record in `OUT/done`) is read back instead of re-run."""

    def __init__(self, out: Path):
        self.out = out
        self.timings: dict[str, float] = {}
        self.reused: list[str] = []

    def record(self, name: str) -> Path:
        """The record a finished run leaves: `{"seconds": ..., "result": ...}`."""
        return self.out / "done" / f"{name}.json"

    def finished(self, name: str) -> bool:
        """Whether run `name` finished earlier (it is read back instead of run again)."""
        return self.record(name).is_file()

    def finished_count(self) -> int:
        return len(list((self.out / "done").glob("*.json")))

    def run(self, name: str, fn: Callable[[Path], dict]) -> dict:
        folder, done = self.out / name, self.record(name)
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
        done.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(done, json.dumps({"seconds": seconds, "result": result}, indent=2))
        self.timings[name] = seconds
        log.info("[done] %s in %.0fs", name, seconds)
        return result
