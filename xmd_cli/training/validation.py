"""Closed-set validation of the student at the end of each epoch."""

from __future__ import annotations

import torch

from xmd_cli.training.batches import InOrder, make_loader, to_device


@torch.no_grad()
def validate(model, job, device) -> dict:
    """Closed-set accuracy and classification loss of the student on the validation split."""
    model.eval()
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
