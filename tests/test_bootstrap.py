"""Bootstrap intervals and paired verdicts (xmd_cli.metrics.bootstrap*), and `xmd evaluate` carrying them.

The coverage test simulates trial lists with speaker structure (each speaker shifts
its target scores, each non-target score is shifted by both speakers) whose
population EER is known in closed form, and checks that the identity bootstrap's
95 % interval covers it about 95 % of the time while a trial-level bootstrap on the
same lists does not.
"""

import json
import math
from itertools import combinations

import numpy as np
import pytest
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.errors import XmdError
from xmd_cli.metrics.bootstrap import resample_counts
from xmd_cli.metrics.bootstrap_accuracy import paired_accuracy
from xmd_cli.metrics.bootstrap_verification import paired_verification, trial_units, verification_intervals
from xmd_cli.metrics.reweighted_verification import SortedSystem
from xmd_cli.metrics.verification import eer, eer_from_points, min_dcf, min_dcf_from_points, points_from_sorted

runner = CliRunner()


def speaker_trials(rng, n_speakers=30, targets_each=10, separation=2.5, target_spread=0.7, nontarget_spread=0.4):
    """Targets: 10 per speaker, score separation + a_i + noise. Non-targets: every speaker pair once,
    b_i + b_j + noise. a_i, b_i, noise Gaussian; returns (scores, labels, enroll ids, test ids)."""
    a = rng.normal(0, target_spread, n_speakers)
    b = rng.normal(0, nontarget_spread, n_speakers)
    own = np.repeat(np.arange(n_speakers), targets_each)
    i, j = np.triu_indices(n_speakers, 1)
    scores = np.concatenate((separation + a[own] + rng.normal(0, 1, own.size), b[i] + b[j] + rng.normal(0, 1, i.size)))
    labels = np.concatenate((np.ones(own.size, bool), np.zeros(i.size, bool)))
    return scores, labels, np.concatenate((own, i)), np.concatenate((own, j))


def population_eer(separation=2.5, target_spread=0.7, nontarget_spread=0.4):
    """Over infinitely many speakers, targets ~ N(sep, 1 + ts^2), non-targets ~ N(0, 1 + 2 ns^2):
    P_miss = P_fa where (sep - u) / s_t = u / s_n, so EER = Phi(-sep / (s_t + s_n))."""
    s_t, s_n = math.sqrt(1 + target_spread ** 2), math.sqrt(1 + 2 * nontarget_spread ** 2)
    return 0.5 * math.erfc(separation / (s_t + s_n) / math.sqrt(2))


def test_identity_bootstrap_covers_the_population_eer_and_trial_bootstrap_does_not():
    truth = population_eer()
    lists = 200
    covered = {"identity": 0, "trial": 0}
    for k in range(lists):
        scores, labels, enroll, test = speaker_trials(np.random.default_rng(k))
        for unit in covered:
            entry = verification_intervals(scores, labels, enroll, test, p_targets=(), resamples=200,
                                           seed=k, unit=unit)["metrics"]["eer"]
            covered[unit] += entry["ci_low"] <= truth <= entry["ci_high"]
    identity, trial = covered["identity"] / lists, covered["trial"] / lists
    # Measured: identity 0.96, trial 0.73 here (0.947 and 0.70 over 300 lists): trials sharing a
    # speaker are not independent, so resampling trials gives intervals about half as wide.
    assert 0.88 <= identity <= 0.99, identity
    assert trial < 0.85 and trial < identity - 0.1, (identity, trial)


def test_identical_score_sets_give_a_zero_width_unresolved_difference():
    scores, labels, enroll, test = speaker_trials(np.random.default_rng(0))
    result = paired_verification([scores, scores.copy()], labels, enroll, test, resamples=300)
    for name in ("eer", "min_dcf@0.01", "min_dcf@0.05"):
        (entry,) = result[name]
        assert entry["difference"] == entry["ci_low"] == entry["ci_high"] == 0.0
        assert entry["verdict"] == "not resolved"


