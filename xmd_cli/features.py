"""Student input pipelines: log-mel fbank for speech, crops and noise, image transforms.

Speech features are computed inside the student (`SpeechFeatures` is its first
layer), on whatever device the student runs on, one padded batch at a time. The
fbank is Kaldi's (the one `torchaudio.compliance.kaldi.fbank` computes, so it
matches WeSpeaker / Kaldi recipes), written batched: `kaldi.fbank` takes one
channel a call, and a Python loop over a batch costs kernel launches per
utterance on a GPU. On 2 busy CPU cores, 32 x 2 s took 0.47 s batched against
1.16 s for the `kaldi.fbank` loop (torchaudio's MelSpectrogram: 0.21 s, but its
Hz-domain triangles, centred window and no DC removal or pre-emphasis differ from
Kaldi, whose features WeSpeaker and Kaldi recipes and checkpoints use). The
batched form equals `kaldi.fbank` to float rounding (tests/test_features.py).

Random crops and noise work on numpy arrays with an explicit `np.random.Generator`,
so a dataset can seed them per (seed, epoch, index) and a resumed run sees the
same augmentations.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.compliance.kaldi import get_mel_banks

from xmd_cli.errors import XmdError

# Kaldi's fbank expects int16-scaled samples; soundfile gives [-1, 1]. Scaling does
# not change mean-normalised features except through the log floor below.
INT16_SCALE = 32768.0
PREEMPHASIS = 0.97


def _povey_window(length: int) -> torch.Tensor:
    # Kaldi's default window: a Hann window raised to 0.85 (no zero at the ends).
    return torch.hann_window(length, periodic=False, dtype=torch.float64).pow(0.85).float()


class SpeechFeatures(nn.Module):
    """Waveform batch (B, samples) -> mean-normalised log-mel fbank (B, frames, n_mels).

    Kaldi framing (25 ms windows every 10 ms, `snip_edges`), DC removal,
    pre-emphasis 0.97, Povey window, power spectrum, Kaldi mel banks, log. Then the
    mean over time of each utterance is subtracted (cepstral mean normalisation).
    With `lengths` (relative lengths in (0, 1], speechbrain's convention), padded
    frames neither enter the mean nor keep a value: they are set to 0.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 80, frame_ms: float = 25.0,
                 shift_ms: float = 10.0, low_hz: float = 20.0, high_hz: float = 0.0,
                 mean_norm: bool = True):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.window_size = int(sample_rate * frame_ms / 1000)
        self.window_shift = int(sample_rate * shift_ms / 1000)
        self.n_fft = 1 << (self.window_size - 1).bit_length()  # Kaldi rounds up to a power of two
        self.mean_norm = mean_norm
        banks, _ = get_mel_banks(n_mels, self.n_fft, float(sample_rate), low_hz, high_hz, 100.0, -500.0, 1.0)
        # Kaldi's banks omit the Nyquist bin; pad it with zero weight.
        self.register_buffer("mel_banks", F.pad(banks.float(), (0, 1)).T.contiguous(), persistent=False)
        self.register_buffer("window", _povey_window(self.window_size), persistent=False)

    def num_frames(self, num_samples: torch.Tensor | int) -> torch.Tensor | int:
        """Frames Kaldi makes of `num_samples` samples (snip_edges: only whole windows)."""
        if isinstance(num_samples, torch.Tensor):
            return torch.clamp((num_samples - self.window_size) // self.window_shift + 1, min=0)
        return max(0, (int(num_samples) - self.window_size) // self.window_shift + 1)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if wave.dim() != 2:
            raise ValueError(f"SpeechFeatures expects (batch, samples), got shape {tuple(wave.shape)}")
        if wave.shape[1] < self.window_size:
            raise XmdError(f"speech input of {wave.shape[1]} samples is shorter than one "
                           f"{self.window_size}-sample analysis window",
                           hint="use longer utterances or a longer student.crop_seconds")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            feats = self._log_fbank(wave.float() * INT16_SCALE)
        if lengths is None:
            mask = None
        else:
            samples = torch.round(lengths.to(wave.device).float() * wave.shape[1]).long()
            valid = torch.clamp(self.num_frames(samples), min=1)
            mask = (torch.arange(feats.shape[1], device=wave.device)[None, :] < valid[:, None])
            mask = mask.unsqueeze(-1).to(feats.dtype)
        if self.mean_norm:
            if mask is None:
                feats = feats - feats.mean(dim=1, keepdim=True)
            else:
                mean = (feats * mask).sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True)
                feats = (feats - mean) * mask
        elif mask is not None:
            feats = feats * mask
        return feats

    def _log_fbank(self, wave: torch.Tensor) -> torch.Tensor:
        frames = wave.unfold(1, self.window_size, self.window_shift)  # (B, T, window)
        frames = frames - frames.mean(dim=-1, keepdim=True)  # remove DC offset per frame
        # Pre-emphasis x[j] - 0.97 x[j-1], with x[-1] = x[0] as Kaldi does.
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = (frames - PREEMPHASIS * previous) * self.window
        power = torch.fft.rfft(frames, n=self.n_fft).abs().pow(2.0)
        mel = power @ self.mel_banks
        return torch.clamp(mel, min=torch.finfo(mel.dtype).eps).log()


# ---------------------------------------------------------------- waveform augmentation
def random_crop(wave: np.ndarray, seconds: float, rng: np.random.Generator, *, sample_rate: int) -> np.ndarray:
    """A random `seconds`-long piece of `wave`; a shorter wave is repeated (wrapped) to fill it.

    Wrapping rather than zero padding keeps every frame speech-like, so short
    utterances do not teach the student that silence is a speaker trait.
    """
    length = int(round(seconds * sample_rate))
    if length <= 0:
        raise XmdError(f"crop of {seconds} s at {sample_rate} Hz is empty; set student.crop_seconds > 0")
    if wave.size == 0:
        raise XmdError("cannot crop an empty waveform")
    if wave.size >= length:
        start = int(rng.integers(0, wave.size - length + 1))
        return wave[start:start + length]
    start = int(rng.integers(0, wave.size))
    return np.resize(np.roll(wave, -start), length)


def _pink(size: int, rng: np.random.Generator) -> np.ndarray:
    # White noise shaped to a 1/f power spectrum (amplitude 1/sqrt(f)) in the frequency domain.
    spectrum = np.fft.rfft(rng.standard_normal(size))
    freqs = np.arange(spectrum.size, dtype=np.float64)
    freqs[0] = 1.0  # keep the DC term finite; it is removed below anyway
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n=size)
    return noise - noise.mean()


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator, kind: str = "white") -> np.ndarray:
    """`wave` plus white or pink noise scaled so that signal power / noise power is `snr_db`.

    The scale uses the power of the noise actually drawn, so the SNR is exact, not
    only in expectation. A silent wave is returned unchanged (no SNR is defined).
    """
    if kind == "white":
        noise = rng.standard_normal(wave.size)
    elif kind == "pink":
        noise = _pink(wave.size, rng)
    else:
        raise XmdError(f"noise kind {kind!r} is not one of white, pink")
    signal_power = float(np.mean(np.square(wave, dtype=np.float64)))
    noise_power = float(np.mean(np.square(noise)))
    if signal_power == 0.0 or noise_power == 0.0:
        return wave.copy()
    scale = math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (wave + scale * noise).astype(wave.dtype, copy=False)


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """10 log10(P_clean / P_(noisy - clean)): what `add_noise` promises."""
    noise = noisy.astype(np.float64) - clean.astype(np.float64)
    return 10.0 * math.log10(np.mean(np.square(clean, dtype=np.float64)) / np.mean(np.square(noise)))


