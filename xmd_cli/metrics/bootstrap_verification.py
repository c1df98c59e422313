"""The identity bootstrap of speaker verification: intervals and paired comparisons of EER and minDCF.

Trials that share a speaker are not independent (a speaker whose voice the model
handles badly spoils all of its trials at once), so the unit that is resampled is
the identity, not the trial. One resample draws the n identities of the trial list
n times with replacement; identity i drawn m_i times stands for m_i distinct
speakers, so in the resampled list
- a target trial of identity i counts m_i times (each copy has its own target trials),
- a non-target trial between i and j counts m_i * m_j times (every copy of i meets
  every copy of j); two copies of one identity never form a non-target pair, since
  they are the same voice.
This is the two-way "subsets bootstrap" of Bolle et al. (2004) / Poh & Bengio
(2007) for trials indexed by two identities. Scores are sorted once; a resample
only changes how often each trial counts, so its operating points are cumulative
sums of weights in that one order (`verification.points_from_sorted` computes the
same points; `reweighted_verification.SortedSystem` evaluates only the few points EER and
minDCF need).

Resamples that draw no target or no non-target trial have no EER; they are left
out of the percentiles and counted (`degenerate_resamples`).
"""

from __future__ import annotations

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.metrics.bootstrap import (
    check_confidence,
    is_lower_better,
    paired_difference,
    percentile_interval,
    resample_counts,
)
from xmd_cli.metrics.reweighted_verification import SortedSystem

_BLOCK = 1 << 20  # small lists: (resamples x trials) values computed at once, ~8 MB an array


def trial_units(labels, enroll_ids, test_ids, *, source: str = "trials") -> tuple[np.ndarray, np.ndarray, list]:
    """(first unit, second unit, identity names) of each trial for the identity bootstrap.

    A trial's weight in a resample is counts[first] * counts[second]; target trials
    get the sentinel unit n (whose count is always 1) as their second unit, so they
    count m(identity) times and non-targets m(enroll) * m(test) times. A target
    trial between two identities, or a non-target within one, contradicts the
    labels and is an XmdError naming the trial.

    Examples
    --------
    >>> first, second, names = trial_units([1, 0, 0], ["a", "a", "b"], ["a", "b", "c"])
    >>> first.tolist(), second.tolist(), names  # the target trial's second unit is the sentinel 3
    ([0, 0, 1], [3, 1, 2], ['a', 'b', 'c'])
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


def _resampled(systems: list[SortedSystem], counts: np.ndarray, trials: int, p_targets, c_miss, c_fa):
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
    check_confidence(confidence, resamples)
    first, second, names = _units(labels, enroll_ids, test_ids, unit, source)
    n_units = len(names)
    counts = resample_counts(n_units, resamples, seed)
    values = _resampled([SortedSystem(scores, labels, first, second)], counts, labels.size, p_targets,
                        c_miss, c_fa)[0]
    point = verification_summary(scores, labels, p_targets=p_targets, c_miss=c_miss, c_fa=c_fa, source=source)
    metrics = {}
    for column, name in enumerate(_metric_names(p_targets)):
        low, high = percentile_interval(values[:, column], confidence)
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
    check_confidence(confidence, resamples)
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

    Examples
    --------
    >>> speaker = np.repeat(np.arange(10), 4)
    >>> labels = np.arange(40) % 2 == 0
    >>> test = np.where(labels, speaker, (speaker + 1) % 10)
    >>> scores = np.where(labels, 1.0, 0.0) + np.linspace(-0.6, 0.6, 40)
    >>> points, values = resampled_verification([scores, scores + 0.1], labels, speaker, test, p_targets=(0.05,),
    ...                                         resamples=20)
    >>> round(points[0]["eer"], 4), values[0].shape, bool((values[0] == values[1]).all())  # a shift changes nothing
    (0.1, (20, 2), True)
    """
    from xmd_cli.metrics.verification import verification_summary
    sources = sources or [f"score set {k + 1}" for k in range(len(score_sets))]
    checked = [_check_trials(s, labels, source) for s, source in zip(score_sets, sources)]
    labels = checked[0][1]
    first, second, names = trial_units(labels, enroll_ids, test_ids, source=sources[0])
    counts = resample_counts(len(names), resamples, seed)
    systems = [SortedSystem(scores, labels, first, second) for scores, _ in checked]
    values = _resampled(systems, counts, labels.size, p_targets, c_miss, c_fa)
    points = [verification_summary(scores, labels, p_targets=p_targets, c_miss=c_miss, c_fa=c_fa)
              for scores, _ in checked]
    return points, values


def metric_names(p_targets) -> list[str]:
    """The columns of `resampled_verification`: eer, then min_dcf@p for each p.

    Examples
    --------
    >>> metric_names((0.01, 0.05))
    ['eer', 'min_dcf@0.01', 'min_dcf@0.05']
    """
    return _metric_names(p_targets)
