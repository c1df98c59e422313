"""Split assignment shared by the adapters whose data names no split.

Rules, in order:
1. `config.split` set: every sample goes there.
2. A sample whose label is named in a trial list is `test`: verification is on
   identities unseen in training, so test identities are whole classes.
3. Otherwise `validation_fraction` of each class (at least one sample of a class
   with 3 or more, chosen by a seeded shuffle) is `validation`; the rest `train`.
"""

from __future__ import annotations

import random
from collections import defaultdict

from xmd_cli.data.manifest import Sample, Trial


def assign_splits(samples: list[Sample], *, validation_fraction: float, seed: int,
                  forced: str | None = None, test_labels: set[str] = frozenset()) -> None:
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
        n_val = round(len(group) * validation_fraction) if validation_fraction > 0 else 0
        if validation_fraction > 0 and n_val == 0 and len(group) >= 3:
            n_val = 1
        for i, s in enumerate(group):
            s.split = "validation" if i < n_val else "train"


def labels_in_trials(trials: dict[str, list[Trial]], label_of: dict[str, str]) -> set[str]:
    """Labels of every sample a trial list names (ids unknown to `label_of` are skipped)."""
    return {label_of[i] for ts in trials.values() for t in ts for i in (t.enroll, t.test) if i in label_of}
