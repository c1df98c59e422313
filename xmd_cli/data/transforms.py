"""Training-time input transforms: random crops and noise for speech, crops and flips for images.

They work on numpy arrays and PIL images with an explicit `np.random.Generator`,
so a dataset can seed them per (seed, epoch, index) and a resumed run sees the
same augmentations. (The speech features themselves are part of the student:
`xmd_cli.models.fbank`.)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from xmd_cli.errors import XmdError


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
