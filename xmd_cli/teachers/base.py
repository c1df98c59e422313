"""What every teacher provides, and the failure a single sample can raise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from xmd_cli.data.manifest import Sample


class SampleFailure(Exception):
    """One sample cannot be embedded; `reason` goes to failures.jsonl."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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
