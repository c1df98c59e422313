"""Bootstrap confidence intervals and paired comparisons of verification and classification runs.

Speaker verification: the identity bootstrap. Trials that share a speaker are not
independent (a speaker whose voice the model handles badly spoils all of its
trials at once), so the unit that is resampled is the identity, not the trial.
One resample draws the n identities of the trial list n times with replacement;
identity i drawn m_i times stands for m_i distinct speakers, so in the resampled
list
- a target trial of identity i counts m_i times (each copy has its own target trials),
- a non-target trial between i and j counts m_i * m_j times (every copy of i meets
  every copy of j); two copies of one identity never form a non-target pair, since
  they are the same voice.
This is the two-way "subsets bootstrap" of Bolle et al. (2004) / Poh & Bengio
(2007) for trials indexed by two identities. Scores are sorted once; a resample
only changes how often each trial counts, so its operating points are cumulative
sums of weights in that one order (`verification.points_from_sorted` computes the
same points; `_SortedSystem` evaluates only the few points EER and minDCF need).

Classification: the classes of a closed-set test are fixed by design, so the
random draw is the samples. The bootstrap resamples samples *within each class*
(stratified): every resample has the test split's class sizes. Resampling n_c
samples of one class with replacement only changes how many of them are right,
which is Binomial(n_c, accuracy_c) (multinomial over the joint outcomes of
several runs for a paired comparison), so no per-sample index is drawn.

Paired comparisons apply the same resampled identities (or samples) to every
run on the same trial list and take the percentile interval of the difference
(run - first run). Verdict: "better" when the whole interval lies on the good
side of 0 (below 0 for EER and minDCF, above for accuracy), "worse" when it lies
on the bad side, otherwise "not resolved": at this confidence the data cannot
tell the runs apart.

Resamples that draw no target or no non-target trial have no EER; they are left
out of the percentiles and counted (`degenerate_resamples`).
"""

from __future__ import annotations

import numpy as np

from xmd_cli.errors import XmdError

LOWER_IS_BETTER = ("eer", "min_dcf")  # metric name prefixes where a smaller value is better
_BLOCK = 1 << 20  # small lists: (resamples x trials) values computed at once, ~8 MB an array


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


