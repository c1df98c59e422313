"""Validation of the student at the end of each epoch: closed-set accuracy, or open-set EER.

Closed set (the validation samples' labels are training classes): accuracy and
loss of the student's own classifier. Open set (validation identities unseen in
training, `job.val_trials` set): the EER of cosine scores on the trials, with the
validation samples embedded as evaluation embeds them (whole inputs, batched only
with inputs of the same shape), so `best` is chosen by the number the field reports.
"""

from __future__ import annotations

import numpy as np
import torch

from xmd_cli.data.buckets import embed_dataset
from xmd_cli.metrics.verification import eer
from xmd_cli.training.batches import InOrder, make_loader, to_device

OPEN_SET_BATCH = 32  # inputs of one shape embedded at once (as inference.SPEECH_BATCH)


def validate(model, job, device) -> dict:
    """{"val/eer"} on the trials when the job has some, else {"val/accuracy", "val/loss"}."""
    model.eval()
    if job.val_trials is not None:
        return open_set(model, job, device)
    return closed_set(model, job, device)


@torch.no_grad()
def open_set(model, job, device) -> dict:
    """EER of cosine scores between the embeddings of each trial's two validation samples."""
    rows = embed_dataset(model.embed, job.val_set, device, batch=OPEN_SET_BATCH, num_workers=job.config.num_workers)
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    enroll, test, labels = job.val_trials
    scores = np.einsum("ij,ij->i", unit[enroll], unit[test])
    return {"val/eer": eer(scores, labels)}


@torch.no_grad()
def closed_set(model, job, device) -> dict:
    """Closed-set accuracy and classification loss of the student on the validation split."""
    batch = max(1, min(job.val_batch_size, len(job.val_set)))
    sampler = InOrder(len(job.val_set), batch)
    correct, loss_sum, count = 0, 0.0, 0
    classifier = model.method.classifier
    loader = make_loader(job.val_set, sampler, job.collate, seed=job.seed, epoch=0,
                         num_workers=job.config.num_workers)
    for inputs, labels, _, *rest in loader:
        inputs, labels = to_device(inputs, device), to_device(labels, device)
        embedding = model.embed(inputs, to_device(rest[0], device) if rest else None)
        logits = classifier.logits(embedding)
        loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        count += labels.shape[0]
    return {"val/accuracy": correct / count, "val/loss": loss_sum / count}