def test_a_clearly_better_run_is_better_and_reversed_worse():
    rng = np.random.default_rng(1)
    scores, labels, enroll, test = speaker_trials(rng)
    better = scores + 2.0 * labels  # the same trials, targets pushed further up
    forward = paired_verification([scores, better], labels, enroll, test, resamples=300)
    backward = paired_verification([better, scores], labels, enroll, test, resamples=300)
    for name in ("eer", "min_dcf@0.05"):
        assert forward[name][0]["verdict"] == "better" and forward[name][0]["ci_high"] < 0
        assert backward[name][0]["verdict"] == "worse" and backward[name][0]["ci_low"] > 0
    # A small perturbation of one run is not resolved.
    nudged = scores + rng.normal(0, 0.01, scores.size)
    assert paired_verification([scores, nudged], labels, enroll, test, resamples=300,
                               p_targets=())["eer"][0]["verdict"] == "not resolved"
    # Accuracy: higher is better.
    classes = np.arange(400) % 5
    right = rng.random(400) < 0.6
    assert [d["verdict"] for d in paired_accuracy([right, right | (rng.random(400) < 0.5), right],
                                                  classes, resamples=300)] == ["better", "not resolved"]
    assert paired_accuracy([right | (classes < 3), right], classes, resamples=300)[0]["verdict"] == "worse"


def brute_force_eer(scores, labels):
    """Library-free EER with the documented conventions: thresholds "accept all" and each distinct score."""
    best = None
    targets, nontargets = scores[labels], scores[~labels]
    for u in [-np.inf, *sorted(set(scores.tolist()))]:
        p_miss, p_fa = np.mean(targets <= u), np.mean(nontargets > u)
        key = abs(p_fa - p_miss)
        if best is None or key < best[0]:
            best = (key, (p_fa + p_miss) / 2)
    return best[1]


def test_weighted_metrics_equal_the_explicitly_repeated_trials():
    rng = np.random.default_rng(3)
    for case in range(20):
        n, speakers = int(rng.integers(30, 200)), int(rng.integers(3, 9))
        enroll = rng.integers(0, speakers, n)
        labels = rng.random(n) < 0.4
        labels[:2] = (True, False)
        test = np.where(labels, enroll, (enroll + 1 + rng.integers(0, speakers - 1, n)) % speakers)
        scores = np.round(rng.normal(labels * 1.5, 1.0), 1)  # rounding makes ties
        counts = resample_counts(speakers, 5, seed=case)
        first, second, _ = trial_units(labels, enroll, test)
        system = SortedSystem(scores, labels, first, second)
        fast = system.metrics(counts, (0.05,), 1.0, 1.0)
        order = np.argsort(scores)
        for row, count in zip(fast, counts):
            weights = np.where(labels, count[enroll], count[enroll] * count[test])
            if weights[labels].sum() == 0 or weights[~labels].sum() == 0:
                assert np.isnan(row).all()
                continue
            repeated_scores, repeated_labels = np.repeat(scores, weights), np.repeat(labels, weights)
            expected = brute_force_eer(repeated_scores, repeated_labels)
            assert eer(repeated_scores, repeated_labels) == pytest.approx(expected, abs=1e-12)
            points = points_from_sorted(scores[order], labels[order], weights[order].astype(float))
            assert eer_from_points(points)[0] == pytest.approx(expected, abs=1e-12)
            assert row[0] == pytest.approx(expected, abs=1e-12)
            dcf = min_dcf(repeated_scores, repeated_labels, 0.05)
            assert min_dcf_from_points(points, 0.05)["normalised"] == pytest.approx(dcf, abs=1e-12)
            assert row[1] == pytest.approx(dcf, abs=1e-12)


def test_row_wise_and_block_evaluation_agree():
    scores, labels, enroll, test = speaker_trials(np.random.default_rng(4))
    first, second, names = trial_units(labels, enroll, test)
    system = SortedSystem(np.round(scores, 1), labels, first, second)
    counts = resample_counts(len(names), 40, seed=0)
    block = system.metrics(counts, (0.01, 0.05), 1.0, 1.0)
    system.ROW_WISE_ABOVE = 0
    rows = system.metrics(counts, (0.01, 0.05), 1.0, 1.0)
    assert np.array_equal(block[:, 0], rows[:, 0]) and np.allclose(block, rows, rtol=1e-12, atol=1e-15)


def test_trial_labels_that_contradict_identities_are_refused():
    with pytest.raises(XmdError, match=r"trial 2 is a target trial between two identities \('b', 'c'\)"):
        trial_units([0, 1], ["a", "b"], ["b", "c"])


