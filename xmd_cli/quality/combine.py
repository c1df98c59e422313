"""From raw quality signals to one score in [0, 1]: logistic squashing and a weighted product.

Each signal (an SNR in dB, a face size in pixels, a sharpness) is first mapped to
(0, 1) by a logistic around its mid-point:

    u = slope * (x - midpoint)                      (scale "linear")
    u = slope * log2(x / midpoint)                  (scale "log2": sizes, durations, ratios)
    s = 1 / (1 + exp(-u))

A positive slope means "more is better" (SNR, sharpness), a negative one "less is
better" (clipping, noise). Each squashed value reads as "how surely this aspect
of the sample is fine", and the score is their weighted product,

    q = prod_i s_i ** w_i = exp( sum_i w_i * ln(s_i) ),

a weighted geometric combination rather than an arithmetic mean, because a
sample is only as usable as its worst aspect: a sharp, well-lit face the size of
a thumbnail is still a bad target. With an arithmetic mean (or a geometric mean
normalised by the weight sum) one failed aspect among eight only lowers the
score to about 7/8 (or to its eighth root, 0.03 -> 0.65); with the product the
failed aspect's own value carries through (0.03 -> about 0.03). The product is
monotone in every signal, a weight of 0 removes a signal, a weight of 2 counts
it as two independent checks, an aspect that is fine (s near 1) costs almost
nothing, and it has the same form as the QAW combination q = qT^alpha * qS^beta.

A condition that makes a sample unusable outright (silence, an unreadable file,
empty text) does not go through the formula: the scorer returns score 0 with the
reason. A photo without a detected face gets the face scorer's fallback score
(or 0 with the fallback off), also with the reason.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from typing import Iterable, Literal

from xmd_cli.errors import XmdError

# A squashed value never reaches exactly 0 or 1 (logistic); this floor only keeps
# ln() finite when exp() underflows for an absurd input.
_FLOOR = 1e-12


@dataclass(frozen=True)
class Signal:
    """One named raw quality measurement and how it is squashed. Defaults live in the scorer modules."""

    name: str
    midpoint: float
    slope: float  # per unit (linear) or per octave (log2); negative: less is better
    weight: float
    unit: str
    description: str
    scale: Literal["linear", "log2"] = "linear"
    floor: float = 1e-6  # log2 scale: values below this are taken as this (a ratio of exactly 0)

    def squash(self, value: float) -> float:
        if not math.isfinite(value):
            return _FLOOR
        if self.scale == "log2":
            u = self.slope * math.log2(max(value, self.floor) / self.midpoint)
        else:
            u = self.slope * (value - self.midpoint)
        # Written so that exp() never overflows.
        s = 1.0 / (1.0 + math.exp(-u)) if u >= 0 else math.exp(u) / (1.0 + math.exp(u))
        return max(s, _FLOOR)


@dataclass(frozen=True)
class QualityResult:
    """`score` in [0, 1]; `signals` holds every raw signal of the scorer (NaN where not measured)."""

    score: float
    signals: dict[str, float] = field(default_factory=dict)
    # Why the signals were not measured: the score is 0, or a fallback's (the face scorer's image-stats
    # for a photo without a detected face). None for a measured sample.
    reason: str | None = None


def combine(values: dict[str, float], signals: Iterable[Signal]) -> float:
    """Weighted product of the squashed signals, prod s_i ** w_i; signals with weight 0 are left out."""
    log_sum = 0.0
    for signal in signals:
        if signal.weight > 0:
            log_sum += signal.weight * math.log(signal.squash(float(values[signal.name])))
    return math.exp(log_sum)


def _check_names(given: dict[str, float], valid: list[str], key: str, modality: str) -> None:
    for name in given:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            hint = f"did you mean '{key}.{close[0]}'? " if close else ""
            raise XmdError(f"{key}.{name}: unknown {modality} quality signal '{name}'; {hint}"
                           f"valid signals: {', '.join(valid)}")


def resolve(defaults: tuple[Signal, ...], weights: dict[str, float] | None,
            midpoints: dict[str, float] | None, *, key: str, modality: str) -> tuple[Signal, ...]:
    """The default signals with the recipe's weights and mid-points applied by name.

    `key` is the recipe path of the section, e.g. "quality.student", so that an
    error names the exact key (`quality.student.weights.snr_dbb`).
    """
    weights, midpoints = dict(weights or {}), dict(midpoints or {})
    valid = [s.name for s in defaults]
    _check_names(weights, valid, f"{key}.weights", modality)
    _check_names(midpoints, valid, f"{key}.midpoints", modality)
    out = []
    for signal in defaults:
        weight = float(weights.get(signal.name, signal.weight))
        midpoint = float(midpoints.get(signal.name, signal.midpoint))
        if not (math.isfinite(weight) and weight >= 0):
            raise XmdError(f"{key}.weights.{signal.name}: a weight must be a finite number >= 0, got {weight}")
        if not math.isfinite(midpoint) or (signal.scale == "log2" and midpoint <= 0):
            need = "> 0 (it is compared on a log scale)" if signal.scale == "log2" else "finite"
            raise XmdError(f"{key}.midpoints.{signal.name}: the mid-point must be {need}, got {midpoint}")
        out.append(replace(signal, weight=weight, midpoint=midpoint))
    if not any(s.weight > 0 for s in out):
        raise XmdError(f"{key}.weights: every {modality} signal has weight 0; give at least one a weight > 0")
    return tuple(out)


def describe(signals: Iterable[Signal]) -> str:
    """A Markdown table of signals with their constants, for docs and `--help` texts."""
    rows = ["| signal | unit | mid-point | slope | scale | weight | meaning |", "|---|---|---|---|---|---|---|"]
    for s in signals:
        rows.append(f"| `{s.name}` | {s.unit} | {s.midpoint:g} | {s.slope:g} | {s.scale} | {s.weight:g} | "
                    f"{s.description} |")
    return "\n".join(rows)


class Scorer:
    """Base of the per-modality scorers: `score(item)` and `score_batch(items)` -> `QualityResult`.

    A subclass lists its `DEFAULTS` signals and implements `measure(item)`, which
    returns the raw signals, or a `QualityResult` (from `failure`) when the item
    is unusable. Bad input never raises: it scores 0 with the reason.
    """

    modality = ""
    DEFAULTS: tuple[Signal, ...] = ()

    def __init__(self, weights: dict[str, float] | None = None, midpoints: dict[str, float] | None = None,
                 *, key: str = "quality"):
        self.signals = resolve(self.DEFAULTS, weights, midpoints, key=key, modality=self.modality)

    @property
    def signal_names(self) -> list[str]:
        return [s.name for s in self.signals]

    def measure(self, item) -> dict[str, float] | QualityResult:
        raise NotImplementedError

    def score(self, item) -> QualityResult:
        measured = self.measure(item)
        if isinstance(measured, QualityResult):
            return measured
        return self.result(measured)

    def score_batch(self, items: list) -> list[QualityResult]:
        return [self.score(item) for item in items]

    def result(self, values: dict[str, float]) -> QualityResult:
        values = {name: float(values[name]) for name in self.signal_names}
        return QualityResult(score=combine(values, self.signals), signals=values)

    def failure(self, reason: str, values: dict[str, float] | None = None) -> QualityResult:
        """Score 0: every signal is present, NaN where it was not measured."""
        values = values or {}
        return QualityResult(score=0.0, signals={n: float(values.get(n, math.nan)) for n in self.signal_names},
                             reason=reason)

    def load(self, item, loader):
        """`loader(item)`, or a failure result carrying the `XmdError` message when it cannot be read."""
        try:
            return loader(item)
        except XmdError as e:
            return self.failure(e.message)
