"""A batch sampler whose position can be saved and restored exactly.

The order of an epoch is a permutation drawn from (seed, epoch) alone, so a
resumed run replays the same batches; `skip` drops the batches already done.
Under torchrun each rank takes its own slice of every global batch.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[list[int]]):
    def __init__(self, size: int, global_batch: int, *, seed: int, rank: int = 0, world: int = 1,
                 shuffle: bool = True):
        if global_batch % world:
            raise ValueError(f"batch size {global_batch} is not divisible by {world} processes")
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.rank, self.world, self.shuffle = rank, world, shuffle
        self.local_batch = global_batch // world
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        # Full batches only: every step sees the same batch size on every rank.
        return self.size // self.global_batch - self.skip

    @property
    def steps_per_epoch(self) -> int:
        return self.size // self.global_batch

    def __iter__(self):
        order = np.arange(self.size)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        for step in range(self.skip, self.steps_per_epoch):
            batch = order[step * self.global_batch:(step + 1) * self.global_batch]
            yield batch[self.rank * self.local_batch:(self.rank + 1) * self.local_batch].tolist()