# ---------------------------------------------------------------- through the CLI
def xmd(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def persons(tmp_path_factory):
    """The tiny synthetic-persons manifest (8 speakers x 4 utterances) and a trial list of every pair."""
    work = tmp_path_factory.mktemp("persons")
    xmd("prepare", "synthetic-persons", "--tiny", "-w", work, "-q")
    samples = [json.loads(line) for line in (work / "manifest.jsonl").read_text().splitlines()]
    pairs = [(int(a["label"] == b["label"]), a["id"], b["id"]) for a, b in combinations(samples, 2)]
    (work / "all.txt").write_text("".join(f"{t} {e} {s}\n" for t, e, s in pairs))
    (work / "half.txt").write_text("".join(f"{t} {e} {s}\n" for t, e, s in pairs[::2]))
    return work, pairs


def score_run(work, pairs, name, scores, trials="all.txt", *extra):
    (work / f"{name}.txt").write_text("".join(f"{e} {t} {s:.6f}\n" for (_, e, t), s in zip(pairs, scores)))
    result = xmd("evaluate", "-w", work, "--scores", work / f"{name}.txt", "--trials", work / trials,
                 "--out", work / name, "--set", "evaluation.bootstrap=200", "--json", *extra)
    return json.loads(result.stdout)


@pytest.mark.slow
def test_reports_carry_intervals_and_compare_gives_paired_verdicts(persons):
    work, pairs = persons
    rng = np.random.default_rng(0)
    labels = np.array([t for t, _, _ in pairs])
    noisy = labels + rng.normal(0, 1.0, labels.size)
    report = score_run(work, pairs, "noisy", noisy)
    eer_entry = report["metrics"]["eer"]
    assert eer_entry["ci_low"] <= eer_entry["value"] <= eer_entry["ci_high"] and eer_entry["chance"] == 0.5
    assert report["metrics"]["min_dcf@0.01"]["ci_high"] is not None
    assert report["protocol"]["bootstrap_unit"] == "identity" and report["protocol"]["bootstrap_units"] == 8
    assert report["protocol"]["bootstrap"] == 200 and (work / "noisy" / "scores.npz").exists()
    assert "| eer |" in (work / "noisy" / "report.md").read_text()
    score_run(work, pairs, "sharp", labels * 4.0 + rng.normal(0, 1.0, labels.size))
    score_run(work, pairs, "same", noisy)

    compared = json.loads(xmd("evaluate", "--compare", work / "noisy" / "report.json", work / "sharp" / "report.json",
                              work / "same" / "report.json", "--json").stdout)
    sharp, same = compared["paired"]["metrics"]["eer"]
    assert sharp["verdict"] == "better" and sharp["ci_high"] < 0
    assert same["verdict"] == "not resolved" and same["ci_low"] == same["ci_high"] == 0.0
    row = next(r for r in compared["rows"] if r[0] == "eer - noisy")
    assert row[2].endswith("better") and row[3].endswith("not resolved")
    backward = json.loads(xmd("evaluate", "--compare", work / "sharp", work / "noisy", "--json").stdout)
    assert backward["paired"]["metrics"]["eer"][0]["verdict"] == "worse"


@pytest.mark.slow
def test_compare_refuses_reports_on_different_trial_lists(persons):
    work, pairs = persons
    rng = np.random.default_rng(1)
    score_run(work, pairs, "full", rng.normal(size=len(pairs)))
    score_run(work, pairs[::2], "halved", rng.normal(size=len(pairs[::2])), "half.txt")
    result = xmd("evaluate", "--compare", work / "full" / "report.json", work / "halved" / "report.json", code=1)
    message = " ".join(result.output.split())
    assert "were made on different trial lists" in message
    assert "full/report.json" in message and "halved/report.json" in message


def test_a_score_file_without_known_speakers_says_its_interval_is_absent(persons, tmp_path):
    work, pairs = persons
    (tmp_path / "s.txt").write_text("".join(f"{e} {t} {i % 7}\n" for i, (_, e, t) in enumerate(pairs)))
    report = json.loads(xmd("evaluate", "-w", tmp_path / "nowhere", "--scores", tmp_path / "s.txt", "--trials",
                            work / "all.txt", "--out", tmp_path / "r", "--json").stdout)
    assert isinstance(report["metrics"]["eer"], float) and not (tmp_path / "r" / "scores.npz").exists()
    assert report["protocol"]["intervals"].startswith("absent: ") and "too narrow" in report["protocol"]["intervals"]
