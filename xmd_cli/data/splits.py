"""Split assignment shared by the adapters whose data names no split.

Rules, in order:
1. `config.split` set: every sample goes there.
2. A sample whose label is named in a trial list is `test`: verification is on
   identities unseen in training, so test identities are whole classes.
3. Otherwise, per class and by one seeded shuffle, `test_fraction` of the class
   is `test`, then `validation_fraction` of it `validation` (each at least one
   sample of a class with 3 or more, when its fraction is set); the rest `train`.
"""

from __future__ import annotations

import random
from collections import defaultdict

from xmd_cli.data.manifest import Sample, Trial


def _share(size: int, fraction: float) -> int:
    """Samples of a class of `size` that `fraction` holds out: at least one of 3 or more when set."""
    if fraction <= 0:
        return 0
    n = round(size * fraction)
    return 1 if n == 0 and size >= 3 else n


def assign_splits(samples: list[Sample], *, validation_fraction: float, seed: int,
                  forced: str | None = None, test_labels: set[str] = frozenset(),
                  test_fraction: float = 0.0) -> None:
    """Set `split` on each sample in place."""
    if forced:
        for s in samples:
            s.split = forced
        return
    by_label: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.label in test_labels:
            s.split = "test"
        else:
            by_label[s.label].append(s)
    rng = random.Random(seed)
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda s: s.id)
        rng.shuffle(group)
        n_test = _share(len(group), test_fraction)
        # Leave at least one training sample: a class seen only in test cannot be classified.
        n_val = min(_share(len(group), validation_fraction), max(0, len(group) - n_test - 1))
        for i, s in enumerate(group):
            s.split = "test" if i < n_test else "validation" if i < n_test + n_val else "train"


def labels_in_trials(trials: dict[str, list[Trial]], label_of: dict[str, str]) -> set[str]:
    """Labels of every sample a trial list names (ids unknown to `label_of` are skipped)."""
    return {label_of[i] for ts in trials.values() for t in ts for i in (t.enroll, t.test) if i in label_of}
