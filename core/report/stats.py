"""Statistics of a comparison grid: intervals over seeds and tests against the best variant.

Method (stated in every report): the 95% interval of a cell is Student's t over its seeds,
``mean +- t(0.975, n-1) * sd / sqrt(n)``; a variant differs from its task's best when a two-sided
t-test over seeds gives ``p < 0.05``, paired by seed when the two variants share at least two seeds
(same seed = same split, data order and initialisation draw), Welch's otherwise. With n seeds per
cell the test has little power for small gaps: "no significant difference" is what it says, not
"equal".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats as st

__all__ = ["ALPHA", "METHOD", "CellStats", "cell_stats", "versus_best"]

ALPHA = 0.05
_TIE = 1e-12  # spreads below this are rounding, not variation
METHOD = ("95% interval: Student's t over seeds; significance: two-sided t-test over seeds against the task's "
          "best variant (paired by seed where both have >= 2 shared seeds, else Welch), p < 0.05")


@dataclass(frozen=True)
class CellStats:
    mean: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 4) -> str:
        if self.n < 2:
            return f"{self.mean:.{digits}f} (n=1)"
        return f"{self.mean:.{digits}f} ± {(self.high - self.low) / 2:.{digits}f} (n={self.n})"


def cell_stats(values: list[float], confidence: float = 0.95) -> CellStats:
    """Mean and t-interval of one cell's per-seed values (NaNs dropped; one value has no interval)."""
    vals = [float(v) for v in values if not math.isnan(float(v))]
    if not vals:
        return CellStats(math.nan, math.nan, math.nan, 0)
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return CellStats(mean, math.nan, math.nan, 1)
    half = float(st.t.ppf(0.5 + confidence / 2, len(vals) - 1)) * statistics.stdev(vals) / math.sqrt(len(vals))
    return CellStats(mean, mean - half, mean + half, len(vals))


def _p_value(a: dict[int, float], b: dict[int, float]) -> float:
    shared = sorted(set(a) & set(b))
    if len(shared) >= 2:
        diffs = [a[s] - b[s] for s in shared]
        if statistics.pstdev(diffs) <= _TIE * max(1.0, abs(diffs[0])):  # the same gap every seed: t is infinite
            return 1.0 if abs(diffs[0]) <= _TIE else 0.0  # (or 0/0 when there is no gap)
        return float(st.ttest_rel([a[s] for s in shared], [b[s] for s in shared]).pvalue)
    xa, xb = list(a.values()), list(b.values())
    if len(xa) < 2 or len(xb) < 2:
        return math.nan
    if max(statistics.pstdev(xa), statistics.pstdev(xb)) <= _TIE:
        return 1.0 if abs(xa[0] - xb[0]) <= _TIE else 0.0
    return float(st.ttest_ind(xa, xb, equal_var=False).pvalue)


def versus_best(cells: dict[str, dict[int, float]], higher_is_better: bool) -> tuple[str, dict[str, float]]:
    """The best variant (by mean) of one task, and each other variant's p-value against it.

    ``cells`` maps variant -> {seed: value}. A p-value is NaN where there are too few seeds to test.
    """
    means = {v: statistics.fmean(s.values()) for v, s in cells.items() if s}
    best = (max if higher_is_better else min)(means, key=means.get)
    return best, {v: _p_value(cells[best], cells[v]) for v in means if v != best}
