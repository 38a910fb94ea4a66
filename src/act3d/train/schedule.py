"""Learning-rate and annealing schedules, as pure functions of the step."""

from __future__ import annotations

import math


def cosine_with_warmup(step: int, total: int, warmup: int, base: float, final: float = 1e-6) -> float:
    """Linear warm-up to `base` over `warmup` steps, then cosine decay to `final` at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + 0.5 * (base - final) * (1 + math.cos(math.pi * progress))


def cosine_anneal(step: int, steps: int, start: float, end: float) -> float:
    """From `start` at step 0 to `end` at `steps` along a half cosine, then held (Gumbel tau, KL weight)."""
    progress = min(1.0, step / max(1, steps))
    return end + 0.5 * (start - end) * (1 + math.cos(math.pi * progress))
