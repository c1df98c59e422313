"""EER and minDCF of any reweighting of one score set, from a single sort: what makes the bootstrap fast.

A bootstrap resample of trials (or of the identities behind them) only changes
how often each trial counts. With the scores sorted once, the weighted counts of
targets and non-targets below every operating point are cumulative sums of the
weights in that one order, so a resample costs a few cumulative sums and a
search, not a sort. `bootstrap_verification` draws the weights; this module only
evaluates them.
"""

from __future__ import annotations

import numpy as np


class SortedSystem:
    """One score set sorted once; EER and minDCF of any reweighting of its trials.

    A resample only changes trial weights, so with targets and non-targets kept in
    their own ascending order, the weighted counts below every operating point are
    cumulative sums CT (targets) and CN (non-targets) read at fixed positions.
    EER: a binary search for the crossing of P_fa - P_miss, which never increases.
    minDCF: only points just below a run of scores holding a target can be minima
    (passing non-targets only lowers the cost, targets only raises it): one a switch from
    non-target to target in the sorted scores, few for a good system.
    The results equal `verification.eer_from_points` / `min_dcf_from_points` of
    `points_from_sorted(..., weights)` (tests/test_bootstrap.py checks it).

    A trial counts counts[first] * counts[second] times; `metrics` appends a unit whose
    count is always 1, so a trial whose `second` is that unit counts counts[first] times.

    Examples
    --------
    >>> scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.7])
    >>> labels = np.array([False, False, True, True, False, True])
    >>> system = SortedSystem(scores, labels, np.arange(6), np.full(6, 6))  # every trial its own unit
    >>> counts = np.array([[1, 1, 1, 1, 1, 1],    # the list as it is
    ...                    [1, 2, 1, 1, 1, 1],    # the non-target 0.4 twice
    ...                    [1, 1, 0, 1, 1, 1]])   # the target 0.35 left out
    >>> system.metrics(counts, (0.5,), c_miss=1.0, c_fa=1.0).round(4).tolist()  # EER, minDCF@0.5
    [[0.3333, 0.3333], [0.4167, 0.3333], [0.0, 0.0]]
    """

    def __init__(self, scores: np.ndarray, labels: np.ndarray, first: np.ndarray, second: np.ndarray):
        order = np.argsort(scores, kind="stable")
        s, lab = scores[order], labels[order]
        self.target_unit = first[order][lab]
        self.nontarget_units = first[order][~lab], second[order][~lab]
        ends = np.append(np.flatnonzero(np.diff(s) != 0), s.size - 1)  # last index of each run of ties
        targets_below = np.cumsum(lab)
        # Point k (k = 0: accept all) rejects the first k runs: its target / non-target counts.
        self.t_at = np.concatenate(([0], targets_below[ends]))
        self.n_at = np.concatenate(([0], ends + 1 - targets_below[ends]))
        # Run k lies between points k and k+1. Passing a run of non-targets only lowers the cost and
        # passing one of targets only raises it, so a minimum sits before a run holding a target whose
        # previous run holds a non-target: one candidate per switch from non-targets to targets.
        has_target, has_nontarget = np.diff(self.t_at) > 0, np.diff(self.n_at) > 0
        after_nontarget = np.concatenate(([True], has_nontarget[:-1]))
        self.candidates = np.append(np.flatnonzero(has_target & after_nontarget), ends.size)
        self.t_candidates, self.n_candidates = self.t_at[self.candidates], self.n_at[self.candidates]
        self.thresholds = np.concatenate(([-np.inf], s[ends]))

    # Above this many trials, resamples go one at a time through 1-D numpy calls (fancy indexing and
    # cumsum along rows of a 2-D array measured 5-10x slower per value); below it, Python's per-call
    # overhead dominates and a block of resamples goes through at once.
    ROW_WISE_ABOVE = 50_000

    def metrics(self, counts: np.ndarray, p_targets, c_miss: float, c_fa: float) -> np.ndarray:
        """(resamples x (1 + len(p_targets))): EER then normalised minDCF at each p, NaN where undefined."""
        ones = np.ones((counts.shape[0], 1), dtype=counts.dtype)
        counts = np.concatenate((counts, ones), axis=1)  # the sentinel unit of target trials
        if self.t_at[-1] + self.n_at[-1] > self.ROW_WISE_ABOVE:
            return np.stack([self._row(row, p_targets, c_miss, c_fa) for row in counts])
        return self._block(counts, p_targets, c_miss, c_fa)

    def _row(self, count: np.ndarray, p_targets, c_miss: float, c_fa: float) -> np.ndarray:
        out = np.full(1 + len(p_targets), np.nan)
        if count.max() < 46_341:  # a product of two counts fits int32: gathers move half the bytes
            count = count.astype(np.int32)
        ct = np.zeros(self.target_unit.size + 1, dtype=np.int64)
        np.cumsum(np.take(count, self.target_unit), out=ct[1:])
        first, second = self.nontarget_units
        weight = np.take(count, first)
        weight *= np.take(count, second)
        cn = np.zeros(first.size + 1, dtype=np.int64)
        np.cumsum(weight, out=cn[1:])
        n_t, n_n = int(ct[-1]), int(cn[-1])
        if n_t == 0 or n_n == 0:
            return out
        t_at, n_at = self.t_at, self.n_at

        def gap(k):  # the same float operations as points_from_sorted + eer_from_points
            p_miss, p_fa = int(ct[t_at[k]]) / n_t, (n_n - int(cn[n_at[k]])) / n_n
            return p_fa - p_miss, (p_fa + p_miss) / 2

        lo, hi = 0, t_at.size
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if gap(mid)[0] < 0 else (mid + 1, hi)
        (gap_b, eer_b), (gap_a, eer_a) = gap(max(lo - 1, 0)), gap(min(lo, t_at.size - 1))
        out[0] = eer_a if abs(gap_a) < abs(gap_b) else eer_b
        t_c, n_c = ct[self.t_candidates], cn[self.n_candidates]
        for column, p in enumerate(p_targets, 1):
            # cost = a*CT + b*(NN - CN) = b*(CT*a/b - CN + NN): two passes over the candidates.
            a, b = c_miss * p / n_t, c_fa * (1 - p) / n_n
            out[column] = b * (float((t_c * (a / b) - n_c).min()) + n_n) / min(c_miss * p, c_fa * (1 - p))
        return out

    def _block(self, counts: np.ndarray, p_targets, c_miss: float, c_fa: float) -> np.ndarray:
        zero = np.zeros((counts.shape[0], 1))
        ct = np.concatenate((zero, np.cumsum(counts[:, self.target_unit], axis=1, dtype=np.float64)), axis=1)
        first, second = self.nontarget_units
        cn = np.concatenate((zero, np.cumsum(counts[:, first] * counts[:, second], axis=1,
                                             dtype=np.float64)), axis=1)
        n_t, n_n = ct[:, -1:], cn[:, -1:]
        out = np.full((counts.shape[0], 1 + len(p_targets)), np.nan)
        ok = (n_t[:, 0] > 0) & (n_n[:, 0] > 0)
        if not ok.any():
            return out
        ct, cn, n_t, n_n = ct[ok], cn[ok], n_t[ok], n_n[ok]
        out[ok, 0] = self._eer(ct, cn, n_t, n_n)
        t_c, n_c = self.t_candidates, self.n_candidates
        p_miss = ct[:, t_c] / n_t
        p_fa = (n_n - cn[:, n_c]) / n_n
        for column, p in enumerate(p_targets, 1):
            cost = (c_miss * p) * p_miss + (c_fa * (1 - p)) * p_fa
            out[ok, column] = cost.min(axis=1) / min(c_miss * p, c_fa * (1 - p))
        return out

    def _gap(self, ct, cn, n_t, n_n, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.arange(ct.shape[0])
        p_miss = ct[rows, self.t_at[point]] / n_t[:, 0]
        p_fa = (n_n[:, 0] - cn[rows, self.n_at[point]]) / n_n[:, 0]
        return p_fa - p_miss, (p_fa + p_miss) / 2

    def _eer(self, ct, cn, n_t, n_n) -> np.ndarray:
        # The first point with P_fa < P_miss, for every resample at once (as eer_from_points' searchsorted).
        lo = np.zeros(ct.shape[0], dtype=np.int64)
        hi = np.full(ct.shape[0], self.t_at.size, dtype=np.int64)
        while (lo < hi).any():
            mid = (lo + hi) // 2
            below = self._gap(ct, cn, n_t, n_n, np.minimum(mid, self.t_at.size - 1))[0] < 0
            active = lo < hi
            hi = np.where(active & below, mid, hi)
            lo = np.where(active & ~below, mid + 1, lo)
        before, after = np.maximum(lo - 1, 0), np.minimum(lo, self.t_at.size - 1)
        gap_b, eer_b = self._gap(ct, cn, n_t, n_n, before)
        gap_a, eer_a = self._gap(ct, cn, n_t, n_n, after)
        # The crossing is `after` or the point before it; on a tie the lower threshold (before) wins.
        return np.where(np.abs(gap_a) < np.abs(gap_b), eer_a, eer_b)
