"""Cross-modal matching on embeddings whose answer is known: perfect, random, reversed."""

import numpy as np
import pytest

from xmd_cli.errors import XmdError
from xmd_cli.metrics.matching import matching_summary

IDENTITIES, PER_IDENTITY, DIM = 20, 8, 16
identity = np.repeat(np.arange(IDENTITIES), PER_IDENTITY)


def paired(seed, noise=0.05):
    """Student and teacher embeddings that share one direction per identity."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(IDENTITIES, DIM))
    student = centers[identity] + noise * rng.normal(size=(identity.size, DIM))
    teacher = centers[identity] + noise * rng.normal(size=(identity.size, DIM))
    return student, teacher


def values(summary):
    return {name: entry["value"] for name, entry in summary["metrics"].items()}


def test_perfect_embeddings_score_perfectly():
    student, teacher = paired(0)
    summary = matching_summary(student, teacher, identity, bootstrap=50)
    got = values(summary)
    assert set(got) == {"match_1:2_s2t", "match_1:2_t2s", "match_1:10_s2t", "match_1:10_t2s",
                        "verification_eer", "verification_auc", "recall@1_s2t", "recall@5_s2t",
                        "recall@10_s2t", "recall@1_t2s", "recall@5_t2s", "recall@10_t2s"}
    for name, value in got.items():
        assert value == (0.0 if name == "verification_eer" else 1.0), name
    assert summary["metrics"]["match_1:2_s2t"]["chance"] == 0.5
    assert summary["metrics"]["match_1:10_t2s"]["chance"] == pytest.approx(0.1)
    # Recall chance: 7 relevant among 159 gallery items, one pick.
    assert summary["metrics"]["recall@1_s2t"]["chance"] == pytest.approx(7 / 159)


def test_reversed_embeddings_score_zero():
    # The teacher points away from its own identity: the true match is always the worst one.
    student, teacher = paired(1)
    got = values(matching_summary(student, -teacher, identity, bootstrap=50))
    for name, value in got.items():
        assert value == (1.0 if name == "verification_eer" else 0.0), name


def test_random_embeddings_sit_at_chance_within_their_intervals():
    covered, deviation = {}, {}
    for seed in range(16):
        rng = np.random.default_rng(seed + 1000)
        student, teacher = (rng.normal(size=(identity.size, DIM)) for _ in range(2))
        summary = matching_summary(student, teacher, identity, bootstrap=200, seed=seed)
        for name, entry in summary["metrics"].items():
            covered[name] = covered.get(name, 0) + (entry["ci_low"] <= entry["chance"] <= entry["ci_high"])
            deviation.setdefault(name, []).append(entry["value"] - entry["chance"])
    for name in covered:
        # A 95 % interval holds chance in most runs (binomial: >= 12 of 16 with p > 0.99),
        assert covered[name] >= 12, (name, covered[name])
        # and the estimates scatter around chance without bias.
        assert abs(np.mean(deviation[name])) < 0.03, (name, np.mean(deviation[name]))


def test_partial_signal_lands_between_chance_and_perfect_with_a_ci_around_it():
    student, teacher = paired(2, noise=1.2)
    metrics = matching_summary(student, teacher, identity, bootstrap=300)["metrics"]
    for name in ("match_1:2_s2t", "match_1:2_t2s", "verification_auc"):
        entry = metrics[name]
        assert 0.6 < entry["value"] < 0.99, (name, entry)
        assert entry["ci_low"] < entry["value"] < entry["ci_high"]
    assert 0.01 < metrics["verification_eer"]["value"] < 0.4


def test_negating_the_teacher_mirrors_every_pairwise_metric():
    # Negation reverses every cosine, and the same seed draws the same trials: a 1:2 win
    # becomes a loss (a tie stays half), and AUC = P(target > non-target) becomes 1 - AUC.
    student, teacher = paired(3, noise=1.0)
    plain = values(matching_summary(student, teacher, identity, n_ways=(2,), bootstrap=0))
    flipped = values(matching_summary(student, -teacher, identity, n_ways=(2,), bootstrap=0))
    for name in ("match_1:2_s2t", "match_1:2_t2s", "verification_auc"):
        assert 0.6 < plain[name] < 1
        assert flipped[name] == pytest.approx(1 - plain[name], abs=1e-12), name
    assert flipped["verification_eer"] == pytest.approx(1 - plain["verification_eer"], abs=0.01)


def test_no_resamples_no_interval():
    student, teacher = paired(3, noise=1.0)
    entry = matching_summary(student, teacher, identity, bootstrap=0)["metrics"]["verification_eer"]
    assert entry["ci_low"] is None and entry["ci_high"] is None and 0 < entry["value"] < 0.5


def test_same_seed_same_numbers_and_bootstrap_does_not_move_estimates():
    student, teacher = paired(4, noise=1.0)
    a = matching_summary(student, teacher, identity, bootstrap=100, seed=5)
    b = matching_summary(student, teacher, identity, bootstrap=100, seed=5)
    c = matching_summary(student, teacher, identity, bootstrap=20, seed=5)
    assert a == b
    assert values(a) == values(c)


def test_too_few_identities_are_skipped_or_refused():
    student, teacher = paired(5)
    few = identity < 4
    summary = matching_summary(student[few], teacher[few], identity[few], bootstrap=10)
    assert "match_1:10" in summary["skipped"] and "match_1:2_s2t" in summary["metrics"]
    with pytest.raises(XmdError, match="at least two identities"):
        matching_summary(student[:8], teacher[:8], identity[:8])
    with pytest.raises(XmdError, match="same shape"):
        matching_summary(student, teacher[:, :4], identity)