def _percentile(values: np.ndarray, confidence: float) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None, None
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _check_confidence(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise XmdError(f"confidence must be between 0 and 1, got {confidence}")
    if resamples < 1:
        raise XmdError(f"a bootstrap needs at least 1 resample, got {resamples}")


# ---------------------------------------------------------------- verification
def trial_units(labels, enroll_ids, test_ids, *, source: str = "trials") -> tuple[np.ndarray, np.ndarray, list]:
    """(first unit, second unit, identity names) of each trial for the identity bootstrap.

    A trial's weight in a resample is counts[first] * counts[second]; target trials
    get the sentinel unit n (whose count is always 1) as their second unit, so they
    count m(identity) times and non-targets m(enroll) * m(test) times. A target
    trial between two identities, or a non-target within one, contradicts the
    labels and is an XmdError naming the trial.
    """
    labels = np.asarray(labels, dtype=bool).reshape(-1)
    enroll_ids, test_ids = np.asarray(enroll_ids).reshape(-1), np.asarray(test_ids).reshape(-1)
    if not enroll_ids.size == test_ids.size == labels.size:
        raise XmdError(f"{source}: {labels.size} trials but {enroll_ids.size} enrolment and "
                       f"{test_ids.size} test identities")
    names, codes = np.unique(np.concatenate((enroll_ids, test_ids)), return_inverse=True)
    first, second = codes[:labels.size], codes[labels.size:]
    wrong = (first == second) != labels
    if wrong.any():
        at = int(np.argmax(wrong))
        kind = "target trial between two identities" if labels[at] else "non-target trial within one identity"
        pair = names[first[at]].item(), names[second[at]].item()
        raise XmdError(f"{source}: trial {at + 1} is a {kind} ({pair[0]!r}, {pair[1]!r})",
                       hint="the trial labels disagree with the manifest's identity labels")
    second = np.where(labels, names.size, second)
    return first.astype(np.int64), second.astype(np.int64), names.tolist()


class _SortedSystem:
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


def _metric_names(p_targets) -> list[str]:
    return ["eer", *(f"min_dcf@{p:g}" for p in p_targets)]


def _check_trials(scores, labels, source: str) -> tuple[np.ndarray, np.ndarray]:
    from xmd_cli.metrics.verification import check_scores
    return check_scores(scores, labels, source=source)


def _blocks(counts: np.ndarray, trials: int):
    """Rows of `counts` in blocks that keep (rows x trials) weights near _BLOCK values."""
    step = max(1, _BLOCK // max(trials, 1))
    for start in range(0, counts.shape[0], step):
        yield counts[start:start + step]


def _resampled(systems: list[_SortedSystem], counts: np.ndarray, trials: int, p_targets, c_miss, c_fa):
    """[(resamples x metrics) per system], every system on the same resampled units."""
    parts = [[] for _ in systems]
    for block in _blocks(counts, trials):
        for part, system in zip(parts, systems):
            part.append(system.metrics(block, p_targets, c_miss, c_fa))
    return [np.concatenate(part) for part in parts]


def verification_intervals(scores, labels, enroll_ids, test_ids, *, p_targets=(0.01, 0.05),
                           resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                           unit: str = "identity", c_miss: float = 1.0, c_fa: float = 1.0,
                           source: str = "scores") -> dict:
    """Point estimates and percentile bootstrap intervals of EER and minDCF.

    Parameters
    ----------
    scores, labels : array_like
        One score and one label (1 target, 0 non-target) per trial.
    enroll_ids, test_ids : array_like
        The identity of each trial's enrolment and test sample (any hashable labels).
    p_targets : sequence of float
        minDCF priors; each gives a ``min_dcf@p`` entry (normalised).
    resamples, confidence, seed : int, float, int
        Bootstrap size, interval coverage and the seed of its generator.
    unit : {"identity", "trial"}
        "identity" (the right one, see the module docstring) or "trial": every
        trial an independent draw, too narrow when trials share speakers; kept
        to show how much (docs/evaluation.md).

    Returns
    -------
    dict
        ``{"metrics": {name: {"value", "ci_low", "ci_high"}}, "protocol": {...}}``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> speaker = np.repeat(np.arange(20), 10)          # 20 speakers, 10 trials each
    >>> other = (speaker + 1 + rng.integers(0, 19, 200)) % 20
    >>> labels = np.arange(200) % 2 == 0                 # even trials are targets
    >>> test = np.where(labels, speaker, other)
    >>> scores = rng.normal(np.where(labels, 2.0, 0.0), 1.0)
    >>> result = verification_intervals(scores, labels, speaker, test, resamples=200, p_targets=(0.05,))
    >>> eer = result["metrics"]["eer"]
    >>> eer["ci_low"] <= eer["value"] <= eer["ci_high"]
    True
    >>> result["protocol"]["bootstrap_unit"], result["protocol"]["bootstrap_units"]
    ('identity', 20)
    """
    from xmd_cli.metrics.verification import verification_summary
    scores, labels = _check_trials(scores, labels, source)
    _check_confidence(confidence, resamples)
    first, second, names = _units(labels, enroll_ids, test_ids, unit, source)
    n_units = len(names)
    counts = resample_counts(n_units, resamples, seed)
    values = _resampled([_SortedSystem(scores, labels, first, second)], counts, labels.size, p_targets,
                        c_miss, c_fa)[0]
    point = verification_summary(scores, labels, p_targets=p_targets, c_miss=c_miss, c_fa=c_fa, source=source)
    metrics = {}
    for column, name in enumerate(_metric_names(p_targets)):
        low, high = _percentile(values[:, column], confidence)
        metrics[name] = {"value": float(point[name]), "ci_low": low, "ci_high": high}
    return {"metrics": metrics, "protocol": _protocol(unit, n_units, resamples, confidence, seed, values)}


def _units(labels, enroll_ids, test_ids, unit: str, source: str):
    if unit == "identity":
        return trial_units(labels, enroll_ids, test_ids, source=source)
    if unit == "trial":
        trials = np.arange(labels.size)
        return trials, np.full(labels.size, labels.size), trials.tolist()
    raise XmdError(f"bootstrap unit must be 'identity' or 'trial', got {unit!r}")


def _protocol(unit: str, n_units: int, resamples: int, confidence: float, seed: int, values) -> dict:
    return {"bootstrap": resamples, "confidence": confidence, "bootstrap_unit": unit,
            "bootstrap_units": n_units, "bootstrap_seed": seed,
            "degenerate_resamples": int((~np.isfinite(values[:, 0])).sum())}


def paired_verification(score_sets, labels, enroll_ids, test_ids, *, p_targets=(0.01, 0.05),
                        resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                        c_miss: float = 1.0, c_fa: float = 1.0, sources=None) -> dict:
    """Paired identity bootstrap of several score sets on the same trial list, each against the first.

    Parameters
    ----------
    score_sets : sequence of array_like
        Two or more score vectors, trial i of each being the same trial.
    labels, enroll_ids, test_ids : array_like
        As in `verification_intervals`, shared by every score set.

    Returns
    -------
    dict
        ``{name: [{"difference", "ci_low", "ci_high", "verdict"} for sets 2..K]}``
        for ``eer`` and each ``min_dcf@p``; difference = set k - set 1.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> speaker = np.repeat(np.arange(30), 20)
    >>> labels = np.arange(600) % 2 == 0
    >>> test = np.where(labels, speaker, (speaker + 1 + rng.integers(0, 29, 600)) % 30)
    >>> noise = rng.normal(0, 1, 600)
    >>> a = np.where(labels, 1.0, 0.0) + noise
    >>> b = np.where(labels, 3.0, 0.0) + noise                # the same trials, better separated
    >>> result = paired_verification([a, b, a], labels, speaker, test, resamples=200, p_targets=())
    >>> [entry["verdict"] for entry in result["eer"]]
    ['better', 'not resolved']
    >>> result["eer"][1]["ci_low"] == result["eer"][1]["ci_high"] == 0.0
    True
    """
    if len(score_sets) < 2:
        raise XmdError("a paired comparison needs at least two score sets")
    _check_confidence(confidence, resamples)
    points, values = resampled_verification(score_sets, labels, enroll_ids, test_ids, p_targets=p_targets,
                                            resamples=resamples, seed=seed, c_miss=c_miss, c_fa=c_fa,
                                            sources=sources)
    result = {}
    for column, name in enumerate(_metric_names(p_targets)):
        result[name] = [paired_difference(points[k][name] - points[0][name],
                                    values[k][:, column] - values[0][:, column], confidence,
                                    is_lower_better(name)) for k in range(1, len(points))]
    return result


def resampled_verification(score_sets, labels, enroll_ids, test_ids, *, p_targets=(0.01, 0.05),
                           resamples: int = 1000, seed: int = 0, c_miss: float = 1.0, c_fa: float = 1.0,
                           sources=None) -> tuple[list[dict], list[np.ndarray]]:
    """(point metrics, (resamples x metrics) values) of each score set, all on the same resampled identities.

    The building block of paired comparisons: columns are `eer` then `min_dcf@p` for each p;
    a resample is drawn by `resample_counts(identities, resamples, seed)`, so two calls with the
    same trials and seed resample identically.
    """
    from xmd_cli.metrics.verification import verification_summary
    sources = sources or [f"score set {k + 1}" for k in range(len(score_sets))]
    checked = [_check_trials(s, labels, source) for s, source in zip(score_sets, sources)]
    labels = checked[0][1]
    first, second, names = trial_units(labels, enroll_ids, test_ids, source=sources[0])
    counts = resample_counts(len(names), resamples, seed)
    systems = [_SortedSystem(scores, labels, first, second) for scores, _ in checked]
    values = _resampled(systems, counts, labels.size, p_targets, c_miss, c_fa)
    points = [verification_summary(scores, labels, p_targets=p_targets, c_miss=c_miss, c_fa=c_fa)
              for scores, _ in checked]
    return points, values


def metric_names(p_targets) -> list[str]:
    """The columns of `resampled_verification`: eer, then min_dcf@p for each p."""
    return _metric_names(p_targets)


def paired_difference(point: float, resampled: np.ndarray, confidence: float, lower_is_better: bool) -> dict:
    """{difference, ci_low, ci_high, verdict} from a point difference and its resampled values."""
    low, high = _percentile(resampled, confidence)
    judged = "not resolved" if low is None else verdict(low, high, lower_is_better=lower_is_better)
    return {"difference": float(point), "ci_low": low, "ci_high": high, "verdict": judged}


# ---------------------------------------------------------------- classification
def _class_patterns(correct: np.ndarray, classes: np.ndarray):
    """Per class: (sample count, outcome patterns present, their counts); a pattern's bit k is run k right."""
    pattern = (correct.astype(np.int64) << np.arange(correct.shape[0])[:, None]).sum(axis=0)
    for c in np.unique(classes):
        present, count = np.unique(pattern[classes == c], return_counts=True)
        yield int(count.sum()), present, count


def _resampled_correct(correct: np.ndarray, classes: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(runs x resamples): right answers in each stratified resample, the same resample for every run."""
    rng = np.random.default_rng(seed)
    right = np.zeros((correct.shape[0], resamples))
    bits = np.arange(correct.shape[0])[:, None]
    for size, present, count in _class_patterns(correct, classes):
        drawn = rng.multinomial(size, count / size, size=resamples)  # (resamples x patterns)
        right += ((present[None, :] >> bits) & 1) @ drawn.T
    return right


def _check_correct(corrects, classes) -> tuple[np.ndarray, np.ndarray]:
    correct = np.atleast_2d(np.asarray(corrects, dtype=bool))
    classes = np.asarray(classes).reshape(-1)
    if correct.shape[1] != classes.size or classes.size == 0:
        raise XmdError(f"{correct.shape[1]} per-sample outcomes for {classes.size} class labels")
    return correct, classes


def accuracy_interval(correct, classes, *, resamples: int = 1000, confidence: float = 0.95,
                      seed: int = 0) -> dict:
    """Accuracy with a class-stratified sample bootstrap interval.

    Parameters
    ----------
    correct : array_like of bool
        Whether each test sample was classified right (e.g. top-1).
    classes : array_like
        Each sample's true class; resamples keep every class's sample count.

    Returns
    -------
    dict
        ``{"value", "ci_low", "ci_high"}``.

    Examples
    --------
    >>> correct = np.array([1, 1, 1, 0] * 25, dtype=bool)
    >>> result = accuracy_interval(correct, np.arange(100) % 5, resamples=500)
    >>> result["value"], result["ci_low"] < 0.75 < result["ci_high"]
    (0.75, True)
    """
    correct, classes = _check_correct(correct, classes)
    _check_confidence(confidence, resamples)
    right = _resampled_correct(correct, classes, resamples, seed)[0] / classes.size
    low, high = _percentile(right, confidence)
    return {"value": float(correct[0].mean()), "ci_low": low, "ci_high": high}


def paired_accuracy(corrects, classes, *, resamples: int = 1000, confidence: float = 0.95,
                    seed: int = 0) -> list[dict]:
    """Accuracy differences (run k - run 1) of runs on the same test samples, same resamples for all.

    Examples
    --------
    >>> classes = np.arange(200) % 4
    >>> a = np.arange(200) % 3 != 0                      # two thirds right
    >>> b = a | (np.arange(200) % 3 == 0)               # right on every sample
    >>> [d["verdict"] for d in paired_accuracy([a, b, a], classes, resamples=300)]
    ['better', 'not resolved']
    """
    correct, classes = _check_correct(corrects, classes)
    if correct.shape[0] < 2:
        raise XmdError("a paired comparison needs at least two runs")
    _check_confidence(confidence, resamples)
    right = _resampled_correct(correct, classes, resamples, seed) / classes.size
    point = correct.mean(axis=1)
    return [paired_difference(point[k] - point[0], right[k] - right[0], confidence, False)
            for k in range(1, correct.shape[0])]


def resampled_accuracy(corrects, classes, *, resamples: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy of each run, (runs x resamples) accuracies), every run on the same stratified resamples."""
    correct, classes = _check_correct(corrects, classes)
    return correct.mean(axis=1), _resampled_correct(correct, classes, resamples, seed) / classes.size
