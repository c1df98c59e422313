"""Degradations for synthetic-persons: what makes a face or a recording unreliable.

Faces: blur (out of focus, motion), dark (under-exposed, with the sensor noise that
comes with it) and occlusion (a hand, a scarf, a microphone in front of the face).
Speech: additive noise (white, pink or brown) at a low signal-to-noise ratio.
Each is driven by a `strength` in [0, 1] (or an SNR in dB) drawn per sample, so
quality varies continuously, as it does in real recordings; the manifest records
it for analysis only.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

FACE_KINDS = ("blur", "dark", "occlusion")
NOISE_COLOURS = ("white", "pink", "brown")
SNR_RANGE_DB = (-5.0, 5.0)
STRENGTH_RANGE = (0.4, 1.0)  # below 0.4 a degradation is hardly visible at 128 px


def draw_face_degradation(rng: np.random.Generator) -> dict:
    """Choose a face degradation: {"kind", "strength"} (+ "seed" for its own randomness)."""
    return {"kind": FACE_KINDS[int(rng.integers(len(FACE_KINDS)))],
            "strength": round(float(rng.uniform(*STRENGTH_RANGE)), 3),
            "seed": int(rng.integers(2 ** 31))}


def draw_speech_degradation(rng: np.random.Generator) -> dict:
    return {"kind": "noise", "colour": NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))],
            "snr_db": round(float(rng.uniform(*SNR_RANGE_DB)), 2),
            "seed": int(rng.integers(2 ** 31))}


# ---------------------------------------------------------------- faces
def degrade_face(image: Image.Image, spec: dict, face_box: tuple[float, float, float, float]) -> Image.Image:
    """Apply `spec` (from `draw_face_degradation`) to an RGB image.

    `face_box` (left, top, right, bottom in pixels) places an occluder over the face.
    """
    rng = np.random.default_rng(spec["seed"])
    strength = float(spec["strength"])
    side = image.width
    if spec["kind"] == "blur":
        # Gaussian radius up to ~5 % of the image side: features merge, the outline stays.
        return image.filter(ImageFilter.GaussianBlur(radius=side * (0.015 + 0.045 * strength)))
    if spec["kind"] == "dark":
        pixels = np.asarray(image, dtype=np.float64) / 255.0
        gain = 0.45 - 0.37 * strength  # strength 1 leaves 8 % of the light
        pixels = pixels ** (1.0 + 0.8 * strength) * gain
        # Under-exposure raises sensor noise relative to the signal.
        pixels += rng.normal(0.0, 0.01 + 0.025 * strength, pixels.shape)
        return Image.fromarray(np.clip(np.round(pixels * 255), 0, 255).astype(np.uint8))
    if spec["kind"] == "occlusion":
        return _occlude(image, strength, face_box, rng)
    raise ValueError(f"unknown face degradation {spec['kind']!r}")


def _occlude(image: Image.Image, strength: float, box, rng: np.random.Generator) -> Image.Image:
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    out = image.copy()
    draw = ImageDraw.Draw(out)
    colour = tuple(int(c) for c in rng.integers(20, 200, size=3))
    # The occluder covers 25..60 % of the face height, over the eyes or the lower face.
    cover = height * (0.25 + 0.35 * strength)
    if rng.random() < 0.5:  # a bar across the eyes (a hand, a visor)
        centre = top + height * rng.uniform(0.35, 0.45)
        draw.rounded_rectangle((left - 0.1 * width, centre - cover / 2, right + 0.1 * width, centre + cover / 2),
                               radius=cover / 4, fill=colour)
    else:  # the lower face (a scarf, a microphone, a hand)
        draw.rounded_rectangle((left - 0.1 * width, bottom - cover, right + 0.1 * width, bottom + 0.1 * height),
                               radius=cover / 3, fill=colour)
    return out


# ---------------------------------------------------------------- speech
def coloured_noise(length: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise whose power spectrum falls as 1/f^0 (white), 1/f (pink) or 1/f^2 (brown)."""
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[colour]
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.arange(len(spectrum), dtype=np.float64)
    frequencies[0] = 1.0  # keep the DC bin finite; it is removed below
    spectrum /= frequencies ** (exponent / 2)
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n=length)
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def add_noise(signal: np.ndarray, spec: dict) -> np.ndarray:
    """Add noise at `spec["snr_db"]` relative to the power of the speech itself.

    The speech power is measured over its active part (frames above -40 dB of the
    loudest), not over leading and trailing silence, which would overstate the SNR.
    """
    rng = np.random.default_rng(spec["seed"])
    speech_power = active_power(signal)
    noise = coloured_noise(len(signal), spec["colour"], rng)
    return signal + noise * np.sqrt(speech_power / 10 ** (float(spec["snr_db"]) / 10))


def active_power(signal: np.ndarray, frame: int = 400) -> float:
    frames = signal[: len(signal) // frame * frame].reshape(-1, frame)
    power = np.mean(frames ** 2, axis=1)
    active = power[power > power.max() * 1e-4]
    return float(np.mean(active)) if active.size else float(np.mean(signal ** 2))
