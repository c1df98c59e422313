"""torch Datasets over a prepared manifest, for training and embedding students.

Each item is (input tensor, class index, sample index): the sample index points
into `dataset.samples`, so the trainer can look up the teacher and quality rows
of the sample by `dataset.samples[index].id`.

Augmentation is seeded by (seed, epoch, index): the trainer sets `dataset.epoch`
before each epoch, and a run resumed at epoch k sees the same crops, noise and
flips as the uninterrupted run, whatever the number of loader workers. The
speechbrain augmentations of `training.augment` (`data/augment.py`) draw from a
second stream of the same (seed, epoch, index), so switching them on leaves the
crops and the simple noise of `training.noise_snr` as they were.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from xmd_cli.data.augment import WaveAugmenter
from xmd_cli.data.manifest import Manifest, Sample
from xmd_cli.data.media import load_image, read_audio
from xmd_cli.data.transforms import add_noise, image_transform, random_crop
from xmd_cli.errors import XmdError
from xmd_cli.vocab import is_speech_arch

NOISE_KINDS = ("white", "pink")


def _split_samples(manifest: Manifest, split: str | list[str], need: str) -> list[Sample]:
    splits = [split] if isinstance(split, str) else list(split)
    samples = [s for s in manifest.samples if s.split in splits]
    if not samples:
        raise XmdError(f"{manifest.workdir}: the manifest has no {'/'.join(splits)} samples",
                       hint="check the data section of the recipe and rerun `xmd prepare`")
    lacking = [s.id for s in samples if not (s.audio if need == "audio" else s.images)]
    if lacking:
        raise XmdError(f"{manifest.workdir}: {len(lacking)} {'/'.join(splits)} sample(s) have no {need} "
                       f"(first: {lacking[0]!r})",
                       hint=f"this student needs {need}; prepare a dataset that has it for every sample")
    return samples


def _label_indices(samples: list[Sample], labels: dict[str, int], where) -> list[int]:
    unknown = sorted({s.label for s in samples} - set(labels))
    if unknown:
        raise XmdError(f"{where}: label(s) {', '.join(map(repr, unknown[:5]))} are not in the label map",
                       hint="labels.json and manifest.jsonl disagree: rerun `xmd prepare`")
    return [labels[s.label] for s in samples]


class _SeededDataset(Dataset):
    def __init__(self, manifest: Manifest, samples: list[Sample], labels: dict[str, int] | None, seed: int):
        self.manifest = manifest
        self.samples = samples
        self.labels = dict(labels if labels is not None else manifest.labels)
        self.targets = _label_indices(samples, self.labels, manifest.workdir)
        self.seed = int(seed)
        self.epoch = 0  # set by the trainer before each epoch

    def __len__(self) -> int:
        return len(self.samples)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


class SpeechDataset(_SeededDataset):
    """(waveform (samples,), class index, sample index) for the samples of `split`.

    Training (`train=True`): a random `crop_seconds` crop of each utterance (wrapped
    when shorter) and, with `noise_snr=(low, high)`, white or pink noise at an SNR
    drawn uniformly from that range. Evaluation: the whole utterance (or segment);
    batch it with `collate`, which pads and returns relative lengths.
    Audio is resampled to `sample_rate` when the file's rate differs.
    """

    def __init__(self, manifest: Manifest, split: str | list[str], *, sample_rate: int,
                 crop_seconds: float | None, train: bool, noise_snr: tuple[float, float] | list[float] | None = None,
                 seed: int = 0, labels: dict[str, int] | None = None, augment: WaveAugmenter | None = None):
        super().__init__(manifest, _split_samples(manifest, split, "audio"), labels, seed)
        if noise_snr is not None and len(noise_snr) != 2:
            raise XmdError(f"training.noise_snr must be [low, high] in dB, got {list(noise_snr)}")
        if noise_snr is not None and noise_snr[0] > noise_snr[1]:
            raise XmdError(f"training.noise_snr [{noise_snr[0]}, {noise_snr[1]}]: low is above high")
        if train and crop_seconds is None:
            raise XmdError("a training speech dataset needs crop_seconds (student.crop_seconds)")
        self.sample_rate = int(sample_rate)
        self.crop_seconds = crop_seconds
        self.train = train
        self.noise_snr = tuple(noise_snr) if noise_snr else None
        self.augment = augment if train else None

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            wave, _ = read_audio(self.manifest.path(sample.audio), segment=sample.segment,
                                 target_rate=self.sample_rate)
        except XmdError as e:  # name the sample too: the run reports by id
            raise XmdError(f"sample {sample.id!r}: {e.message}", hint=e.hint) from None
        if self.train:
            rng = self.rng(index)
            if self.augment is not None:
                augment_rng = np.random.default_rng([self.seed, self.epoch, index, 1])  # its own stream
                torch_seed = int(augment_rng.integers(2 ** 62))
                wave = self.augment.speed(wave, torch_seed)
            wave = random_crop(wave, self.crop_seconds, rng, sample_rate=self.sample_rate)
            if self.noise_snr is not None:
                snr = float(rng.uniform(*self.noise_snr))
                wave = add_noise(wave, snr, rng, kind=NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))])
            if self.augment is not None:
                wave = self.augment(wave, augment_rng, torch_seed)
        elif self.crop_seconds is not None:
            # A fixed (centre) crop at evaluation, when one is asked for: deterministic.
            length = int(round(self.crop_seconds * self.sample_rate))
            if wave.size > length:
                start = (wave.size - length) // 2
                wave = wave[start:start + length]
        return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), self.targets[index], index


class ImageDataset(_SeededDataset):
    """(image (3, size, size), class index, sample index) for the samples of `split`.

    A sample with several images gives a random one of them in training and the
    first at evaluation. `modality='face'` uses the face transform (mild crops).
    """

    def __init__(self, manifest: Manifest, split: str | list[str], *, size: int, train: bool,
                 seed: int = 0, modality: str = "image", labels: dict[str, int] | None = None):
        super().__init__(manifest, _split_samples(manifest, split, "images"), labels, seed)
        self.train = train
        self.transform = image_transform(size, train, modality=modality)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        rng = self.rng(index) if self.train else None
        name = sample.images[int(rng.integers(len(sample.images)))] if rng is not None else sample.images[0]
        image = load_image(self.manifest.path(name))
        return self.transform(image, rng), self.targets[index], index


def collate(batch: list[tuple[torch.Tensor, int, int]]):
    """Items -> (inputs, labels, indices, lengths).

    Waveforms of different lengths are zero-padded to the longest, and `lengths`
    holds each one's length relative to it (speechbrain's convention); images
    stack, and `lengths` is None. Students take `student(inputs, lengths)`.
    """
    inputs, labels, indices = zip(*batch)
    labels = torch.as_tensor(labels, dtype=torch.long)
    indices = torch.as_tensor(indices, dtype=torch.long)
    if inputs[0].dim() != 1:
        return torch.stack(inputs), labels, indices, None
    longest = max(x.shape[0] for x in inputs)
    padded = torch.zeros(len(inputs), longest, dtype=inputs[0].dtype)
    for row, wave in enumerate(inputs):
        padded[row, :wave.shape[0]] = wave
    lengths = torch.tensor([x.shape[0] / longest for x in inputs], dtype=torch.float32)
    return padded, labels, indices, lengths


def build_dataset(manifest: Manifest, split: str | list[str], student, *, train: bool, seed: int = 0,
                  noise_snr=None, labels: dict[str, int] | None = None, augment=None) -> Dataset:
    """The dataset a `StudentConfig` trains on: speech for ecapa/resnet34, images otherwise.

    `augment`: a `training.augment` section (speech training only; off unless a switch is on).
    """
    if is_speech_arch(student.arch):
        augmenter = WaveAugmenter.from_config(augment, student.sample_rate) if train else None
        return SpeechDataset(manifest, split, sample_rate=student.sample_rate,
                             crop_seconds=student.crop_seconds if train else None, train=train,
                             noise_snr=noise_snr if train else None, seed=seed, labels=labels, augment=augmenter)
    if train and augment is not None and augment.enabled:
        raise XmdError(f"training.augment works on waveforms; student.arch {student.arch!r} takes images",
                       hint="switch training.augment off, or use a speech student (ecapa, resnet34)")
    return ImageDataset(manifest, split, size=student.image_size, train=train, seed=seed,
                        modality=student.modality, labels=labels)
