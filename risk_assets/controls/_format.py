"""Figures printed with enough digits to see why a gate decided as it did."""

from __future__ import annotations

import math

__all__ = ["compared"]


def compared(value: float, bound: float, *, digits: int = 3, most: int = 8) -> tuple[str, str]:
    """``value`` and ``bound`` as text, with ``digits`` decimals, or more (up to ``most``)
    until two different numbers print differently: never "0.800 < 0.800"."""
    for d in range(digits, most + 1):
        a, b = f"{value:.{d}f}", f"{bound:.{d}f}"
        if a != b or value == bound or not (math.isfinite(value) and math.isfinite(bound)):
            return a, b
    return f"{value!r}", f"{bound!r}"
