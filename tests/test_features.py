"""Speech features (batched Kaldi fbank), crops, noise at a given SNR, image transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchaudio.compliance import kaldi

from xmd_cli.data.transforms import IMAGE_MEAN, IMAGE_STD, add_noise, image_transform, measured_snr_db, random_crop
from xmd_cli.errors import XmdError
from xmd_cli.models.fbank import SpeechFeatures

RATE = 16000


def _sine_batch(seconds=(1.0, 0.6), rate=RATE):
    # Different tones a row plus a little noise, so every mel band has energy.
    rng = np.random.default_rng(0)
    rows = []
    for i, s in enumerate(seconds):
        t = np.arange(int(s * rate)) / rate
        rows.append((0.3 * np.sin(2 * np.pi * (300 + 400 * i) * t)
                     + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
    return rows


def _kaldi(wave: np.ndarray, n_mels=80, subtract_mean=False, rate=RATE) -> torch.Tensor:
    return kaldi.fbank(torch.from_numpy(wave)[None] * 32768, num_mel_bins=n_mels, sample_frequency=rate,
                       dither=0.0, subtract_mean=subtract_mean)


def test_batched_fbank_equals_kaldi_fbank():
    waves = _sine_batch((1.0, 1.0))
    batch = torch.from_numpy(np.stack(waves))
    raw = SpeechFeatures(RATE, 80, mean_norm=False)(batch)
    normed = SpeechFeatures(RATE, 80)(batch)
    assert raw.shape == (2, 98, 80)
    for row, wave in enumerate(waves):
        torch.testing.assert_close(raw[row], _kaldi(wave), atol=5e-3, rtol=1e-4)
        torch.testing.assert_close(normed[row], _kaldi(wave, subtract_mean=True), atol=5e-3, rtol=1e-4)
    # Mean normalisation: every band averages to zero over time.
    assert normed.mean(dim=1).abs().max() < 1e-4


def test_other_rate_and_mel_count_match_kaldi():
    wave = _sine_batch((0.5,), rate=8000)[0]
    feats = SpeechFeatures(8000, 40, mean_norm=False)(torch.from_numpy(wave)[None])
    torch.testing.assert_close(feats[0], _kaldi(wave, n_mels=40, rate=8000), atol=5e-3, rtol=1e-4)


def test_padded_batch_with_lengths_matches_each_utterance_alone():
    long, short = _sine_batch((1.0, 0.6))
    padded = torch.zeros(2, long.size)
    padded[0], padded[1, :short.size] = torch.from_numpy(long), torch.from_numpy(short)
    lengths = torch.tensor([1.0, short.size / long.size])
    features = SpeechFeatures(RATE, 80)
    batch = features(padded, lengths)
    alone = features(torch.from_numpy(short)[None])[0]
    frames = alone.shape[0]
    torch.testing.assert_close(batch[1, :frames], alone, atol=1e-4, rtol=1e-4)
    assert torch.all(batch[1, frames:] == 0)  # padded frames carry nothing
    torch.testing.assert_close(batch[0], features(torch.from_numpy(long)[None])[0], atol=1e-4, rtol=1e-4)


def test_input_shorter_than_a_window_is_a_clear_error():
    with pytest.raises(XmdError, match="shorter than one"):
        SpeechFeatures(RATE)(torch.zeros(1, 100))


def test_random_crop_is_seeded_and_wraps_short_waves():
    wave = np.arange(RATE * 3, dtype=np.float32)
    a = random_crop(wave, 1.0, np.random.default_rng(5), sample_rate=RATE)
    b = random_crop(wave, 1.0, np.random.default_rng(5), sample_rate=RATE)
    c = random_crop(wave, 1.0, np.random.default_rng(6), sample_rate=RATE)
    assert a.shape == (RATE,) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(np.diff(a) == 1)  # one contiguous piece of the wave

    short = np.arange(1000, dtype=np.float32)
    wrapped = random_crop(short, 0.25, np.random.default_rng(1), sample_rate=RATE)  # 4000 samples
    assert wrapped.shape == (4000,)
    # Repetitions of the short wave from a random start: each step is +1 or a wrap to 0.
    steps = np.diff(wrapped)
    assert set(np.unique(steps)) <= {1.0, -999.0} and np.sum(steps == -999.0) >= 3
    with pytest.raises(XmdError, match="empty"):
        random_crop(short, 0.0, np.random.default_rng(1), sample_rate=RATE)


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 30.0])
def test_noise_is_added_at_the_requested_snr(kind, snr):
    clean = _sine_batch((1.0,))[0]
    noisy = add_noise(clean, snr, np.random.default_rng(3), kind=kind)
    assert noisy.dtype == clean.dtype and noisy.shape == clean.shape
    assert abs(measured_snr_db(clean, noisy) - snr) < 0.1
    again = add_noise(clean, snr, np.random.default_rng(3), kind=kind)
    assert np.array_equal(noisy, again)


def test_pink_noise_has_a_one_over_f_spectrum():
    silence_free = np.ones(RATE * 4, dtype=np.float32)  # the added noise is then noisy - 1
    noise = add_noise(silence_free, 0.0, np.random.default_rng(0), kind="pink") - 1.0
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(noise.size, 1 / RATE)
    band = (freqs > 50) & (freqs < 5000)
    slope = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert -1.2 < slope < -0.8
    white = add_noise(silence_free, 0.0, np.random.default_rng(0), kind="white") - 1.0
    white_slope = np.polyfit(np.log(freqs[band]), np.log(np.abs(np.fft.rfft(white))[band] ** 2), 1)[0]
    assert abs(white_slope) < 0.1
    with pytest.raises(XmdError, match="brown"):
        add_noise(silence_free, 0.0, np.random.default_rng(0), kind="brown")


def test_image_transform_eval_resizes_and_normalises():
    image = Image.new("RGB", (200, 150), (255, 0, 128))
    out = image_transform(64, train=False)(image)
    assert out.shape == (3, 64, 64) and out.dtype == torch.float32
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 0, 128), IMAGE_MEAN, IMAGE_STD)]
    torch.testing.assert_close(out.mean(dim=(1, 2)), torch.tensor(expected), atol=1e-2, rtol=0)


def test_image_transform_train_is_seeded_crops_and_flips():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
    train = image_transform(112, train=True, modality="face")
    a = train(image, np.random.default_rng(1))
    b = train(image, np.random.default_rng(1))
    assert a.shape == (3, 112, 112) and torch.equal(a, b)
    outputs = [train(image, np.random.default_rng(seed)) for seed in range(8)]
    assert len({o.sum().item() for o in outputs}) == 8  # different crops
    # The face transform keeps crops large: 90-100 % of the area.
    generic = image_transform(112, train=True, modality="image")
    assert generic.crop_scale[0] < train.crop_scale[0] == 0.9
    with pytest.raises(ValueError, match="rng"):
        train(image)
    with pytest.raises(XmdError, match="too small"):
        image_transform(4, train=False)
