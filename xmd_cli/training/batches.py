"""Batches: the DataLoader of an epoch, the in-order sampler of validation, moving values to the device."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader


def to_device(value, device):
    return value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value


def make_loader(dataset, batch_sampler, collate, *, seed: int, epoch: int, num_workers: int) -> DataLoader:
    # An explicit generator: creating the iterator must not draw from the global RNG,
    # or a resumed run would see other random numbers than an uninterrupted one.
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate,
                      num_workers=num_workers, generator=generator, persistent_workers=False)


class InOrder(torch.utils.data.Sampler):
    """Every index once, in order, in batches (the last one may be short)."""

    def __init__(self, size: int, batch: int):
        self.size, self.batch = size, batch

    def __len__(self):
        return -(-self.size // self.batch)

    def __iter__(self):
        for start in range(0, self.size, self.batch):
            yield list(range(start, min(self.size, start + self.batch)))
