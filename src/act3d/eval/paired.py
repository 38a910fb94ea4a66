"""Paired comparisons of two arms measured on the same units (seeds, few-shot episodes, test clouds).

Every arm of a comparison runs with the same seeds and the same few-shot episodes and is scored on the same
clouds, so the right question is not whether two arms' spreads overlap but whether their paired differences
are centred away from zero.

- An accuracy is made of per-cloud outcomes within each seed (or episode). `paired_bootstrap` resamples
  what it is made of, the seeds and, within each drawn seed, its clouds (the same clouds for both arms), and
  gives the percentile interval of the mean difference: as wide as the clouds and seeds make it, so three
  seeds that each differ by one cloud do not exclude zero (a t interval over the three equal per-seed
  differences would have zero width).
- A measure with one value per unit and nothing beneath it (a segmentation mIoU per seed) gets
  `paired_difference`: the mean of `a_i - b_i` with a two-sided paired Student-t interval (`n - 1` degrees
  of freedom).

Both say the result in words (`PairedDifference.text`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 4000


@dataclass(frozen=True)
class PairedDifference:
    """Arm `a` against arm `b` on one `measure`, paired by `unit` (seed, episode, SVM fit): the mean of
    `a - b` over `n` shared units (and the `clouds` beneath them), its confidence interval (`None` where
    nothing can be resampled: one unit of single values, or one cloud) and the sentence that says so
    (`text`). The one type of a paired comparison, in the demo, the CLI's `--compare-to` and the sweep."""

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
    method: str = "paired t"  # or "paired bootstrap"
    clouds: int = 0  # paired clouds beneath the n units (bootstrap), 0 where each unit is one value

    @property
    def distinguishable(self) -> bool:
        """Whether the interval excludes zero (never without an interval)."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return asdict(self) | {"distinguishable": self.distinguishable}

    @staticmethod
    def from_dict(d: dict) -> PairedDifference:
        """A saved `to_dict` read back (its derived key dropped)."""
        return PairedDifference(**{f.name: d[f.name] for f in fields(PairedDifference) if f.name in d})


def _require_pairs(a: list, b: list, what: str, count: str, where: str = "") -> None:
    """Two arms' `what` (values, outcomes) must come in the same, non-zero number of `count` (units,
    clouds)."""
    if len(a) != len(b) or not a:
        raise ValueError(
            f"{where}paired {what} need the same, non-zero count of {count}; got {len(a)} and {len(b)}"
        )


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
    _require_pairs(values_a, values_b, "values", "units")
    diff = np.asarray(values_a, dtype=np.float64) - np.asarray(values_b, dtype=np.float64)
    n, mean = len(diff), float(diff.mean())
    low = high = None
    if n >= 2:
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * diff.std(ddof=1) / math.sqrt(n))
        low, high = mean - half, mean + half
    return _named(a, b, measure, unit, labels, mean, low, high, n, confidence, f"{n} {unit}s")


def paired_bootstrap(
    outcomes_a: list[list[float]],
    outcomes_b: list[list[float]],
    a: str = "a",
    b: str = "b",
    measure: str = "",
    unit: str = "seed",
    labels: tuple[str, str] | None = None,
    confidence: float = CONFIDENCE,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
    scale: float | None = 100.0,
    lower_is_better: bool = False,
) -> PairedDifference:
    """The mean over units (seeds, episodes) of each unit's mean per-cloud difference `a - b`, with a two-level
    paired bootstrap percentile interval. `outcomes_a[u]` and `outcomes_b[u]` hold unit u's per-cloud outcomes
    (0/1 correctness) on the same clouds in the same order. Each of `samples` replicates draws `n` units with
    replacement and, within each drawn unit, its clouds with replacement; the interval is the replicates'
    central `confidence` range. Seeded: the same inputs give the same interval, bit for bit. The sentence
    shows accuracies in points (`scale` 100), other values as they are (`scale` None, e.g. an mCE), and says
    who is ahead by `lower_is_better`."""
    _require_pairs(outcomes_a, outcomes_b, "outcomes", "units")
    diffs = []
    for u, (ua, ub) in enumerate(zip(outcomes_a, outcomes_b)):
        _require_pairs(ua, ub, "outcomes", "clouds", f"unit {u}: ")
        diffs.append(np.asarray(ua, dtype=np.float64) - np.asarray(ub, dtype=np.float64))
    n, clouds = len(diffs), sum(len(d) for d in diffs)
    mean = float(np.mean([d.mean() for d in diffs]))
    low = high = None
    if clouds >= 2:
        rng = np.random.default_rng(seed)
        drawn = rng.integers(n, size=(samples, n))  # the units of every replicate
        unit_means = np.empty((samples, n))
        for u, d in enumerate(diffs):  # every draw of unit u resamples its clouds anew
            where = drawn == u
            counts = rng.multinomial(len(d), np.full(len(d), 1 / len(d)), size=int(where.sum()))
            unit_means[where] = counts @ d / len(d)
        replicates = unit_means.mean(axis=1)
        low, high = (float(q) for q in np.quantile(replicates, [(1 - confidence) / 2, (1 + confidence) / 2]))
    over = f"{n} {unit}s × {clouds // n} clouds" if clouds % n == 0 else f"{n} {unit}s, {clouds} clouds"
    return _named(
        a, b, measure, unit, labels, mean, low, high, n, confidence, over, "paired bootstrap", clouds, scale,
        lower_is_better,
    )  # fmt: skip


def _named(
    a: str,
    b: str,
    measure: str,
    unit: str,
    labels: tuple[str, str] | None,
    mean: float,
    low: float | None,
    high: float | None,
    n: int,
    confidence: float,
    over: str,
    method: str = "paired t",
    clouds: int = 0,
    scale: float | None = 100.0,
    lower_is_better: bool = False,
) -> PairedDifference:
    """The `PairedDifference` of a computed mean and interval, with its sentence (`over`: what it spans)."""
    label_a, label_b = labels or (a, b)
    sentence = _sentence(label_a, label_b, mean, low, high, over, unit, confidence, scale, lower_is_better)
    text = f"{measure}: {sentence}" if measure else sentence
    return PairedDifference(a, b, measure, unit, mean, low, high, n, confidence, text, method, clouds)


def _sentence(
    a: str,
    b: str,
    mean: float,
    low: float | None,
    high: float | None,
    over: str,
    unit: str,
    confidence: float = CONFIDENCE,
    scale: float | None = 100.0,
    lower_is_better: bool = False,
) -> str:
    """The comparison in words: `"ACT - scratch: +3.1 points (95% CI -1.2 to +7.4 over 3 seeds), not
    distinguishable from zero"`; values are multiplied by `scale` (fractions to points), or shown as they
    are with `scale` None; `lower_is_better` (an error) puts `a` ahead when the difference is negative."""

    def shown(v: float) -> str:
        return f"{v * scale:+.1f}" if scale else f"{v:+.3f}"

    head = f"{a} − {b}: {shown(mean)}{' points' if scale else ''}"
    if low is None:
        return f"{head} (one {unit}: no interval)"
    span = f"{confidence:.0%} CI {shown(low)} to {shown(high)} over {over}"
    if not (low > 0 or high < 0):
        return f"{head} ({span}), not distinguishable from zero"
    ahead = mean < 0 if lower_is_better else mean > 0
    return f"{head} ({span}): {a} {'ahead' if ahead else 'behind'}"
