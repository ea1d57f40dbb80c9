"""The arithmetic of the suite: medians, ranges, pairwise ratios, goals.

Pure functions of numbers, so that they can be tested on fixed values.

The ratio of a figure is the **median of the pairwise ratios**: in run *i*,
tp4emu's sample and its baseline's sample were taken back to back, so their
quotient cancels the drift of the machine (load, frequency) between runs;
the median of those quotients is reported, with their range. Runs where one
of the two samples is missing (it failed) are left out of the ratio.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Goal", "Summary", "change", "pairwise_ratios", "summarize"]


@dataclass(frozen=True, slots=True)
class Summary:
    """Median and range of some samples (all NaN when there are none)."""

    median: float
    min: float
    max: float
    n: int

    @property
    def empty(self) -> bool:
        """Whether there were no samples."""
        return self.n == 0


def summarize(values: Sequence[float | None]) -> Summary:
    """The median, minimum and maximum of *values* (None: a missing sample, skipped)."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return Summary(math.nan, math.nan, math.nan, 0)
    return Summary(statistics.median(present), min(present), max(present), len(present))


def pairwise_ratios(
    values: Sequence[float | None], baselines: Sequence[float | None]
) -> list[float]:
    """``values[i] / baselines[i]`` for every run *i* where both are there (and nonzero)."""
    out = []
    for value, base in zip(values, baselines, strict=True):
        if value is None or base is None or base == 0 or math.isnan(value) or math.isnan(base):
            continue
        out.append(value / base)
    return out


@dataclass(frozen=True, slots=True)
class Goal:
    """What a figure should reach, ``>=`` or ``<=`` a threshold.

    ``on``: ``"ratio"`` (the median pairwise ratio), ``"value"`` (the median
    value) or ``"max"`` (the largest value: every run must reach it).
    """

    op: Literal[">=", "<="]
    threshold: float
    on: Literal["ratio", "value", "max"] = "ratio"

    def holds(self, value: float, ratio: float) -> bool | None:
        """Whether the goal holds for *value* (the median, or the largest with
        ``on="max"``) and the median *ratio* (None: not measured)."""
        x = ratio if self.on == "ratio" else value
        if math.isnan(x):
            return None
        return x >= self.threshold if self.op == ">=" else x <= self.threshold

    def text(self, unit: str = "", baseline: str = "") -> str:
        """The goal as the table shows it: ``≥ 0.8x raw UDP``, ``≤ 2.5 KiB``."""
        sign = "≥" if self.op == ">=" else "≤"
        if self.on == "ratio":
            return f"{sign} {self.threshold:g}x {baseline}".rstrip()
        if self.on == "max":
            if self.op == "<=" and self.threshold == 0:
                return "0 in every run"
            return f"{sign} {self.threshold:g} {unit} in every run".replace("  ", " ")
        return f"{sign} {self.threshold:g} {unit}".rstrip()


def change(new: float, old: float) -> float:
    """The relative change from *old* to *new* (0.1: 10 % more; NaN when *old* is 0 or NaN)."""
    if old == 0 or math.isnan(old) or math.isnan(new):
        return math.nan
    return new / old - 1
