"""Batches of inputs with identical shape, for embedding without padding.

A speech student must see each whole utterance exactly as it would alone: padding
a batch would change what the convolutions and the pooling see at the end of the
shorter utterances. Utterances of *identical* sample count can share a batch with
no padding at all, so items are grouped by shape as they stream in; a group is
sent on when it is full (`batch` items, or `max_values` numbers in all), and
groups are flushed early when everything held together passes `max_held` numbers,
so memory stays bounded whatever the lengths. Images, all of one size, form plain
batches of `batch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

MAX_VALUES = 1 << 21  # numbers in one batch: 2M floats, ~2 minutes of 16 kHz audio
MAX_HELD = 1 << 25  # numbers waiting in all groups: 32M floats, 128 MB


def same_shape_batches(items: Iterable[tuple], *, batch: int, max_values: int = MAX_VALUES,
                       max_held: int = MAX_HELD) -> Iterator[list[tuple]]:
    """Lists of items (tensor first) whose tensors have one shape; every item exactly once.

    Examples
    --------
    >>> items = [(torch.zeros(n), 0, i) for i, n in enumerate([3, 5, 3, 3, 5])]
    >>> [[i for _, _, i in group] for group in same_shape_batches(items, batch=2)]
    [[0, 2], [1, 4], [3]]
    """
    groups: dict[tuple, list[tuple]] = {}
    held = 0
    for item in items:
        shape = tuple(item[0].shape)
        group = groups.setdefault(shape, [])
        group.append(item)
        held += item[0].numel()
        if len(group) >= batch or len(group) * item[0].numel() >= max_values:
            held -= sum(x[0].numel() for x in group)
            yield groups.pop(shape)
        while held > max_held and groups:
            # Flush the group holding the most numbers: a short batch, never a padded one.
            shape = max(groups, key=lambda k: len(groups[k]) * groups[k][0][0].numel())
            held -= sum(x[0].numel() for x in groups[shape])
            yield groups.pop(shape)
    yield from groups.values()


def stack_batch(group: list[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs stacked along a new first axis, sample indices) of a same-shape group of (input, label, index)."""
    return torch.stack([item[0] for item in group]), torch.as_tensor([item[2] for item in group], dtype=torch.long)


def _as_is(item):
    return item


@torch.no_grad()
def embed_dataset(embed: Callable[[torch.Tensor], torch.Tensor], dataset, device: torch.device, *, batch: int,
                  num_workers: int = 0, update: Callable[[int, int], None] | None = None) -> np.ndarray:
    """float64 (len(dataset), dim): row i from item i of `dataset`, batched only with inputs of the same shape.

    Items (input, label, index) stream from a DataLoader one at a time (reading in its
    workers) and are grouped by exact shape, so no input is padded or cropped: each row
    is what `embed` gives the input alone, up to the float rounding of batched kernels.
    The caller puts the network in eval mode. Used by evaluation (inference.py) and by
    open-set validation during training, so both embed alike.
    """
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, collate_fn=_as_is,
                                         num_workers=num_workers)
    rows, done = None, 0
    for group in same_shape_batches(loader, batch=batch):
        inputs, indices = stack_batch(group)
        embedding = embed(inputs.to(device)).float().cpu().numpy()  # one shape: no lengths needed
        if rows is None:
            rows = np.empty((len(dataset), embedding.shape[1]), dtype=np.float64)
        rows[indices.numpy()] = embedding
        done += len(group)
        if update is not None:
            update(done, len(dataset))
    return rows
