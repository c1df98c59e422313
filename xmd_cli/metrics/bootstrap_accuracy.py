"""The class-stratified bootstrap of classification accuracy: intervals and paired comparisons.

The classes of a closed-set test are fixed by design, so the random draw is the
samples. The bootstrap resamples samples *within each class* (stratified): every
resample has the test split's class sizes. Resampling n_c samples of one class
with replacement only changes how many of them are right, which is
Binomial(n_c, accuracy_c) (multinomial over the joint outcomes of several runs
for a paired comparison), so no per-sample index is drawn.
"""

from __future__ import annotations

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.metrics.bootstrap import check_confidence, paired_difference, percentile_interval


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
    check_confidence(confidence, resamples)
    right = _resampled_correct(correct, classes, resamples, seed)[0] / classes.size
    low, high = percentile_interval(right, confidence)
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
    check_confidence(confidence, resamples)
    right = _resampled_correct(correct, classes, resamples, seed) / classes.size
    point = correct.mean(axis=1)
    return [paired_difference(point[k] - point[0], right[k] - right[0], confidence, False)
            for k in range(1, correct.shape[0])]


def resampled_accuracy(corrects, classes, *, resamples: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy of each run, (runs x resamples) accuracies), every run on the same stratified resamples.

    Examples
    --------
    >>> classes = np.arange(40) % 4
    >>> points, values = resampled_accuracy([np.arange(40) % 2 == 0, np.ones(40, bool)], classes, resamples=30)
    >>> points.tolist(), values.shape, values[1].min()  # the second run is right on every resample
    ([0.5, 1.0], (2, 30), np.float64(1.0))
    """
    correct, classes = _check_correct(corrects, classes)
    return correct.mean(axis=1), _resampled_correct(correct, classes, resamples, seed) / classes.size
