"""Image quality: sharpness, noise, contrast and exposure, measured on grey levels 0..255.

The measurements here are shared with the face scorer, which applies them to the
aligned face crop instead of the whole picture.

- Sharpness is the variance of the Laplacian (Pech-Pacheco et al. 2000), minus
  what the estimated noise alone contributes to it (for white noise of standard
  deviation sigma the 4-neighbour Laplacian has variance 20 sigma^2), so that
  added noise is not read as detail; reported as log10.
- Noise is Donoho's robust estimate: the median absolute value of the finest
  diagonal Haar wavelet band over 0.6745. The median ignores the few large
  coefficients that edges make.
- Brightness is the mean grey level, contrast its standard deviation (RMS
  contrast), both in 0..1; over-exposure is the share of pixels at >= 250.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from xmd_cli.quality.combine import QualityResult, Scorer, Signal, combine

# Images larger than this (longer side, pixels) are reduced before measuring: the
# measures describe the picture a model would see, and a 24-megapixel photo would
# otherwise cost a second per image.
MAX_SIDE = 1024
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as PIL's "L" mode


def grey(pixels: np.ndarray) -> np.ndarray:
    """H x W x 3 (any numeric type, 0..255) or H x W -> float64 grey levels 0..255."""
    pixels = np.asarray(pixels, dtype=np.float64)
    return pixels @ LUMA if pixels.ndim == 3 else pixels


def noise_sigma(g: np.ndarray) -> float:
    """Standard deviation of white noise in grey levels (Donoho's MAD of the diagonal Haar band)."""
    h, w = g.shape[0] // 2 * 2, g.shape[1] // 2 * 2
    if h < 2 or w < 2:
        return 0.0
    g = g[:h, :w]
    diagonal = (g[0::2, 0::2] - g[0::2, 1::2] - g[1::2, 0::2] + g[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(diagonal)) / 0.6745)


def detail_variance(laplacian: np.ndarray, sigma: float) -> float:
    """Variance of the Laplacian that is not explained by noise of std `sigma` (>= 0)."""
    return max(float(laplacian.var()) - 20.0 * sigma ** 2, 0.0)


def sharpness(laplacian: np.ndarray, sigma: float) -> float:
    """log10 of the noise-corrected Laplacian variance; 1e-3 stands for 'no detail at all'."""
    return float(np.log10(max(detail_variance(laplacian, sigma), 1e-3)))


def tone_signals(g: np.ndarray) -> dict[str, float]:
    return {"brightness": float(g.mean() / 255.0), "contrast": float(g.std() / 255.0),
            "overexposed": float(np.mean(g >= 250.0))}


def image_signals(g: np.ndarray) -> dict[str, float]:
    """Every signal of the image scorer for a grey image."""
    sigma = noise_sigma(g)
    return {"sharpness": sharpness(ndimage.laplace(g), sigma), "noise": sigma, **tone_signals(g)}


# ---------------------------------------------------------------- shared squashing constants
# Chosen on matplotlib's grace_hopper.jpg and its degradations and on the
# synthetic-persons faces (docs/quality.md): a clean photo sits in the flat top of
# every logistic, so that only damage moves the score.
SHARPNESS = Signal("sharpness", 0.9, 3.0, 1.0, "log10 grey^2",
                   "noise-corrected variance of the Laplacian, log10; blur and low resolution lower it")
NOISE = Signal("noise", 15.0, -0.4, 1.0, "grey levels", "estimated std of white noise (0..255 scale)")
BRIGHTNESS = Signal("brightness", 0.15, 40.0, 1.0, "0..1", "mean grey level; under-exposure lowers it")
CONTRAST = Signal("contrast", 0.05, 60.0, 1.0, "0..1", "RMS contrast: std of grey levels")
OVEREXPOSED = Signal("overexposed", 0.25, -30.0, 1.0, "share", "share of pixels burnt out (grey >= 250)")


FRAME_SIGNALS = (SHARPNESS, NOISE, BRIGHTNESS, CONTRAST, OVEREXPOSED)


def frame_quality(image, signals: tuple[Signal, ...] = FRAME_SIGNALS) -> tuple[float, dict[str, float]]:
    """No-reference quality of a whole picture: sharpness, noise, exposure and contrast in one score.

    The picture (reduced to at most `MAX_SIDE` pixels) is measured with the
    image scorer's signals and they are combined by their weighted product, as
    every scorer combines its signals (`xmd_cli.quality.combine`). Nothing is
    detected: the face scorer uses it for photos where MTCNN finds no face.

    Parameters
    ----------
    image : PIL.Image.Image
        The picture, any mode (it is converted to RGB and then to grey levels).
    signals : tuple of Signal, optional
        Which signals count, with their mid-points and weights; names among
        `sharpness`, `noise`, `brightness`, `contrast` and `overexposed`. The
        image scorer's defaults when not given.

    Returns
    -------
    score : float
        In [0, 1]; 1 when every signal is fine, near 0 when one fails.
    values : dict of str to float
        The raw signals measured on the picture, by name.

    Examples
    --------
    >>> import numpy as np
    >>> from PIL import Image
    >>> rng = np.random.default_rng(0)
    >>> checks = np.kron(rng.integers(60, 200, (8, 8)), np.ones((16, 16)))  # sharp edges, mid-grey
    >>> sharp = Image.fromarray(checks.astype(np.uint8))
    >>> score, values = frame_quality(sharp)
    >>> score > 0.9, sorted(values)
    (True, ['brightness', 'contrast', 'noise', 'overexposed', 'sharpness'])
    >>> dark = Image.fromarray((checks * 0.1).astype(np.uint8))
    >>> frame_quality(dark)[0] < 0.1
    True
    """
    values = image_signals(grey(np.asarray(limit_size(image.convert("RGB")))))
    return combine(values, signals), values


def as_rgb_image(item):
    """A PIL RGB image from a path or a PIL image; `XmdError` (with the reason) when unreadable."""
    from PIL import Image

    from xmd_cli.data.media import load_image

    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, (str, Path)):
        return load_image(item)
    raise TypeError(f"an image scorer takes a path or a PIL image, got {type(item).__name__}")


def limit_size(image):
    if max(image.size) <= MAX_SIDE:
        return image
    from PIL import Image

    factor = MAX_SIDE / max(image.size)
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                        Image.Resampling.BOX)


class ImageScorer(Scorer):
    """Quality of a whole picture (the student or teacher input of image tasks)."""

    modality = "image"
    DEFAULTS = (SHARPNESS, NOISE, BRIGHTNESS, CONTRAST, OVEREXPOSED)

    def measure(self, item) -> dict[str, float] | QualityResult:
        image = self.load(item, as_rgb_image)
        if isinstance(image, QualityResult):
            return image
        if min(image.size) < 8:
            return self.failure(f"image is {image.width}x{image.height} pixels; at least 8x8 is needed")
        return image_signals(grey(np.asarray(limit_size(image))))
