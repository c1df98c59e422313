"""speechbrain augmentation: seeded per item, the SNR it promises, files found, clear errors."""

import numpy as np
import pytest
import soundfile as sf
import torch

from xmd_cli.data.augment import WaveAugmenter
from xmd_cli.data.synthetic.noise_rir import write_noise_rir
from xmd_cli.data.transforms import measured_snr_db
from xmd_cli.errors import XmdError

RATE = 16000


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    return write_noise_rir(tmp_path_factory.mktemp("aug"), noises=4, rirs=2, seconds=1.0)


def _speechlike(seconds=1.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def test_the_generated_set_is_wav_files_with_decaying_rirs(sets):
    noise_dir, rir_dir = sets
    assert len(list(noise_dir.glob("*.wav"))) == 4
    rir, rate = sf.read(sorted(rir_dir.glob("*.wav"))[-1])
    assert rate == RATE and np.argmax(np.abs(rir)) == 0
    assert np.abs(rir[-800:]).max() < 0.05 * np.abs(rir).max()  # decayed by the end


def test_every_switch_is_seeded_per_item_and_leaves_the_global_rng_alone(sets):
    noise_dir, rir_dir = sets
    augment = WaveAugmenter(sample_rate=RATE, noise_dir=noise_dir, rir_dir=rir_dir, speed=[0.9, 1.0, 1.1],
                            drop_chunk=True, drop_freq=True)
    wave = _speechlike()
    state = torch.get_rng_state()

    def once(seed):
        rng = np.random.default_rng(seed)
        return augment(augment.speed(wave, seed)[:12000], rng, seed)

    first, again, other = once(3), once(3), once(4)
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(first, again) and first.shape == (12000,)
    assert not np.allclose(first, other)
    assert np.isfinite(first).all() and not np.allclose(first, wave[:12000])


def test_noise_from_files_lands_within_the_snr_range(sets):
    augment = WaveAugmenter(sample_rate=RATE, noise_dir=sets[0], noise_snr=[5.0, 10.0], probability=1.0)
    wave = _speechlike()
    for seed in range(4):
        snr = measured_snr_db(wave, augment(wave, np.random.default_rng(seed), seed))
        assert 4.9 < snr < 10.1


def test_bad_folders_and_ranges_are_clear_errors(tmp_path):
    with pytest.raises(XmdError, match="training.augment.noise_dir .*: no such folder"):
        WaveAugmenter(sample_rate=RATE, noise_dir=tmp_path / "missing")
    with pytest.raises(XmdError, match="training.augment.rir_dir .*: no .wav files"):
        WaveAugmenter(sample_rate=RATE, rir_dir=tmp_path)
    with pytest.raises(XmdError, match="noise_snr"):
        WaveAugmenter(sample_rate=RATE, noise_snr=[10, 5])


def test_reverb_or_noise_reaches_a_sample_with_the_probability_and_one_at_a_time(sets):
    wave = _speechlike(0.25)

    def changed_share(probability, **dirs):
        augment = WaveAugmenter(sample_rate=RATE, probability=probability, **dirs)
        outputs = [augment(wave, np.random.default_rng(seed), seed) for seed in range(200)]
        return np.mean([not np.allclose(out, wave) for out in outputs]), outputs

    assert changed_share(0.0, noise_dir=sets[0], rir_dir=sets[1])[0] == 0
    share, _ = changed_share(0.6, noise_dir=sets[0])
    assert 0.5 < share < 0.7  # WeSpeaker's aug_prob: 0.6 of the samples, binomial spread over 200
    # Both set, every sample augmented: by one of the two, never both (each kind about half the time).
    _, both = changed_share(1.0, noise_dir=sets[0], rir_dir=sets[1])
    noise_only = WaveAugmenter(sample_rate=RATE, probability=1.0, noise_dir=sets[0])
    reverb_only = WaveAugmenter(sample_rate=RATE, probability=1.0, rir_dir=sets[1])
    kinds = []
    for seed, out in enumerate(both):
        rng = np.random.default_rng(seed)
        rng.random()
        kind = int(rng.integers(2))  # the draw the augmenter made: 0 reverb, 1 noise
        single = (reverb_only if kind == 0 else noise_only)(wave, _skip_two(seed), seed)
        assert np.allclose(out, single, atol=1e-6)
        kinds.append(kind)
    assert 60 < sum(kinds) < 140
    with pytest.raises(XmdError, match="probability"):
        WaveAugmenter(sample_rate=RATE, probability=1.5)


def _skip_two(seed):
    """A generator past the two draws (chance, kind) the two-kind augmenter made, so one-kind ones match it."""
    rng = np.random.default_rng(seed)
    rng.random(), rng.integers(2)
    return _Replay(rng)


class _Replay:
    """Hands the single-kind augmenter a 1.0-chance draw (it still draws `random()` once), then `rng`."""

    def __init__(self, rng):
        self.rng, self.first = rng, True

    def random(self):
        if self.first:
            self.first = False
            return 0.0
        return self.rng.random()

    def integers(self, *args, **kwargs):
        return self.rng.integers(*args, **kwargs)
