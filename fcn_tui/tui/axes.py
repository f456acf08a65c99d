"""Axis arithmetic for the Train view's charts: round ticks, a y range fitted to what is shown,
and the exponential moving average that smooths the batch-loss curve.

Plain functions on lists of floats (no plotext, no Textual), so they are cheap to test. Values
that are not finite (a diverged run's NaN or inf) are ignored everywhere: they cannot be drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

SQUASH_LIMIT = 3.0  # a curve that rises above the next highest by more than this many times the
# others' span is cut at that height: one diverged run must not flatten every other curve
PAD = 0.05  # fraction of the y span left free above and below, so no point sits on the frame


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def nice_step(span: float, max_ticks: int) -> float:
    """The smallest 1, 2 or 5 times a power of ten that cuts `span` into at most `max_ticks` steps."""
    raw = span / max(1, max_ticks)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for mantissa in (1, 2, 5, 10):
        if mantissa * magnitude >= raw * (1 - 1e-9):
            return mantissa * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def nice_ticks(lo: float, hi: float, max_ticks: int, integer: bool = False) -> list[float]:
    """Round tick positions inside [lo, hi] (`0 1 2 3`, `0.2 0.4 0.6`, never `0.2 1.2 2.1`)."""
    step = nice_step(hi - lo, max_ticks)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def readable_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """`nice_ticks`, with at least two ticks where the range allows: a short chart's one label
    (`1`) says no value of the curves."""
    for n in range(max_ticks, max_ticks + 8):
        ticks = nice_ticks(lo, hi, n)
        if len(ticks) >= 2:
            return ticks
    return ticks


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels with as many decimals as the step needs, and no more (`0.5 1 1.5` reads `0.5 1.0 1.5`)."""
    if len(ticks) < 2:
        return [f"{t:g}" for t in ticks]
    step = min(abs(b - a) for a, b in pairwise(ticks))
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    return [f"{t:.{decimals}f}" for t in ticks]


def log_ticks(lo: float, hi: float, max_ticks: int) -> list[float]:
    """Ticks for a log axis over [lo, hi] (real values > 0): 1-2-5 per decade, fewer or more to fit."""
    if lo <= 0 or hi <= 0:
        return []
    for mantissas in ((1, 2, 5), (1,), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for m in mantissas]
        ticks = [round(t, 12) for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
        if 2 <= len(ticks) <= max_ticks or mantissas[-1] == 9:
            if len(ticks) > max_ticks:  # a narrow range on a short chart: every other one
                ticks = ticks[:: math.ceil(len(ticks) / max_ticks)]
            return ticks
    return []  # pragma: no cover - the last candidate always returns


def fit_range(series: Sequence[Sequence[float]]) -> tuple[float, float] | None:
    """The y range that shows every curve in `series`, None when nothing is finite.

    The top is cut when one curve climbs far above the rest (see `SQUASH_LIMIT`): the other
    curves keep their height and the outlier leaves through the top of the frame."""
    ranges = [(min(v), max(v)) for v in (finite(s) for s in series) if v]
    if not ranges:
        return None
    lo = min(r[0] for r in ranges)
    tops = sorted(r[1] for r in ranges)
    hi = tops[-1]
    if len(tops) > 1 and tops[-2] > lo:
        hi = min(hi, tops[-2] + SQUASH_LIMIT * (tops[-2] - lo))
    if hi - lo < 1e-12:  # a flat curve: give it some room
        pad = abs(lo) * 0.05 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * PAD
    return lo - pad, hi + pad


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's weight (0 = raw, 0.99 = very smooth),
    debiased so the curve starts at the first value instead of climbing from zero."""
    if weight <= 0:
        return list(values)
    out, average, norm = [], 0.0, 0.0
    for value in values:
        if not math.isfinite(value):
            out.append(value)
            continue
        average = weight * average + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out.append(average / norm)
    return out


def thin(xs: Sequence[float], ys: Sequence[float], buckets: int) -> tuple[list[float], list[float]]:
    """At most about 2 x `buckets` points of a long curve: the lowest and highest of each run of
    neighbours, in their order. A terminal chart has a few columns per bucket, so it looks the
    same (spikes kept) while plotext, whose cost grows with the points, draws far fewer."""
    n = len(xs)
    if n <= 2 * buckets:
        return list(xs), list(ys)
    keep: list[int] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if lo >= hi:
            continue
        part = range(lo, hi)
        low = min(part, key=lambda i: ys[i] if math.isfinite(ys[i]) else math.inf)
        high = max(part, key=lambda i: ys[i] if math.isfinite(ys[i]) else -math.inf)
        keep.extend(sorted({low, high}))
    return [xs[i] for i in keep], [ys[i] for i in keep]
