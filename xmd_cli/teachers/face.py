"""The face teacher: MTCNN detection and alignment, then facenet's InceptionResnetV1.

Weights: `vggface2` or `casia-webface` through facenet-pytorch's own download
(it caches in $TORCH_HOME/checkpoints and needs the network once), or a local
state-dict file. Every frame of a sample is detected and embedded; frames
without a face are left out, and a sample with no face in any frame fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from xmd_cli.data.manifest import Sample
from xmd_cli.errors import XmdError
from xmd_cli.io import file_sha256
from xmd_cli.teachers.base import SampleFailure, Teacher, TeacherKind, read_frames

PRETRAINED_FILES = {"vggface2": "20180402-114759-vggface2.pt", "casia-webface": "20180408-102900-casia-webface.pt"}
CROP_SIZE, CROP_MARGIN = 160, 14  # facenet's published preprocessing: 160 px crops, 14 px margin
PREPROCESSING = f"mtcnn(select_largest, margin={CROP_MARGIN}) -> {CROP_SIZE}px, fixed_image_standardization"


def describe(weights: str | None) -> dict:
    """The teacher's fingerprint without building the networks (for consumers of its store)."""
    return {"teacher": "face", "weights_sha256": file_sha256(FaceTeacher._weights_file(weights or "vggface2")),
            "preprocessing": PREPROCESSING}


class FaceTeacher(Teacher):
    kind, modality, dim = "face", "face", 512

    def __init__(self, weights: str, device: torch.device):
        from facenet_pytorch import MTCNN, InceptionResnetV1

        self.device = device
        self.mtcnn = MTCNN(image_size=CROP_SIZE, margin=CROP_MARGIN, post_process=True,
                           select_largest=True, keep_all=False, device=device)
        self.network = InceptionResnetV1(pretrained=None, classify=False).eval().to(device)
        self.weights_path = self._weights_file(weights)
        state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
        # The released files carry the training classifier ("logits.*"); embeddings do not use it.
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}
        missing, unexpected = self.network.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise XmdError(f"{self.weights_path}: not an InceptionResnetV1 state dict "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        self.weights_hash = file_sha256(self.weights_path)

    @staticmethod
    def _weights_file(weights: str) -> Path:
        if weights in PRETRAINED_FILES:
            from facenet_pytorch.models.inception_resnet_v1 import load_weights
            from torch.hub import get_dir

            cached = Path(os.path.dirname(get_dir())) / "checkpoints" / PRETRAINED_FILES[weights]
            if not cached.exists():
                probe = torch.nn.Module()
                probe.load_state_dict = lambda state_dict: None  # only the download is wanted here
                try:
                    load_weights(probe, weights)
                except Exception as e:  # URLError offline, HTTP errors, ...
                    raise XmdError(f"teacher.weights {weights}: cannot download facenet's weights ({e})",
                                   hint=f"download {PRETRAINED_FILES[weights]} elsewhere and pass it with "
                                        f"--set teacher.weights=PATH, or place it at {cached}") from None
            return cached
        path = Path(weights).expanduser()
        if not path.is_file():
            raise XmdError(f"teacher.weights {weights}: no such file",
                           hint="vggface2, casia-webface, or a local InceptionResnetV1 state-dict file")
        return path

    def fingerprint(self) -> dict:
        return {"teacher": self.kind, "weights_sha256": self.weights_hash, "preprocessing": PREPROCESSING}

    def load(self, sample: Sample, root: Path):
        return read_frames(sample, root)

    @torch.no_grad()
    def embed(self, items: list) -> list[np.ndarray | SampleFailure]:
        crops, owner = [], []
        for i, frames in enumerate(items):
            for frame in frames:
                crop = self.mtcnn(frame)  # None when no face is found
                if crop is not None:
                    crops.append(crop)
                    owner.append(i)
        results: list = [SampleFailure("no face found") for _ in items]
        if not crops:
            return results
        batch = torch.stack(crops).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            embeddings = self.network(batch).float().cpu().numpy()
        owner = np.asarray(owner)
        for i in set(owner.tolist()):
            results[i] = embeddings[owner == i]
        return results


FACE_TEACHER = TeacherKind(describe=lambda config, manifest=None: describe(config.weights),
                           build=lambda config, device: FaceTeacher(config.weights or "vggface2", device))
