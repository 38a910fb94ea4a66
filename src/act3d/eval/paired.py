"""Paired comparisons of two arms measured on the same units (seeds, few-shot folds).

Every arm of a comparison runs with the same seeds and the same few-shot episodes, so the right question is
not whether two arms' spreads overlap but whether the per-unit differences `a_i - b_i` are centred away
from zero. `paired_difference` gives their mean with a two-sided paired t interval (Student's t with
`n - 1` degrees of freedom over the `n` differences) and says the same in words.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """Arm `a` against arm `b` on one `measure`, paired by `unit` (seed, episode, test cloud): the mean of
    `a - b` over `n` shared units, its confidence interval (`None` with one unit) and the sentence that says
    so (`text`). The one type of a paired comparison, in the demo, the CLI's `--compare-to` and the sweep."""

    a: str
    b: str
    measure: str
    unit: str
    mean: float
    low: float | None
    high: float | None
    n: int
    confidence: float
    text: str

    @property
    def distinguishable(self) -> bool:
        """Whether the interval excludes zero (never with fewer than two units)."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return asdict(self) | {"distinguishable": self.distinguishable, "method": "paired t"}

    @staticmethod
    def from_dict(d: dict) -> PairedDifference:
        """A saved `to_dict` read back (its derived keys dropped)."""
        return PairedDifference(**{f.name: d[f.name] for f in fields(PairedDifference)})


def paired_difference(
    values_a: list[float],
    values_b: list[float],
    a: str = "a",
    b: str = "b",
    measure: str = "",
    unit: str = "unit",
    labels: tuple[str, str] | None = None,
    confidence: float = CONFIDENCE,
) -> PairedDifference:
    """Mean of `values_a[i] - values_b[i]` with its paired t interval; the lists hold one value per shared
    unit. `labels` name the arms in `text` where their display names differ from `a` and `b`."""
    if len(values_a) != len(values_b) or not values_a:
        raise ValueError(
            f"paired values need the same, non-zero count of units; got {len(values_a)} and {len(values_b)}"
        )
    diff = np.asarray(values_a, dtype=np.float64) - np.asarray(values_b, dtype=np.float64)
    n, mean = len(diff), float(diff.mean())
    low = high = None
    if n >= 2:
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * diff.std(ddof=1) / math.sqrt(n))
        low, high = mean - half, mean + half
    label_a, label_b = labels or (a, b)
    sentence = _sentence(label_a, label_b, mean, low, high, n, unit, confidence)
    text = f"{measure}: {sentence}" if measure else sentence
    return PairedDifference(a, b, measure, unit, mean, low, high, n, confidence, text)


def _sentence(
    a: str,
    b: str,
    mean: float,
    low: float | None,
    high: float | None,
    n: int,
    unit: str,
    confidence: float = CONFIDENCE,
    scale: float = 100.0,
) -> str:
    """The comparison in words: `"ACT - scratch: +3.1 points (95% CI -1.2 to +7.4 over 3 seeds), not
    distinguishable from zero"`; values are multiplied by `scale` (fractions to points)."""
    head = f"{a} − {b}: {mean * scale:+.1f} points"
    if low is None:
        return f"{head} (one {unit}: no interval)"
    span = f"{confidence:.0%} CI {low * scale:+.1f} to {high * scale:+.1f} over {n} {unit}s"
    if not (low > 0 or high < 0):
        return f"{head} ({span}), not distinguishable from zero"
    return f"{head} ({span}): {a} {'ahead' if mean > 0 else 'behind'}"
