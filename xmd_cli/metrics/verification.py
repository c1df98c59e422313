"""Verification metrics from one sort: EER, minDCF (normalised and raw), DET points.

Conventions (the same as speechbrain's `EER`/`minDCF` and an sklearn ROC):
- A trial is accepted when its score is strictly greater than the threshold.
- The operating points are "accept everything" plus, for every distinct score u
  in ascending order, "accept scores > u". Thresholds between two equal scores
  do not exist, so tied scores always move together: no tie is split by the order
  the sort happened to leave them in.
- P_miss(u) = #targets with score <= u / #targets,
  P_fa(u) = #non-targets with score > u / #non-targets.
- EER: at the operating point where |P_fa - P_miss| is smallest, (P_fa + P_miss)/2.
  P_fa - P_miss strictly decreases along the points, so at most two points tie;
  the one with the lower threshold (P_fa >= P_miss) wins, as in speechbrain.
- minDCF(p) = min over points of C_miss*P_miss*p + C_fa*P_fa*(1-p) (the "raw" value,
  speechbrain's), divided by min(C_miss*p, C_fa*(1-p)) for the normalised value
  (NIST SRE, Kaldi, WeSpeaker): 1.0 is the cost of always deciding by the prior alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xmd_cli.errors import XmdError


@dataclass(frozen=True)
class OperatingPoints:
    """Every operating point of a score set, in ascending threshold order.

    Examples
    --------
    >>> points = operating_points([0.1, 0.2, 0.2, 0.9], [0, 1, 0, 1])
    >>> points.thresholds.tolist(), points.p_miss.tolist(), points.p_fa.tolist()
    ([-inf, 0.1, 0.2, 0.9], [0.0, 0.0, 0.5, 1.0], [1.0, 0.5, 0.0, 0.0])
    """

    thresholds: np.ndarray  # accept scores > threshold; the first is -inf (accept all)
    p_miss: np.ndarray  # non-decreasing, from 0 to 1
    p_fa: np.ndarray  # non-increasing, from 1 to 0
    n_target: int | float  # a float only for weighted (bootstrap) points
    n_nontarget: int | float


def check_scores(scores, labels, *, source: str = "scores") -> tuple[np.ndarray, np.ndarray]:
    """Scores as float64 and labels as bool, or an XmdError saying what is wrong with `source`.

    Examples
    --------
    >>> scores, labels = check_scores([1, 0.5], [1, 0])
    >>> scores.dtype.name, labels.tolist()
    ('float64', [True, False])
    >>> check_scores([0.3, 0.4], [1, 1], source="demo.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xmd_cli.errors.XmdError: demo.txt: all 2 trials are target trials; EER and minDCF need both ...
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if scores.shape != labels.shape:
        raise XmdError(f"{source}: {scores.size} scores but {labels.size} labels")
    if scores.size == 0:
        raise XmdError(f"{source}: no trials to score", hint="the trial list or score file is empty")
    if labels.dtype != bool:
        if not np.isin(labels, (0, 1)).all():
            raise XmdError(f"{source}: labels must be 1 (target) or 0 (non-target)")
        labels = labels.astype(bool)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise XmdError(f"{source}: {int(bad.sum())} score(s) are NaN or infinite "
                       f"(first at trial {int(np.argmax(bad)) + 1})",
                       hint="a NaN score usually means a zero-length embedding")
    n_target = int(labels.sum())
    if n_target == 0 or n_target == labels.size:
        kind = "non-target" if n_target == 0 else "target"
        raise XmdError(f"{source}: all {labels.size} trials are {kind} trials; EER and minDCF "
                       "need both target (1) and non-target (0) trials",
                       hint="check the label column of the trial list")
    return scores, labels


def operating_points(scores, labels, *, source: str = "scores") -> OperatingPoints:
    """P_miss and P_fa at every distinct threshold, from one sort of the scores.

    Examples
    --------
    Tied scores share one operating point (here the two 0.2 scores):

    >>> points = operating_points([0.9, 0.2, 0.1, 0.2], [1, 1, 0, 0])
    >>> points.thresholds.tolist(), points.n_target, points.n_nontarget
    ([-inf, 0.1, 0.2, 0.9], 2, 2)
    """
    scores, labels = check_scores(scores, labels, source=source)
    # Order within a run of equal scores does not matter: runs are taken whole.
    order = np.argsort(scores)
    return points_from_sorted(scores[order], labels[order])


def points_from_sorted(sorted_scores: np.ndarray, sorted_labels: np.ndarray,
                       weights: np.ndarray | None = None) -> OperatingPoints:
    """Operating points of scores already in ascending order, each trial counted `weights` times.

    Weights let a bootstrap resample reuse one sort: a resample only changes how
    often each trial counts. n_target/n_nontarget are then the weighted totals.

    Examples
    --------
    >>> scores, labels = np.array([0.1, 0.2, 0.3]), np.array([False, True, True])
    >>> points_from_sorted(scores, labels).p_miss.tolist()
    [0.0, 0.0, 0.5, 1.0]
    >>> weighted = points_from_sorted(scores, labels, weights=np.array([1, 3, 1]))
    >>> weighted.p_miss.tolist(), weighted.n_target
    ([0.0, 0.0, 0.75, 1.0], 4)
    """
    if weights is None:
        targets_below = np.cumsum(sorted_labels, dtype=np.int64)
        trials_below = np.arange(1, sorted_scores.size + 1)
    else:
        targets_below = np.cumsum(np.where(sorted_labels, weights, 0))
        trials_below = np.cumsum(weights)
    # Last index of each run of equal scores: a threshold there rejects the whole run.
    ends = np.flatnonzero(np.diff(sorted_scores) != 0)
    ends = np.append(ends, sorted_scores.size - 1)
    n_target = targets_below[-1]
    n_nontarget = trials_below[-1] - n_target
    misses = np.concatenate(([0], targets_below[ends]))
    rejected_nontargets = np.concatenate(([0], trials_below[ends] - targets_below[ends]))
    return OperatingPoints(
        thresholds=np.concatenate(([-np.inf], sorted_scores[ends])),
        p_miss=misses / n_target,
        p_fa=(n_nontarget - rejected_nontargets) / n_nontarget,
        n_target=n_target.item(), n_nontarget=n_nontarget.item())


def eer_from_points(points: OperatingPoints) -> tuple[float, float]:
    """(EER, threshold) as defined in the module docstring.

    Examples
    --------
    >>> points = operating_points([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 1, 0, 1, 1])
    >>> value, threshold = eer_from_points(points)
    >>> round(value, 4), threshold
    (0.3333, 0.3)
    """
    gap = points.p_fa - points.p_miss  # decreasing (strictly, unless a weight is 0)
    # First point with P_fa < P_miss; the crossing is it or the one before it.
    after = int(np.searchsorted(-gap, 0.0, side="right"))
    candidates = [i for i in (after - 1, after) if 0 <= i < gap.size]
    best = min(candidates, key=lambda i: (abs(gap[i]), i))
    return float((points.p_fa[best] + points.p_miss[best]) / 2), float(points.thresholds[best])


def min_dcf_from_points(points: OperatingPoints, p_target: float, *, c_miss: float = 1.0,
                        c_fa: float = 1.0) -> dict:
    """{"normalised", "raw", "threshold"} of the minimum detection cost at `p_target`.

    Examples
    --------
    >>> points = operating_points([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 1, 0, 1, 1])
    >>> {k: round(v, 4) for k, v in min_dcf_from_points(points, 0.5).items()}
    {'normalised': 0.3333, 'raw': 0.1667, 'threshold': 0.2}
    """
    if not 0 < p_target < 1:
        raise XmdError(f"p_target must be between 0 and 1, got {p_target}")
    cost = c_miss * p_target * points.p_miss + c_fa * (1 - p_target) * points.p_fa
    best = int(np.argmin(cost))
    raw = float(cost[best])
    return {"normalised": raw / min(c_miss * p_target, c_fa * (1 - p_target)),
            "raw": raw, "threshold": float(points.thresholds[best])}


def eer(scores, labels) -> float:
    """Equal error rate (a fraction, not a percentage).

    Examples
    --------
    >>> round(eer([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 1, 0, 1, 1]), 4)
    0.3333
    >>> eer([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])  # perfectly separated
    0.0
    """
    return eer_from_points(operating_points(scores, labels))[0]


def min_dcf(scores, labels, p_target: float = 0.01, *, c_miss: float = 1.0, c_fa: float = 1.0,
            normalised: bool = True) -> float:
    """Minimum detection cost; `normalised=False` gives speechbrain's raw value.

    Examples
    --------
    >>> scores, labels = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 1, 0, 1, 1]
    >>> round(min_dcf(scores, labels, 0.5), 4), round(min_dcf(scores, labels, 0.5, normalised=False), 4)
    (0.3333, 0.1667)
    """
    result = min_dcf_from_points(operating_points(scores, labels), p_target, c_miss=c_miss, c_fa=c_fa)
    return result["normalised" if normalised else "raw"]


def roc_auc_from_points(points: OperatingPoints) -> float:
    """Area under the ROC (P_hit = 1 - P_miss against P_fa), trapezoids between points.

    Over all distinct-score operating points this equals the Mann-Whitney statistic
    P(target score > non-target score) + 0.5 * P(equal), which is what sklearn's
    `roc_auc_score` computes.

    Examples
    --------
    >>> points = operating_points([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 1, 0, 1, 1])
    >>> round(roc_auc_from_points(points), 4)  # 8 of the 9 target/non-target pairs are ordered right
    0.8889
    """
    hit = 1.0 - points.p_miss
    # Points run from (1, 1) to (0, 0): reverse so that P_fa increases.
    return float(np.trapezoid(hit[::-1], points.p_fa[::-1]))


def verification_summary(scores, labels, *, p_targets=(0.01, 0.05), c_miss: float = 1.0,
                         c_fa: float = 1.0, source: str = "scores") -> dict:
    """Every verification number of a score set, JSON-ready, from one sort.

    Keys: n_trials, n_target, n_nontarget, eer, eer_threshold, and for each p in
    `p_targets` min_dcf@p (normalised), min_dcf_raw@p and min_dcf_threshold@p.

    Examples
    --------
    >>> summary = verification_summary([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 1, 0, 1, 1], p_targets=(0.5,))
    >>> summary["n_trials"], round(summary["eer"], 4), summary["eer_threshold"], round(summary["min_dcf@0.5"], 4)
    (6, 0.3333, 0.3, 0.3333)
    """
    points = operating_points(scores, labels, source=source)
    value, threshold = eer_from_points(points)
    summary = {"n_trials": points.n_target + points.n_nontarget, "n_target": points.n_target,
               "n_nontarget": points.n_nontarget, "eer": value, "eer_threshold": threshold,
               "c_miss": c_miss, "c_fa": c_fa}
    for p in p_targets:
        dcf = min_dcf_from_points(points, p, c_miss=c_miss, c_fa=c_fa)
        summary[f"min_dcf@{p:g}"] = dcf["normalised"]
        summary[f"min_dcf_raw@{p:g}"] = dcf["raw"]
        summary[f"min_dcf_threshold@{p:g}"] = dcf["threshold"]
    return summary
