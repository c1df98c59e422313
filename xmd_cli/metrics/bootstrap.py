"""What every bootstrap here shares: the resample draw, percentile intervals and paired verdicts.

Two bootstraps build on this module, each resampling what is random in its test:
  bootstrap_verification  the identity bootstrap of EER and minDCF (identities, not trials)
  bootstrap_accuracy      the class-stratified bootstrap of classification accuracy (samples)

Paired comparisons apply the same resampled identities (or samples) to every
run on the same trial list and take the percentile interval of the difference
(run - first run). Verdict: "better" when the whole interval lies on the good
side of 0 (below 0 for EER and minDCF, above for accuracy), "worse" when it lies
on the bad side, otherwise "not resolved": at this confidence the data cannot
tell the runs apart.
"""

from __future__ import annotations

import numpy as np

from xmd_cli.errors import XmdError

LOWER_IS_BETTER = ("eer", "min_dcf")  # metric name prefixes where a smaller value is better


def verdict(ci_low: float, ci_high: float, *, lower_is_better: bool) -> str:
    """"better", "worse" or "not resolved" for an interval of (run - reference).

    Examples
    --------
    >>> verdict(-0.02, -0.01, lower_is_better=True)
    'better'
    >>> verdict(-0.02, 0.01, lower_is_better=True)
    'not resolved'
    >>> verdict(0.0, 0.0, lower_is_better=False)
    'not resolved'
    """
    if ci_low > 0:
        return "worse" if lower_is_better else "better"
    if ci_high < 0:
        return "better" if lower_is_better else "worse"
    return "not resolved"


def is_lower_better(metric: str) -> bool:
    """Whether a smaller value of `metric` is better (EER, minDCF).

    Examples
    --------
    >>> is_lower_better("min_dcf@0.01"), is_lower_better("top1")
    (True, False)
    """
    return metric.startswith(LOWER_IS_BETTER)


def resample_counts(n_units: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples x n_units) int64: how often each unit is drawn in each resample.

    All draws come from one call, so they depend only on `seed`, `n_units` and
    `resamples` (never on how the work is split later).

    Examples
    --------
    >>> counts = resample_counts(5, 3, seed=0)
    >>> counts.shape, counts.sum(axis=1).tolist()
    ((3, 5), [5, 5, 5])
    """
    draws = np.random.default_rng(seed).integers(0, n_units, size=(resamples, n_units))
    offsets = np.arange(resamples)[:, None] * n_units
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n_units).reshape(resamples, n_units)


def percentile_interval(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    """The central `confidence` interval of the finite resampled values; (None, None) when there are none.

    Examples
    --------
    >>> percentile_interval(np.array([np.nan, 0.0, 1.0, 2.0, 3.0, 4.0]), 0.5)  # NaN (no value) is left out
    (1.0, 3.0)
    >>> percentile_interval(np.array([np.nan]), 0.95)
    (None, None)
    """
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def check_confidence(confidence: float, resamples: int) -> None:
    """An XmdError unless 0 < confidence < 1 and there is at least one resample.

    Examples
    --------
    >>> check_confidence(0.95, 1000)
    >>> check_confidence(95, 1000)
    Traceback (most recent call last):
    ...
    xmd_cli.errors.XmdError: confidence must be between 0 and 1, got 95
    """
    if not 0 < confidence < 1:
        raise XmdError(f"confidence must be between 0 and 1, got {confidence}")
    if resamples < 1:
        raise XmdError(f"a bootstrap needs at least 1 resample, got {resamples}")


def paired_difference(point: float, resampled: np.ndarray, confidence: float, lower_is_better: bool) -> dict:
    """{difference, ci_low, ci_high, verdict} from a point difference and its resampled values.

    Examples
    --------
    >>> result = paired_difference(-0.02, np.linspace(-0.03, -0.01, 101), 0.95, lower_is_better=True)
    >>> result["difference"], round(result["ci_low"], 4), round(result["ci_high"], 4), result["verdict"]
    (-0.02, -0.0295, -0.0105, 'better')
    """
    low, high = percentile_interval(resampled, confidence)
    judged = "not resolved" if low is None else verdict(low, high, lower_is_better=lower_is_better)
    return {"difference": float(point), "ci_low": low, "ci_high": high, "verdict": judged}
