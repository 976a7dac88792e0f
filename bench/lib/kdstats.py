"""bench/lib/kdstats.py: the statistics every bench report uses, so that a scenario's own table
and bench/ab-report's summary agree. Percentiles are nearest-rank, as the C benches compute them
(bench/scale-pods, bench/scale-pods-vanilla): the smallest sample with at least p % of the samples
at or below it."""
import math


def pct(xs, p):
    """Nearest-rank p-th percentile of xs (any order); NaN for no samples."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(math.ceil(p / 100.0 * len(xs))) - 1))
    return xs[k]


def median(xs):
    """Median of the non-NaN values of xs; NaN for none."""
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return float("nan")
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2
