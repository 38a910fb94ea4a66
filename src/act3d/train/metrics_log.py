"""What a run records while it trains: `metrics.csv` (and TensorBoard), filled from a window of steps whose
device-side values are read back to the host in one copy."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import torch

from act3d.atomic import atomic_file

Metric = float | torch.Tensor  # a number, or a 0-d tensor still on the device


class MetricsLog:
    """`metrics.csv` (rows kept across resumes, later rows dropped) and TensorBoard when installed."""

    def __init__(self, out_dir: Path, resume_step: int, enabled: bool):
        self.path = out_dir / "metrics.csv"
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self.writer = None
        if not enabled:
            return
        if self.path.is_file() and resume_step > 0:
            with self.path.open() as f:
                self.rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= resume_step]
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=resume_step or None)
        except ImportError:  # TensorBoard is optional
            self.writer = None

    def add(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.rows.append({"step": step, **values})
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        with atomic_file(self.path, newline="") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(self.rows)

    def history(self) -> list[dict[str, float]]:
        """Every row of `metrics.csv` as numbers, in step order (rows read back on resume hold strings;
        a column a row lacks is left out of it). Empty on ranks other than 0."""
        return [{k: float(v) for k, v in row.items() if v != ""} for row in self.rows]

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_window(window: list[tuple[int, dict[str, list[Metric]]]]) -> list[tuple[int, dict[str, float]]]:
    """The window's values as numbers, with one device-to-host copy: per step, each name's mean over
    its micro-batches (summed as `value / count`, the order of a per-step loop)."""
    tensors = [v for _, values in window for vs in values.values() for v in vs if isinstance(v, torch.Tensor)]
    on_host = iter(torch.stack([t.float().reshape(()) for t in tensors]).tolist() if tensors else [])
    rows = []
    for at, values in window:
        row = {}
        for k, vs in values.items():
            numbers = [next(on_host) if isinstance(v, torch.Tensor) else v for v in vs]
            row[k] = sum(x / len(numbers) for x in numbers)
        rows.append((at, row))
    return rows


class StepWindow:
    """The steps since the last log point, with their losses and metrics still on the device; `flush` reads
    them to the host in one copy (every `log_every` steps and before every checkpoint)."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.steps: list[tuple[int, dict[str, list[Metric]]]] = []
        self.start = time.perf_counter()

    def add(self, step: int, values: dict[str, list[Metric]]) -> None:
        self.steps.append((step, values))

    def flush(self) -> tuple[dict[str, float], float, tuple[int, float] | None]:
        """`(each name's mean over the window, samples per second, (step, loss) of the first non-finite
        loss or None)`; the window starts anew."""
        rows = read_window(self.steps)
        bad = next(((at, r["loss"]) for at, r in rows if not math.isfinite(r["loss"])), None)
        means = {k: sum(r[k] for _, r in rows) / len(rows) for k in rows[0][1]}
        per_s = len(rows) * self.batch_size / max(time.perf_counter() - self.start, 1e-9)
        self.steps, self.start = [], time.perf_counter()
        return means, per_s, bad
