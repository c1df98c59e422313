"""What every teacher provides, and the failure a single sample can raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from xmd_cli.data.manifest import Sample


class SampleFailure(Exception):
    """One sample cannot be embedded; `reason` goes to failures.jsonl."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def read_frames(sample: Sample, root: Path) -> list:
    """The sample's images as PIL images, or a SampleFailure naming the one that cannot be read."""
    from xmd_cli.data.media import load_image

    if not sample.images:
        raise SampleFailure("no images in the manifest for this sample")
    frames = []
    for relative in sample.images:
        try:
            frames.append(load_image(root / relative))
        except Exception as e:
            raise SampleFailure(f"{relative}: unreadable image ({e})") from None
    return frames


class Teacher(ABC):
    kind: str
    modality: str
    dim: int

    @abstractmethod
    def fingerprint(self) -> dict:
        """Everything that determines the values: kind, weights hash, preprocessing."""

    @abstractmethod
    def load(self, sample: Sample, root: Path):
        """Read and preprocess one sample on the CPU; raise SampleFailure when it cannot be used."""

    @abstractmethod
    def embed(self, items: list) -> list[np.ndarray | SampleFailure]:
        """One (frames, dim) float32 array, or a SampleFailure, per loaded item."""


@dataclass(frozen=True)
class TeacherKind:
    """One entry of the teacher registry (`xmd_cli.teachers.TEACHERS`).

    `describe(config, manifest)` gives the teacher's part of its store's fingerprint
    without building any network, so a consumer can find the store cheaply.
    `build(config, device)` makes the network; None for control teachers, which
    are derived from a real teacher's store instead of run over the samples.
    """

    describe: Callable[..., dict]
    build: Callable[..., Teacher] | None = None
