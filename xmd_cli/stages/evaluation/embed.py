"""Student embeddings of the samples an evaluation needs: eval mode, no grad, whole inputs.

Speech is embedded one whole utterance at a time (batch 1): padding a batch would
change what the convolutions see at the end of each utterance (speechbrain pads
by reflection), and scores must not depend on which utterances shared a batch.
Images, all of one size, go in batches of 64.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from xmd_cli.data.manifest import Manifest, Sample
from xmd_cli.errors import XmdError
from xmd_cli.stages.evaluation.model import CheckpointModel

IMAGE_BATCH = 64


def describe_embedding(model: CheckpointModel) -> str:
    from xmd_cli.students import is_speech_student

    if is_speech_student(model.config):
        return f"whole utterance, batch 1, {model.config.sample_rate} Hz, eval mode"
    return f"first image of each sample, {model.config.image_size} px, eval mode, batch {IMAGE_BATCH}"


@torch.no_grad()
def embed_samples(model: CheckpointModel, manifest: Manifest, samples: list[Sample], *, stage: str,
                  num_workers: int = 0, out=None) -> np.ndarray:
    """float64 (len(samples), embedding_dim), row i from samples[i]."""
    from xmd_cli.datasets import build_dataset, collate
    from xmd_cli.students import is_speech_student

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
    batch = 1 if is_speech_student(model.config) else IMAGE_BATCH
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, collate_fn=collate,
                                         num_workers=num_workers)
    rows = np.empty((len(samples), model.config.embedding_dim), dtype=np.float64)
    done = 0
    with out.progress() if out is not None else nullcontext(lambda *args: None) as update:
        for inputs, _, indices, _ in loader:
            # Batch 1 needs no lengths; image students take none.
            embedding = model.student(inputs.to(model.device))
            rows[indices.numpy()] = embedding.float().cpu().numpy()
            done += indices.numel()
            update(stage, done, len(samples))
    if not np.isfinite(rows).all():
        bad = samples[int(np.argmax(~np.isfinite(rows).all(axis=1)))].id
        raise XmdError(f"{stage}: the student gave a NaN or infinite embedding (first for sample {bad!r})",
                       hint="the checkpoint's weights are not finite, or that sample's input is broken")
    return rows
