"""A small noise and room-impulse-response set, generated, so augmentation runs offline.

`write_noise_rir(folder)` writes folder/noise/*.wav (white, pink, brown, and a babble of
gliding tones with syllable-rate loudness changes: speech-like without a speech synthesiser) and
folder/rir/*.wav (exponentially decaying noise after a direct-path impulse, reverberation times
0.2-0.8 s). Point `training.augment.noise_dir` and `rir_dir` at the two folders.
A pure function of its seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

NOISE_KINDS = ("white", "pink", "brown", "babble")


def _coloured(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(size)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0
    power = 0.5 if kind == "pink" else 1.0  # amplitude 1/f^0.5 (pink) or 1/f (brown)
    return np.fft.irfft(spectrum / freqs ** power, n=size)


def _babble(size: int, rate: int, rng: np.random.Generator, voices: int = 6) -> np.ndarray:
    t = np.arange(size) / rate
    total = np.zeros(size)
    for _ in range(voices):
        f0, f1 = rng.uniform(100, 300, size=2)
        chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1])))
        syllables = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 2 * np.pi)))
        total += chirp * syllables
    return total


def _rir(rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(rt60 * rate)) / rate
    tail = 0.2 * rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60: exp(-6.9) = 1e-3
    tail = np.clip(tail, -0.9, 0.9)
    tail[0] = 1.0  # the direct path: the strongest tap, first (speechbrain aligns on it)
    return tail


def write_noise_rir(folder: str | Path, *, noises: int = 4, rirs: int = 3, sample_rate: int = 16000,
                    seconds: float = 3.0, seed: int = 0) -> tuple[Path, Path]:
    """Write `noises` noise files and `rirs` RIR files under `folder`; returns (noise_dir, rir_dir)."""
    rng = np.random.default_rng([seed, 4049])
    noise_dir, rir_dir = Path(folder) / "noise", Path(folder) / "rir"
    noise_dir.mkdir(parents=True, exist_ok=True)
    rir_dir.mkdir(parents=True, exist_ok=True)
    size = int(seconds * sample_rate)
    for index in range(noises):
        kind = NOISE_KINDS[index % len(NOISE_KINDS)]
        wave = _babble(size, sample_rate, rng) if kind == "babble" else _coloured(kind, size, rng)
        wave = 0.5 * wave / np.abs(wave).max()
        sf.write(noise_dir / f"{kind}-{index:03d}.wav", wave.astype(np.float32), sample_rate, subtype="FLOAT")
    for index, rt60 in enumerate(np.linspace(0.2, 0.8, rirs)):
        sf.write(rir_dir / f"rir-{index:03d}-rt{int(rt60 * 1000)}ms.wav", _rir(sample_rate, float(rt60), rng)
                 .astype(np.float32), sample_rate, subtype="FLOAT")
    return noise_dir, rir_dir
