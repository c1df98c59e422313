"""Real synthetic speech and calibrated noise for the speech-quality tests and docs/quality.md.

Speech comes from eSpeak NG through `xmd_cli.data.synthetic.voices` (the same
voices the synthetic-persons demo uses). Noise is mixed at a *known* SNR,
defined as in the demo generator: power of the active speech (frames within
40 dB of the loudest) over the power of the noise. Everything is a pure
function of its seed.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import welch

from xmd_cli.data.synthetic.degrade import active_power, coloured_noise
from xmd_cli.data.synthetic.voices import (
    ESPEAK_RATE,
    Speaker,
    VoiceSpec,
    resample,
    sentence,
)

RATE = 16000
NOISE_KINDS = ("white", "pink", "speech-shaped", "babble")


def _voice(index: int, male: bool, language: str) -> VoiceSpec:
    base = 100 + 9 * index if male else 190 + 11 * index
    tract = 100 if male else 113
    return VoiceSpec(name=f"xmdq{index:02d}", language=language, gender="male" if male else "female",
                     pitch_base_hz=base, pitch_top_hz=int(base * 1.5),
                     formants=(100,) + (tract + (index % 3),) * 8, breath=2 + index % 4,
                     rate_wpm=150 + 7 * index, pitch_range=50 + 5 * (index % 4), word_gap=index % 3)


# Speakers under test, and a disjoint set whose voices make babble and speech-shaped noise.
TARGET_VOICES = [_voice(0, True, "en-us"), _voice(1, False, "en"), _voice(2, True, "en"),
                 _voice(3, False, "en-us")]
OTHER_VOICES = [_voice(4 + i, i % 2 == 0, ("en-us", "en", "en-029")[i % 3]) for i in range(5)]


def synthesise(voices: list[VoiceSpec], per_voice: int, seed: int) -> list[np.ndarray]:
    """`per_voice` utterances for each voice: float64 at 16 kHz, peak 0.5, no added noise."""
    rng = np.random.default_rng(seed)
    out = []
    with Speaker(voices) as speaker:
        for spec in voices:
            for _ in range(per_voice):
                raw = speaker.say(sentence(rng), spec.name, rate_wpm=spec.rate_wpm, pitch=50,
                                  pitch_range=spec.pitch_range, word_gap=spec.word_gap,
                                  seed=int(rng.integers(2 ** 31)))
                x = resample(raw.astype(np.float64) / 32768.0, ESPEAK_RATE, RATE)
                # Leading and trailing pauses, as in a real recording.
                x = np.concatenate([np.zeros(int(0.2 * RATE)), x, np.zeros(int(0.15 * RATE))])
                out.append(0.5 * x / np.max(np.abs(x)))
    return out


def speech_shaped_noise(length: int, speech: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Unit-power Gaussian noise with the long-term average spectrum of `speech`."""
    _, ltas = welch(np.concatenate(speech), fs=RATE, nperseg=512)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    gain = np.sqrt(np.interp(np.linspace(0, len(ltas) - 1, len(spectrum)), np.arange(len(ltas)), ltas))
    noise = np.fft.irfft(spectrum * gain, n=length)
    return noise / np.sqrt(np.mean(noise ** 2))


def babble(length: int, speech: list[np.ndarray], talkers: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power sum of `talkers` other utterances, each looped from a random offset."""
    picks = rng.choice(len(speech), size=talkers, replace=False)
    total = np.zeros(length)
    for i in picks:
        x = speech[i][np.abs(speech[i]) > 0]  # drop digital silence so talkers overlap
        x = np.tile(x, length // len(x) + 2)
        start = int(rng.integers(len(x) - length))
        part = x[start:start + length]
        total += part / np.sqrt(np.mean(part ** 2))
    return total / np.sqrt(np.mean(total ** 2))


def noise(kind: str, length: int, others: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    if kind in ("white", "pink"):
        return coloured_noise(length, kind, rng)
    if kind == "speech-shaped":
        return speech_shaped_noise(length, others, rng)
    if kind == "babble":
        return babble(length, others, talkers=4, rng=rng)
    raise ValueError(kind)


def mix(speech: np.ndarray, unit_noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Speech plus noise at `snr_db` (active speech power / noise power), peak-limited to 0.9."""
    scaled = unit_noise * np.sqrt(active_power(speech) / 10 ** (snr_db / 10))
    x = speech + scaled
    return x * min(1.0, 0.9 / np.max(np.abs(x)))


def snr_estimates(kind: str, targets: list[np.ndarray], others: list[np.ndarray], snrs, seed: int,
                  estimator) -> np.ndarray:
    """Rows (true SNR, estimate) for every target utterance mixed with `kind` noise at every SNR."""
    rng = np.random.default_rng(seed)
    rows = []
    for speech in targets:
        unit = noise(kind, len(speech), others, rng)
        rows += [(snr, estimator(mix(speech, unit, snr))) for snr in snrs]
    return np.array(rows)


def markdown_table(utterances_per_voice: int = 3, seed: int = 1) -> str:
    """The SNR table of docs/quality.md: `python tests/speech_fixtures.py` prints it."""
    from scipy.stats import spearmanr

    from xmd_cli.quality.speech import wada_snr

    targets = synthesise(TARGET_VOICES, utterances_per_voice, seed=seed)
    others = synthesise(OTHER_VOICES, 2, seed=seed + 1)
    snrs = np.arange(-5.0, 31.0, 5.0)
    lines = ["| noise | Spearman | " + " | ".join(f"{s:g} dB" for s in snrs) + " |",
             "|---|---|" + "---|" * len(snrs)]
    for kind in NOISE_KINDS:
        rows = snr_estimates(kind, targets, others, snrs, seed + 6, wada_snr)
        cells = [f"{np.mean(rows[rows[:, 0] == s, 1]):.1f} ({np.mean(rows[rows[:, 0] == s, 1]) - s:+.1f})"
                 for s in snrs]
        lines.append(f"| {kind} | {spearmanr(rows[:, 0], rows[:, 1])[0]:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
