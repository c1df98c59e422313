"""Waveform augmentation with speechbrain.augment: noise files, room impulse responses, speed, drops.

`training.augment` (docs/training.md, "Augmentation") switches each on:
  speed       speechbrain SpeedPerturb, before the crop (so crops keep their length)
  rir_dir     convolution with a room impulse response (speechbrain's `reverberate`, what AddReverb runs)
  noise_dir   speechbrain AddNoise at an SNR drawn from noise_snr, the noise a random piece of a random file
  drop_freq   speechbrain DropFreq;  drop_chunk   speechbrain DropChunk
Reverberation and noise reach a sample with `probability` (WeSpeaker's aug_prob, 0.6 in its
VoxCeleb recipes), and then one of the two when both are set, as WeSpeaker does: every sample under
both at once, always, left a student trained on 240 utterances at EER 41 % (docs/results.md).
Files are drawn with the dataset's numpy generator and speechbrain's own draws (SNR, speed,
bands, chunks) come from torch's RNG, seeded inside `fork_rng` from (seed, epoch, index): an
item is the same whatever the worker, the order or a resume, and the global torch RNG is untouched.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from xmd_cli.data.media import read_audio
from xmd_cli.errors import XmdError


def wav_files(folder: str | Path, key: str) -> list[Path]:
    """Every .wav under `folder` (any depth: MUSAN's noise/ music/ speech/), sorted so draws are reproducible."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise XmdError(f"training.augment.{key} {folder}: no such folder",
                       hint="point it at a folder of .wav files (MUSAN, RIRS_NOISES, or data.synthetic.noise_rir)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
    if not files:
        raise XmdError(f"training.augment.{key} {folder}: no .wav files under it")
    return files


@lru_cache(maxsize=64)
def _cached(path: Path, rate: int) -> np.ndarray:
    # Noise and RIR files are few and reused every epoch: keep the most recent ones decoded.
    return read_audio(path, target_rate=rate)[0]


def _piece(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` samples of `noise` from a random start, wrapped around when the file is shorter."""
    start = int(rng.integers(0, noise.size))
    return np.resize(np.roll(noise, -start), length)


class WaveAugmenter:
    """The augmentations `training.augment` switches on, for one sample rate."""

    def __init__(self, *, sample_rate: int, noise_dir=None, noise_snr=(0.0, 15.0), rir_dir=None, speed=None,
                 drop_chunk: bool = False, drop_freq: bool = False, probability: float = 0.6):
        if len(noise_snr) != 2 or noise_snr[0] > noise_snr[1]:
            raise XmdError(f"training.augment.noise_snr must be [low, high] dB with low <= high, got {list(noise_snr)}")
        if speed is not None and (not speed or min(speed) <= 0):
            raise XmdError(f"training.augment.speed must list factors above 0, e.g. [0.9, 1.0, 1.1]; got {speed}")
        self.rate = int(sample_rate)
        self.noises = wav_files(noise_dir, "noise_dir") if noise_dir else []
        self.rirs = wav_files(rir_dir, "rir_dir") if rir_dir else []
        self.noise_snr = tuple(float(x) for x in noise_snr)
        self.speeds = [float(s) * 100 for s in speed] if speed else []  # speechbrain takes percent
        self.drop_chunk, self.drop_freq = drop_chunk, drop_freq
        if not 0 <= probability <= 1:
            raise XmdError(f"training.augment.probability must be in [0, 1], got {probability}")
        self.probability = float(probability)

    @classmethod
    def from_config(cls, config, sample_rate: int) -> WaveAugmenter | None:
        """From a `training.augment` section; None when every switch is off."""
        if config is None or not config.enabled:
            return None
        return cls(sample_rate=sample_rate, noise_dir=config.noise_dir, noise_snr=config.noise_snr,
                   rir_dir=config.rir_dir, speed=config.speed, drop_chunk=config.drop_chunk,
                   drop_freq=config.drop_freq, probability=config.probability)

    def speed(self, wave: np.ndarray, seed: int) -> np.ndarray:
        """Speed perturbation of the whole utterance (before the crop)."""
        if not self.speeds:
            return wave
        from speechbrain.augment.time_domain import SpeedPerturb

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = SpeedPerturb(self.rate, speeds=self.speeds)(torch.from_numpy(wave)[None])
        return out[0].numpy()

    def __call__(self, wave: np.ndarray, rng: np.random.Generator, seed: int) -> np.ndarray:
        """Reverberation or noise (with `probability`), then frequency and chunk drops of a cropped waveform."""
        batch = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
        lengths = torch.ones(1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)  # +1: not the stream the speed draw used
            kinds = [kind for kind, files in (("reverb", self.rirs), ("noise", self.noises)) if files]
            if kinds and rng.random() < self.probability:
                kind = kinds[int(rng.integers(len(kinds)))] if len(kinds) > 1 else kinds[0]
                batch = self._reverb(batch, rng) if kind == "reverb" else self._noise(batch, lengths, rng)
            if self.drop_freq:
                from speechbrain.augment.time_domain import DropFreq

                batch = DropFreq()(batch)
            if self.drop_chunk:
                from speechbrain.augment.time_domain import DropChunk

                batch = DropChunk()(batch, lengths)
        return batch[0].numpy()

    def _reverb(self, batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        from speechbrain.processing.signal_processing import reverberate

        rir = _cached(self.rirs[int(rng.integers(len(self.rirs)))], self.rate)
        return reverberate(batch, torch.from_numpy(np.ascontiguousarray(rir, dtype=np.float32)), rescale_amp="avg")

    def _noise(self, batch: torch.Tensor, lengths: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        from speechbrain.augment.time_domain import AddNoise

        noise = _cached(self.noises[int(rng.integers(len(self.noises)))], self.rate)
        piece = torch.from_numpy(np.ascontiguousarray(_piece(noise, batch.shape[1], rng), dtype=np.float32))
        add = AddNoise(snr_low=self.noise_snr[0], snr_high=self.noise_snr[1], noise_funct=lambda w: piece[None])
        return add(batch, lengths)
