"""EER, minDCF and DET points against speechbrain and an sklearn ROC reference, ties included."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from speechbrain.utils.metric_stats import EER as sb_eer
from speechbrain.utils.metric_stats import minDCF as sb_min_dcf

from xmd_cli.errors import XmdError
from xmd_cli.metrics.plots import det_curve_png
from xmd_cli.metrics.verification import (
    eer,
    min_dcf,
    operating_points,
    points_from_sorted,
    roc_auc_from_points,
    verification_summary,
)


def random_scores(seed, decimals):
    """Two overlapping Gaussians; rounding makes many exact ties, within and across classes."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(150, 700))
    labels = rng.random(n) < rng.uniform(0.1, 0.6)
    labels[:2] = [True, False]
    scores = np.round(rng.normal(np.where(labels, 1.2, 0.0), 1.0), decimals)
    return scores, labels


def sklearn_reference(scores, labels, p_targets):
    """EER and normalised minDCF from sklearn's roc_curve (accept score >= threshold)."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    best = np.argmin(np.abs(fnr - fpr))
    dcf = {p: np.min(p * fnr + (1 - p) * fpr) / min(p, 1 - p) for p in p_targets}
    return (fpr[best] + fnr[best]) / 2, dcf


CASES = [(seed, decimals) for seed in range(8) for decimals in (1, 2)]


@pytest.mark.parametrize("seed,decimals", CASES)
def test_equals_speechbrain(seed, decimals):
    scores, labels = random_scores(seed, decimals)
    # Full of ties, many of them between a target and a non-target.
    assert len(np.unique(scores)) < 0.8 * len(scores)
    assert len(np.intersect1d(scores[labels], scores[~labels])) > 5
    positive = torch.tensor(scores[labels])
    negative = torch.tensor(scores[~labels])
    summary = verification_summary(scores, labels, p_targets=(0.01, 0.05))
    reference_eer, reference_threshold = sb_eer(positive, negative)
    assert summary["eer"] == pytest.approx(reference_eer, abs=1e-4)
    assert summary["eer_threshold"] == pytest.approx(reference_threshold, abs=1e-6)
    for p in (0.01, 0.05):
        reference_dcf, _ = sb_min_dcf(positive, negative, p_target=p)
        # speechbrain's minDCF is the raw cost; xmd reports it next to the normalised one.
        assert summary[f"min_dcf_raw@{p:g}"] == pytest.approx(reference_dcf, abs=1e-4)
        assert summary[f"min_dcf@{p:g}"] == pytest.approx(reference_dcf / p, abs=1e-4)


@pytest.mark.parametrize("seed,decimals", CASES)
def test_equals_sklearn_roc_reference(seed, decimals):
    scores, labels = random_scores(seed + 100, decimals)
    reference_eer, reference_dcf = sklearn_reference(scores, labels, (0.01, 0.05))
    assert eer(scores, labels) == pytest.approx(reference_eer, abs=1e-4)
    for p, value in reference_dcf.items():
        assert min_dcf(scores, labels, p) == pytest.approx(value, abs=1e-4)
    auc = roc_auc_from_points(operating_points(scores, labels))
    assert auc == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)


def test_hand_computed_example():
    # Targets 0.2 0.6 0.7 0.9, non-targets 0.1 0.3 0.4 0.8; accept scores > threshold.
    # At 0.4: P_miss = 1/4 (0.2 is rejected), P_fa = 1/4 (0.8 is accepted): EER 0.25 exactly.
    scores = np.array([0.2, 0.6, 0.7, 0.9, 0.1, 0.3, 0.4, 0.8])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    summary = verification_summary(scores, labels, p_targets=(0.5,))
    assert summary["eer"] == 0.25
    assert summary["eer_threshold"] == 0.4
    # p = 0.5: cost 0.5*P_miss + 0.5*P_fa is 0.25 at best; normalised by 0.5 -> 0.5.
    assert summary["min_dcf_raw@0.5"] == pytest.approx(0.25)
    assert summary["min_dcf@0.5"] == pytest.approx(0.5)


def test_ties_are_never_split():
    # Every score equal: no threshold separates anything, so the EER is 0.5 whatever the order.
    labels = np.array([1, 0, 1, 0, 0, 1])
    assert eer(np.zeros(6), labels) == 0.5
    scores, labels = random_scores(3, 1)
    order = np.random.default_rng(0).permutation(scores.size)
    assert verification_summary(scores[order], labels[order]) == verification_summary(scores, labels)


def test_det_points_are_monotone_and_span_the_square():
    scores, labels = random_scores(5, 2)
    points = operating_points(scores, labels)
    assert points.p_miss[0] == 0 and points.p_fa[0] == 1
    assert points.p_miss[-1] == 1 and points.p_fa[-1] == 0
    assert (np.diff(points.p_miss) >= 0).all() and (np.diff(points.p_fa) <= 0).all()
    assert points.thresholds.size == np.unique(scores).size + 1


def test_weights_equal_repeated_trials():
    # A bootstrap resample weights trials instead of copying them: both must agree.
    scores, labels = random_scores(7, 1)
    weights = np.random.default_rng(1).integers(0, 4, scores.size)
    weights[:2] = 1  # keep a target and a non-target
    order = np.argsort(scores)
    weighted = points_from_sorted(scores[order], labels[order], weights[order])
    repeated = operating_points(np.repeat(scores, weights), np.repeat(labels, weights))
    keep = np.isin(weighted.thresholds, repeated.thresholds)
    np.testing.assert_allclose(weighted.p_miss[keep], repeated.p_miss)
    np.testing.assert_allclose(weighted.p_fa[keep], repeated.p_fa)


@pytest.mark.parametrize("labels,message", [
    (np.ones(5, bool), "all 5 trials are target trials"),
    (np.zeros(5, bool), "all 5 trials are non-target trials"),
])
def test_one_class_only_is_a_clear_error(labels, message):
    with pytest.raises(XmdError, match=message):
        verification_summary(np.arange(5.0), labels, source="trials.txt")


def test_bad_scores_are_clear_errors():
    with pytest.raises(XmdError, match="no trials"):
        eer([], [])
    with pytest.raises(XmdError, match="NaN or infinite.*trial 2"):
        eer([0.1, np.nan, 0.3], [1, 0, 1])
    with pytest.raises(XmdError, match="labels must be 1"):
        eer([0.1, 0.2], [1, 2])
    with pytest.raises(XmdError, match="p_target"):
        min_dcf([0.1, 0.2], [1, 0], p_target=1.5)


def test_det_plot_is_a_png(tmp_path):
    scores, labels = random_scores(2, 2)
    summary = verification_summary(scores, labels)
    path = det_curve_png(tmp_path / "det.png", scores, labels, summary=summary)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
