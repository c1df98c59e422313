"""What a training run is made of: the trainable module and the job description."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from xmd_cli.recipe import TrainingConfig


class StudentWithMethod(nn.Module):
    """The trainable whole: the student network plus the method's parts (projection, classifier).

    One module, so that DDP, the optimizer and checkpoints see every parameter once.
    """

    def __init__(self, student: nn.Module, method: nn.Module):
        super().__init__()
        self.student, self.method = student, method

    def embed(self, inputs, lengths=None):
        # Speech students take relative lengths of padded waveforms; others only inputs.
        return self.student(inputs) if lengths is None else self.student(inputs, lengths)

    def forward(self, inputs, labels, side: dict, lengths=None):
        return self.method(self.embed(inputs, lengths), labels=labels, **side)


@dataclass
class TrainJob:
    model: StudentWithMethod
    train_set: Dataset  # items (input, label, sample index)
    collate: Callable  # items -> (inputs, labels, indices[, lengths])
    config: TrainingConfig
    seed: int
    run_dir: Path
    meta: dict  # written with every checkpoint: task, modality, arch, dims, classes
    val_set: Dataset | None = None
    val_batch_size: int = 1  # 1 for whole utterances of different lengths; larger for images
    # Open-set validation (identities unseen in training): (enroll positions, test positions, target labels)
    # into val_set; validation then reports val/eer and `best` is the lowest EER. None: closed-set accuracy.
    val_trials: tuple | None = None
    # Some batches may leave parameters unused (samples without a teacher row skip the projection):
    # DDP must then look for unused parameters, which costs a graph traversal a step.
    may_skip_parameters: bool = False
    # sample indices -> {"t", "has_teacher", "teacher_quality", "student_quality"} (tensors or None)
    side_info: Callable[[torch.Tensor], dict] = field(default=lambda indices: {})
    # Fixed numbers about the run (the QAW weights' effective sample size) logged with every epoch's end.
    epoch_metrics: dict = field(default_factory=dict)
    # (start epoch, end epoch, full margin) of the AAM margin schedule (training/margin.py); None: fixed margin
    margin_schedule: tuple[int, int, float] | None = None
