"""Speech and image datasets over a tiny manifest the test writes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from torch.utils.data import DataLoader

from xmd_cli.data.datasets import ImageDataset, SpeechDataset, build_dataset, collate
from xmd_cli.data.manifest import Sample, read_manifest, write_manifest
from xmd_cli.data.transforms import measured_snr_db
from xmd_cli.errors import XmdError
from xmd_cli.models.students import build_student
from xmd_cli.recipe import StudentConfig

RATE = 16000


def _tone(seconds: float, rate: int, hz: float) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.fixture
def manifest(tmp_path):
    root = tmp_path / "data"
    (root / "wav").mkdir(parents=True)
    (root / "img").mkdir()
    samples = []
    durations = {"a": (1.5, 0.8), "b": (1.2, 0.5), "c": (1.0, 1.1)}
    for speaker, (first, second) in durations.items():
        for n, seconds in enumerate((first, second)):
            sid = f"{speaker}/{n}"
            # One file at 8 kHz: the dataset must resample it to the student's rate.
            rate = 8000 if sid == "b/1" else RATE
            sf.write(root / "wav" / f"{speaker}{n}.wav", _tone(seconds, rate, 440 + 100 * n), rate)
            images = []
            for k in range(2 if sid == "a/0" else 1):
                colour = (40 * (ord(speaker) - 96), 60 * n, 100 * k)
                Image.new("RGB", (80, 60), colour).save(root / "img" / f"{speaker}{n}_{k}.png")
                images.append(f"img/{speaker}{n}_{k}.png")
            split = "train" if n == 0 or speaker == "c" else "test"
            samples.append(Sample(id=sid, label=speaker, split=split, audio=f"wav/{speaker}{n}.wav", images=images))
    write_manifest(tmp_path / "work", samples, root=root, adapter="table")
    return read_manifest(tmp_path / "work")


def test_training_crops_are_fixed_length_and_seeded_by_epoch(manifest):
    data = SpeechDataset(manifest, "train", sample_rate=RATE, crop_seconds=0.5, train=True, seed=7)
    assert [s.id for s in data.samples] == ["a/0", "b/0", "c/0", "c/1"]
    wave, label, index = data[0]
    assert wave.shape == (RATE // 2,) and wave.dtype == torch.float32
    assert label == manifest.labels["a"] and index == 0
    assert torch.equal(wave, data[0][0])  # same epoch, same crop
    data.epoch = 1
    assert not torch.equal(wave, data[0][0])  # the next epoch crops elsewhere
    resumed = SpeechDataset(manifest, "train", sample_rate=RATE, crop_seconds=0.5, train=True, seed=7)
    resumed.epoch = 1
    assert torch.equal(resumed[0][0], data[0][0])  # a resumed run sees the same crop
    # c/1 (1.1 s) cropped to 2 s is wrapped, never zero-padded.
    long_crop = SpeechDataset(manifest, "train", sample_rate=RATE, crop_seconds=2.0, train=True)[3][0]
    assert long_crop.shape == (2 * RATE,) and (long_crop[-RATE // 2:].abs().max() > 0.2)


def test_noise_augmentation_stays_in_the_snr_range(manifest):
    clean = SpeechDataset(manifest, "train", sample_rate=RATE, crop_seconds=0.5, train=True, seed=1)
    noisy = SpeechDataset(manifest, "train", sample_rate=RATE, crop_seconds=0.5, train=True, seed=1,
                          noise_snr=(5.0, 15.0))
    snrs = []
    for epoch in range(3):
        clean.epoch = noisy.epoch = epoch
        for index in range(len(clean)):
            snrs.append(measured_snr_db(clean[index][0].numpy(), noisy[index][0].numpy()))
    assert min(snrs) >= 5.0 - 0.1 and max(snrs) <= 15.0 + 0.1 and np.std(snrs) > 1.0
    with pytest.raises(XmdError, match="low is above high"):
        SpeechDataset(manifest, "train", sample_rate=RATE, crop_seconds=0.5, train=True, noise_snr=(10, 5))


def test_evaluation_gives_whole_resampled_utterances(manifest):
    data = SpeechDataset(manifest, "test", sample_rate=RATE, crop_seconds=None, train=False)
    by_id = {s.id: data[i][0] for i, s in enumerate(data.samples)}
    assert by_id["a/1"].shape == (int(0.8 * RATE),)
    resampled = by_id["b/1"]  # 0.5 s written at 8 kHz
    assert resampled.shape == (RATE // 2,)
    spectrum = np.abs(np.fft.rfft(resampled.numpy()))
    assert abs(np.argmax(spectrum) * RATE / resampled.numel() - 540) < 5  # the tone survives resampling
    # Evaluation is deterministic: no epoch dependence.
    data.epoch = 3
    assert torch.equal(data[0][0], by_id[data.samples[0].id])


@pytest.mark.slow
def test_collate_pads_and_a_student_embeds_the_padded_batch(manifest):
    data = SpeechDataset(manifest, ["train", "test"], sample_rate=RATE, crop_seconds=None, train=False)
    loader = DataLoader(data, batch_size=3, shuffle=False, collate_fn=collate)
    waves, labels, indices, lengths = next(iter(loader))
    assert waves.shape == (3, int(1.5 * RATE)) and labels.dtype == torch.long
    assert indices.tolist() == [0, 1, 2]
    true_lengths = [data[i][0].numel() for i in range(3)]
    torch.testing.assert_close(lengths, torch.tensor(true_lengths) / max(true_lengths))
    assert torch.all(waves[1, true_lengths[1]:] == 0)
    student = build_student(StudentConfig(arch="resnet34", width="quarter", embedding_dim=32)).eval()
    with torch.no_grad():
        assert student(waves, lengths).shape == (3, 32)


@pytest.mark.slow
def test_image_dataset_train_and_eval(manifest):
    train = ImageDataset(manifest, "train", size=32, train=True, seed=0, modality="face")
    image, label, index = train[0]
    assert image.shape == (3, 32, 32) and label == manifest.labels["a"] and index == 0
    # a/0 has two images (blue channel 0 or 100): training draws either across epochs.
    blues = set()
    for epoch in range(12):
        train.epoch = epoch
        blues.add(round(train[0][0][2].mean().item(), 1))
    assert len(blues) == 2
    evaluation = ImageDataset(manifest, "train", size=32, train=False)
    first = evaluation[0][0]
    evaluation.epoch = 5
    assert torch.equal(first, evaluation[0][0])
    images, labels, indices, lengths = collate([evaluation[i] for i in range(3)])
    assert images.shape == (3, 3, 32, 32) and lengths is None and labels.tolist() == [0, 1, 2]


@pytest.mark.slow
def test_build_dataset_follows_the_student(manifest):
    speech = build_dataset(manifest, "train", StudentConfig(crop_seconds=0.25), train=True, noise_snr=[0, 10])
    assert isinstance(speech, SpeechDataset) and speech[0][0].shape == (RATE // 4,)
    whole = build_dataset(manifest, "train", StudentConfig(crop_seconds=0.25), train=False, noise_snr=[0, 10])
    assert whole.noise_snr is None and whole[0][0].shape == (int(1.5 * RATE),)
    images = build_dataset(manifest, "test", StudentConfig(arch="image-cnn", modality="image", image_size=48),
                           train=False)
    assert isinstance(images, ImageDataset) and images[0][0].shape == (3, 48, 48)


def test_bad_input_is_a_clear_error(tmp_path, manifest):
    with pytest.raises(XmdError, match="no validation samples"):
        SpeechDataset(manifest, "validation", sample_rate=RATE, crop_seconds=1.0, train=True)
    with pytest.raises(XmdError, match="needs crop_seconds"):
        SpeechDataset(manifest, "train", sample_rate=RATE, crop_seconds=None, train=True)
    texts = [Sample(id="x", label="l", split="train", text="a caption")]
    write_manifest(tmp_path / "text", texts, root=tmp_path, adapter="table")
    with pytest.raises(XmdError, match="have no audio .*'x'"):
        SpeechDataset(read_manifest(tmp_path / "text"), "train", sample_rate=RATE, crop_seconds=1.0, train=True)
    with pytest.raises(XmdError, match="have no images"):
        ImageDataset(read_manifest(tmp_path / "text"), "train", size=32, train=False)
    # A wav that went missing after prepare: the error names the file.
    (manifest.root / "wav" / "a0.wav").unlink()
    data = SpeechDataset(manifest, "train", sample_rate=RATE, crop_seconds=0.5, train=True)
    with pytest.raises(XmdError, match="a0.wav"):
        data[0]
