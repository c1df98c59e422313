"""Speech quality on real eSpeak NG speech mixed with noise at known SNRs."""

import numpy as np
import pytest
import soundfile as sf
from scipy.stats import spearmanr
from speech_fixtures import (
    OTHER_VOICES,
    RATE,
    TARGET_VOICES,
    mix,
    noise,
    snr_estimates,
    synthesise,
)

from xmd_cli.errors import XmdError
from xmd_cli.quality import get_scorer
from xmd_cli.quality.speech import WADA_SNR_DB, WADA_TABLE, wada_snr, wada_table

SNRS = np.arange(-5.0, 31.0, 5.0)
STATIONARY = ("white", "pink", "speech-shaped")


@pytest.fixture(scope="module")
def speech():
    """(4 target voices x 2 utterances, 5 other voices x 2 utterances for babble and speech-shaped noise)."""
    return synthesise(TARGET_VOICES, 2, seed=1), synthesise(OTHER_VOICES, 2, seed=2)


@pytest.fixture(scope="module")
def scorer():
    return get_scorer("speech", key="quality.student")


def test_wada_table_is_the_simulation_it_claims():
    table = wada_table(samples=300_000, seed=5)
    assert np.all(np.diff(WADA_TABLE) > 0)
    low = WADA_SNR_DB <= 40  # above ~40 dB the small-sample simulation is too noisy to compare
    assert np.max(np.abs(table[low] - WADA_TABLE[low])) < 0.02


@pytest.mark.parametrize("kind", STATIONARY)
def test_snr_estimate_ranks_and_tracks_true_snr(speech, kind):
    targets, others = speech
    rows = snr_estimates(kind, targets, others, SNRS, seed=7, estimator=wada_snr)
    assert spearmanr(rows[:, 0], rows[:, 1])[0] >= 0.9
    for snr in SNRS:  # calibrated, not only ranked: mean error within 4 dB at every level
        assert abs(np.mean(rows[rows[:, 0] == snr, 1]) - snr) < 4.0


@pytest.mark.parametrize("kind", STATIONARY)
def test_combined_score_falls_as_snr_falls(speech, scorer, kind):
    targets, others = speech
    rng = np.random.default_rng(11)
    for utterance in targets:
        unit = noise(kind, len(utterance), others, rng)
        scores = [scorer.score((mix(utterance, unit, snr), RATE)).score for snr in SNRS[::-1]]
        assert all(b <= a for a, b in zip(scores, scores[1:])), scores
        assert scores[0] > 0.9 and scores[-1] < 0.1


def test_clean_speech_scores_high_and_path_equals_array(speech, scorer, tmp_path):
    utterance = speech[0][0]
    result = scorer.score((utterance, RATE))
    assert result.reason is None and result.score > 0.9
    assert set(result.signals) == {"snr_db", "active_ratio", "clipping", "over_range", "duration"}
    path = tmp_path / "clean.wav"
    sf.write(path, utterance, RATE, subtype="FLOAT")
    assert scorer.score(path).score == pytest.approx(result.score, abs=1e-6)


def test_silence_scores_zero_with_reason(scorer):
    for quiet in (np.zeros(2 * RATE), np.random.default_rng(0).standard_normal(2 * RATE) * 1e-5):
        result = scorer.score((quiet, RATE))
        assert result.score == 0.0 and "silent" in result.reason


def test_mostly_silent_recording_scores_low(speech, scorer):
    utterance = speech[0][1]
    burst = utterance[np.argmax(np.abs(utterance)) - RATE // 5:][: RATE // 3]  # a third of a second of speech
    quiet = np.random.default_rng(1).standard_normal(10 * RATE) * 1e-4
    quiet[RATE: RATE + len(burst)] += burst
    result = scorer.score((quiet, RATE))
    assert result.signals["active_ratio"] < 0.1 and result.score < 0.2


def test_clipped_speech_scores_low(speech, scorer):
    utterance = speech[0][0]
    clean = scorer.score((utterance, RATE))
    clipped = scorer.score((np.clip(utterance * 8, -0.5, 0.5), RATE))  # clipped, and at a level below full scale
    assert clean.signals["clipping"] < 1e-3
    assert clipped.signals["clipping"] > 0.01 and clipped.score < 0.2 < clean.score


def test_short_recording_scores_lower(speech, scorer):
    utterance = speech[0][0]
    middle = len(utterance) // 2
    short = scorer.score((utterance[middle - RATE // 8: middle + RATE // 8], RATE))
    assert short.signals["duration"] == pytest.approx(0.25)
    assert short.score < 0.1 < scorer.score((utterance, RATE)).score


def test_unreadable_input_scores_zero_with_reason(scorer, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4000))
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros(0), RATE)
    cases = {empty: "zero-length", corrupt: "not readable", tmp_path / "missing.wav": "not found",
             header_only: "no audio frames"}
    for path, words in cases.items():
        result = scorer.score(path)
        assert result.score == 0.0 and words in result.reason and str(path) in result.reason
        assert set(result.signals) == set(scorer.signal_names)
    assert scorer.score((np.zeros(0), RATE)).reason == "no audio samples (empty recording)"
    nan = scorer.score((np.full(RATE, np.nan), RATE))
    assert nan.score == 0.0 and "NaN" in nan.reason
    batch = scorer.score_batch([empty, (np.zeros(RATE), RATE)])
    assert [r.score for r in batch] == [0.0, 0.0]


def test_recipe_overrides_by_signal_name(speech):
    noisy = (mix(speech[0][0], noise("white", len(speech[0][0]), [], np.random.default_rng(3)), 12.0), RATE)
    default = get_scorer("speech").score(noisy).score
    stricter = get_scorer("speech", midpoints={"snr_db": 20.0}).score(noisy).score
    snr_ignored = get_scorer("speech", weights={"snr_db": 0.0}).score(noisy).score
    assert stricter < default < snr_ignored
    with pytest.raises(XmdError) as error:
        get_scorer("speech", weights={"snr_dbb": 1.0}, key="quality.student")
    assert "quality.student.weights.snr_dbb" in str(error.value)
    assert "snr_db, active_ratio, clipping, over_range, duration" in str(error.value)
