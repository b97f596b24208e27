"""Tool (no I/O): a quantile of a histogram's buckets, as Prometheus' histogram_quantile
computes it."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

_FEWEST_BUCKETS = 2  # a finite one and +Inf


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The `q`-quantile (0 < q ≤ 1) of cumulative bucket counts (upper bound → count, the +Inf
    bucket included), interpolated linearly within its bucket; a quantile in the +Inf bucket is
    the highest finite bound, as that bucket has no width to interpolate in. None without
    observations or without a +Inf bucket."""
    bounds = sorted(buckets)
    if len(bounds) < _FEWEST_BUCKETS or bounds[-1] != math.inf:
        return None
    # Forced monotonic, as Prometheus does: rates summed over workers can wobble.
    counts = list(itertools.accumulate((buckets[bound] for bound in bounds), max))
    if counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    found = next((i for i, count in enumerate(counts[:-1]) if count >= rank), len(counts) - 1)
    if found == len(counts) - 1:
        return bounds[-2]
    if found == 0 and bounds[0] <= 0:
        return bounds[0]
    start, below = (bounds[found - 1], counts[found - 1]) if found else (0.0, 0.0)
    return start + (bounds[found] - start) * (rank - below) / (counts[found] - below)