# ---------------------------------------------------------------- images
# ImageNet statistics: torchvision's ResNet-18 weights expect them, and the other
# image students lose nothing by sharing one normalisation.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


class ImageTransform:
    """PIL RGB image -> normalised float tensor (3, size, size), augmented in training.

    Training: a random crop covering `crop_scale` of the area (aspect ratio kept
    near 1), resized to `size`, and a horizontal flip with probability 1/2.
    Evaluation: resize only. Randomness comes from the `rng` passed to each call.
    """

    def __init__(self, size: int, train: bool, *, crop_scale: tuple[float, float] = (0.7, 1.0),
                 flip: bool = True):
        if size < 8:
            raise XmdError(f"image size {size} is too small; use at least 8 pixels (e.g. 64, 112, 128)")
        self.size, self.train, self.crop_scale, self.flip = int(size), train, crop_scale, flip

    def __call__(self, image, rng: np.random.Generator | None = None) -> torch.Tensor:
        import torchvision.transforms.functional as TF

        if self.train:
            if rng is None:
                raise ValueError("a training transform needs an rng (seed it per epoch and index)")
            width, height = image.size
            area = width * height * rng.uniform(*self.crop_scale)
            ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            crop_w = min(width, max(1, int(round(math.sqrt(area * ratio)))))
            crop_h = min(height, max(1, int(round(math.sqrt(area / ratio)))))
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            image = TF.resized_crop(image, top, left, crop_h, crop_w, [self.size, self.size], antialias=True)
            if self.flip and rng.random() < 0.5:
                image = TF.hflip(image)
        else:
            image = TF.resize(image, [self.size, self.size], antialias=True)
        return TF.normalize(TF.to_tensor(image), IMAGE_MEAN, IMAGE_STD)


def image_transform(size: int, train: bool, *, modality: str = "image") -> ImageTransform:
    """The transform for `modality` ('face' or 'image').

    Faces are aligned crops, so training crops stay large (90-100 % of the area)
    and keep the face where the student expects it; horizontal flips stay on, as
    in ArcFace/CosFace training, because a mirrored face is the same person.
    Generic images get the wider crop range (70-100 %) and flips.
    """
    if modality == "face":
        return ImageTransform(size, train, crop_scale=(0.9, 1.0), flip=True)
    return ImageTransform(size, train, crop_scale=(0.7, 1.0), flip=True)
