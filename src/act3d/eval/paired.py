"""Paired comparisons of two arms measured on the same units (seeds, few-shot folds).

Every arm of a comparison runs with the same seeds and the same few-shot episodes, so the right question is
not whether two arms' spreads overlap but whether the per-unit differences `a_i - b_i` are centred away
from zero. `paired_difference` gives their mean with a two-sided paired t interval (Student's t with
`n - 1` degrees of freedom over the `n` differences); `describe` says the same in words.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """The mean of `a - b` over `n` paired units and its confidence interval (`None` with one unit)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    confidence: float = CONFIDENCE

    @property
    def distinguishable(self) -> bool:
        """Whether the interval excludes zero (never with fewer than two units)."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return asdict(self) | {"distinguishable": self.distinguishable, "method": "paired t"}


def paired_difference(a: list[float], b: list[float], confidence: float = CONFIDENCE) -> PairedDifference:
    """Mean of `a[i] - b[i]` with its paired t interval; `a` and `b` hold one value per shared unit."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired values need the same, non-zero count of units; got {len(a)} and {len(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n, mean = len(diff), float(diff.mean())
    if n < 2:
        return PairedDifference(mean, None, None, n, confidence)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * diff.std(ddof=1) / math.sqrt(n))
    return PairedDifference(mean, mean - half, mean + half, n, confidence)


def describe(a: str, b: str, d: PairedDifference, unit: str, scale: float = 100.0) -> str:
    """One sentence: `"ACT - scratch: +3.1 points (95% CI -1.2 to +7.4 over 3 seeds), not
    distinguishable from zero"`; values are multiplied by `scale` (fractions to points)."""
    head = f"{a} − {b}: {d.mean * scale:+.1f} points"
    if d.low is None:
        return f"{head} (one {unit}: no interval)"
    span = f"{d.confidence:.0%} CI {d.low * scale:+.1f} to {d.high * scale:+.1f} over {d.n} {unit}s"
    if not d.distinguishable:
        return f"{head} ({span}), not distinguishable from zero"
    return f"{head} ({span}): {a} {'ahead' if d.mean > 0 else 'behind'}"
