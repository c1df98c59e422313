"""The checkpoint teacher: any model trained by `xmd train`, in any modality.

The demo needs it: no pretrained face network fits drawn faces, so xmd trains a
face model on the demo's training identities and uses its embeddings as the
teacher. The checkpoint's meta.json says which student architecture it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xmd_cli.data.manifest import Sample
from xmd_cli.errors import XmdError
from xmd_cli.io import file_sha256
from xmd_cli.recipe import StudentConfig
from xmd_cli.teachers.base import SampleFailure, Teacher, TeacherKind


def weights_directory(config) -> Path:
    """teacher.weights as a checkpoint directory, or a clear error when it is not set."""
    if not config.weights:
        raise XmdError("teacher.kind checkpoint needs teacher.weights: a checkpoint directory from `xmd train`",
                       hint="e.g. --set teacher.weights=WORKDIR/runs/face-teacher/checkpoints/best")
    return Path(config.weights).expanduser()


def checkpoint_weights(directory: Path) -> Path:
    path = Path(directory).expanduser() / "weights.safetensors"
    if not path.exists():
        raise XmdError(f"teacher.weights {directory}: not a checkpoint directory (no weights.safetensors)",
                       hint="pass a run's checkpoints/best directory, e.g. WORKDIR/runs/face-teacher/checkpoints/best")
    return path


def preprocessing(config: StudentConfig) -> str:
    if config.modality == "speech":
        return f"whole utterance, {config.sample_rate} Hz, {config.n_mels} fbank"
    return f"resize {config.image_size}px, imagenet normalisation"


def read_student_config(directory: Path) -> StudentConfig:
    from xmd_cli.inference import read_meta

    meta = read_meta(directory)
    if "student" not in meta:
        raise XmdError(f"{directory}: the checkpoint does not say which model it holds (no 'student' in meta.json)")
    return StudentConfig(**meta["student"])


def describe(weights: str) -> dict:
    """The teacher's fingerprint without building the network (for consumers of its store)."""
    directory = Path(weights).expanduser()
    return {"teacher": "checkpoint", "weights_sha256": file_sha256(checkpoint_weights(directory)),
            "preprocessing": preprocessing(read_student_config(directory))}


class CheckpointTeacher(Teacher):
    kind = "checkpoint"

    def __init__(self, directory: str, device: torch.device):
        from xmd_cli.inference import load_student

        self.directory = Path(directory).expanduser()
        checkpoint_weights(self.directory)  # a clear error when this is not a checkpoint
        self.config = read_student_config(self.directory)
        self.modality, self.dim, self.device = self.config.modality, self.config.embedding_dim, device
        # Only the student network: the method's parts (projection, classifier) are not the teacher.
        self.network = load_student(self.directory, self.config).to(device)
        if self.modality != "speech":
            from xmd_cli.data.transforms import image_transform

            self.transform = image_transform(self.config.image_size, train=False, modality=self.modality)

    def fingerprint(self) -> dict:
        return describe(str(self.directory))

    def load(self, sample: Sample, root: Path):
        from xmd_cli.data.media import load_image, read_audio

        try:
            if self.modality == "speech":
                if not sample.audio:
                    raise SampleFailure("no audio in the manifest for this sample")
                wave, _ = read_audio(root / sample.audio, segment=sample.segment, target_rate=self.config.sample_rate)
                return torch.from_numpy(np.ascontiguousarray(wave))
            if not sample.images:
                raise SampleFailure("no images in the manifest for this sample")
            return torch.stack([self.transform(load_image(root / name)) for name in sample.images])
        except XmdError as e:
            raise SampleFailure(e.message) from None

    @torch.no_grad()
    def embed(self, items: list) -> list[np.ndarray | SampleFailure]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            if self.modality == "speech":
                # Whole utterances of different lengths: one at a time, as at evaluation.
                return [self.network(wave[None].to(self.device)).float().cpu().numpy() for wave in items]
            counts = [len(frames) for frames in items]
            rows = self.network(torch.cat(items).to(self.device)).float().cpu().numpy()
        return np.split(rows, np.cumsum(counts)[:-1])


CHECKPOINT_TEACHER = TeacherKind(describe=lambda config, manifest=None: describe(str(weights_directory(config))),
                                 build=lambda config, device: CheckpointTeacher(str(weights_directory(config)), device))
