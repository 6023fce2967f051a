"""Family-wise error control: Holm's step-down adjustment of a family of p-values.

A report that makes many tests calls some difference "significant" by chance alone: 30
independent tests at 0.05 with no true difference anywhere give at least one false verdict with
probability 1 - 0.95^30 = 0.79. Holm (1979) keeps the chance of any false rejection in a family
at or under ``alpha`` whatever the tests' dependence, and rejects everything Bonferroni rejects
and more: sort the m p-values, multiply the i-th smallest (from 0) by ``m - i``, carry the
running maximum, cap at 1. A verdict is then "significant" when its *adjusted* p is below
``alpha``.

Tests that could not be made (NaN) are not members of the family: they neither count in ``m``
nor get an adjusted value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values, in the order given; NaN stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if not m:
        return adjusted
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = p[order] * (m - np.arange(m))
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted
