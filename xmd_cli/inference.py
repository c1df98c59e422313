"""Inference with a trained student: load a checkpoint, embed samples. Shared by every consumer.

evaluate, diagnose, the checkpoint teacher (and export/embed) all rebuild a
student from its checkpoint folder the same way and embed inputs the same way:
eval mode, no gradient, whole utterances (or the first image), no augmentation,
so that every number about a checkpoint describes one and the same network.
Utterances share a batch only with utterances of the same sample count (no
padding), so an embedding does not depend on its batch beyond float rounding.

A checkpoint directory (from `xmd train` or `xmd distill`) holds weights.safetensors
(keys `student.*`, `method.*`) and meta.json (task, student config, classes,
teacher_dim, method config, manifest_sha256, teacher store). The student is rebuilt
from meta.json's `student` config, so inference needs no recipe of the run.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xmd_cli.data.buckets import embed_dataset
from xmd_cli.data.manifest import Manifest, Sample
from xmd_cli.errors import XmdError
from xmd_cli.recipe import StudentConfig
from xmd_cli.training.checkpoint import load_part, load_student, read_meta
from xmd_cli.vocab import is_speech_arch

__all__ = ["CheckpointModel", "describe_embedding", "embed_dataset", "embed_samples", "embedding_batch_size",
           "load_checkpoint", "load_student", "read_meta", "student_embeddings"]


@dataclass
class CheckpointModel:
    directory: Path
    meta: dict
    config: StudentConfig
    student: torch.nn.Module
    weights: dict[str, torch.Tensor]
    device: torch.device
    notes: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes") or [])

    @property
    def describe(self) -> str:
        return (f"{self.directory} (a `{self.meta.get('task')}` checkpoint of a {self.config.arch} "
                f"{self.config.modality} student)")

    def part(self, prefix: str) -> dict[str, torch.Tensor]:
        """The weights under `prefix` (e.g. "method.projection."), the prefix removed."""
        return {k[len(prefix):]: v for k, v in self.weights.items() if k.startswith(prefix)}

    def classifier_weight(self) -> torch.Tensor:
        weight = self.weights.get("method.classifier.weight")
        if weight is None:
            raise XmdError(f"{self.describe} has no classifier (no method.classifier.weight)",
                           hint="classification needs a checkpoint from `xmd train` or `xmd distill`")
        return weight.to(self.device, torch.float32)

    def projection(self):
        """The trained projection head P (teacher dim -> student dim), eval mode, on the device."""
        from xmd_cli.models.distill_heads import ProjectionHead

        state = self.part("method.projection.")
        method = self.meta.get("method") or {}
        if not state or not self.meta.get("teacher_dim") or "projection" not in method:
            raise XmdError(f"{self.describe} has no projection head, so its student cannot be compared with "
                           "teacher embeddings",
                           hint="cross-modal matching needs a checkpoint of `xmd distill` whose method uses the "
                                "teacher (method.feature.loss or method.classifier.kind not none)")
        head = ProjectionHead(int(self.meta["teacher_dim"]), self.config.embedding_dim, method["projection"])
        return load_part(head, self.weights, "method.projection.", self.directory).eval().to(self.device)


def load_checkpoint(directory: Path, device: torch.device) -> CheckpointModel:
    from safetensors.torch import load_file

    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise XmdError(f"{directory}: no checkpoint here",
                       hint="run `xmd train` or `xmd distill` with this recipe and work directory first, "
                            "or pass --checkpoint DIR (a run's checkpoints/best)")
    meta = read_meta(directory)
    weights_path = directory / "weights.safetensors"
    if not weights_path.exists():
        raise XmdError(f"{directory}: no weights.safetensors", hint="pass a run's checkpoints/best or /last")
    if meta.get("task") not in ("train", "distill") or "student" not in meta:
        raise XmdError(f"{directory}/meta.json: task {meta.get('task')!r} is not a checkpoint of "
                       "`xmd train` or `xmd distill`, or it does not name its student",
                       hint="evaluate a run's checkpoints/best or checkpoints/last directory")
    config = StudentConfig(**meta["student"])
    weights = load_file(str(weights_path))
    student = load_student(directory, config, weights)
    return CheckpointModel(directory, meta, config, student.to(device), weights, device)


IMAGE_BATCH = 64
SPEECH_BATCH = 32  # utterances of one exact length embedded at once (data/buckets.py bounds the memory)


def embedding_batch_size(config) -> int:
    """How many inputs training's closed-set validation embeds at once (padded batches).

    Speech goes one whole utterance at a time there: padding a batch would change
    what the convolutions see at the end of each utterance (speechbrain pads by
    reflection), and scores must not depend on which utterances shared a batch.
    Images, all of one size, go in batches. (`embed_samples` batches utterances of
    identical length instead, which needs no padding.)
    """
    return 1 if is_speech_arch(config.arch) else IMAGE_BATCH


def describe_embedding(model: CheckpointModel) -> str:
    if is_speech_arch(model.config.arch):
        return (f"whole utterance, batched only with utterances of the same sample count (no padding; up to "
                f"{SPEECH_BATCH}), {model.config.sample_rate} Hz, eval mode")
    return f"first image of each sample, {model.config.image_size} px, eval mode, batch {IMAGE_BATCH}"


def embed_samples(model: CheckpointModel, manifest: Manifest, samples: list[Sample], *, stage: str,
                  num_workers: int = 0, out=None) -> np.ndarray:
    """float64 (len(samples), embedding_dim), row i from samples[i]."""
    from xmd_cli.data.datasets import build_dataset

    if not samples:
        raise XmdError(f"{stage}: no samples to embed")
    splits = sorted({s.split for s in samples})
    # Build the dataset over the splits involved, then keep just the samples asked for
    # (in their order): the dataset does the reading, resampling and transforms.
    dataset = build_dataset(manifest, splits, model.config, train=False, labels=manifest.labels)
    position = {s.id: i for i, s in enumerate(dataset.samples)}
    order = [position[s.id] for s in samples]
    dataset.samples = [dataset.samples[i] for i in order]
    dataset.targets = [dataset.targets[i] for i in order]
    batch = SPEECH_BATCH if is_speech_arch(model.config.arch) else IMAGE_BATCH
    with out.progress() if out is not None else nullcontext(lambda *args: None) as update:
        rows = embed_dataset(model.student, dataset, model.device, batch=batch, num_workers=num_workers,
                             update=lambda done, total: update(stage, done, total))
    if not np.isfinite(rows).all():
        bad = samples[int(np.argmax(~np.isfinite(rows).all(axis=1)))].id
        raise XmdError(f"{stage}: the student gave a NaN or infinite embedding (first for sample {bad!r})",
                       hint="the checkpoint's weights are not finite, or that sample's input is broken")
    return rows


def student_embeddings(directory: Path, manifest: Manifest, ids: list[str], device) -> np.ndarray:
    """float32 [len(ids), D]: the checkpoint's student applied to each sample in `ids`, in that order.

    The loader and embedder evaluate uses, so diagnose sees exactly what evaluate scores.
    """
    by_id = manifest.by_id()
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise XmdError(f"{manifest.workdir}: sample(s) {', '.join(map(repr, unknown[:3]))} are not in the manifest")
    model = load_checkpoint(Path(directory), device)
    samples = [by_id[i] for i in ids]
    return embed_samples(model, manifest, samples, stage="diagnose: student embeddings").astype(np.float32)
