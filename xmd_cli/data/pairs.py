"""Verification trials generated over a split: open-set validation when the data names no trial list.

Every pair of samples when there are at most `limit` pairs (small validation
splits: no draw at all). Above that, a seeded draw of half `limit` target pairs
(same label; all of them when there are fewer) and as many non-target pairs
(different labels), each pair once. The seed is the data's (`data.seed`), so every
run on the same data validates on the same trials.
"""

from __future__ import annotations

import numpy as np

from xmd_cli.data.manifest import Sample, Trial
from xmd_cli.errors import XmdError

MAX_TRIALS = 20_000
_STREAM = 4241  # keeps this draw apart from the other draws seeded by data.seed


def generated_trials(samples: list[Sample], *, seed: int, limit: int = MAX_TRIALS,
                     where: str = "samples") -> list[Trial]:
    """Target and non-target trials over `samples` (sorted by id first, so the input order never matters).

    Examples
    --------
    >>> s = [Sample(id=f"{p}/{k}", label=p, split="validation") for p in "ab" for k in range(2)]
    >>> [(t.target, t.enroll, t.test) for t in generated_trials(s, seed=0)][:3]
    [(1, 'a/0', 'a/1'), (0, 'a/0', 'b/0'), (0, 'a/0', 'b/1')]
    """
    samples = sorted(samples, key=lambda s: s.id)
    labels = np.array([s.label for s in samples])
    counts = np.unique(labels, return_counts=True)[1]
    if counts.size < 2 or counts.max() < 2:
        raise XmdError(f"{where}: {len(samples)} sample(s) of {counts.size} identities give no target or no "
                       "non-target trial; open-set validation needs 2+ identities, one with 2+ samples",
                       hint="name a trial list with training.validation_trials, or prepare more validation samples")
    n = len(samples)
    if n * (n - 1) // 2 <= limit:
        first, second = np.triu_indices(n, k=1)
    else:
        first, second = _drawn_pairs(labels, limit, np.random.default_rng([seed, _STREAM]))
    return [Trial(int(labels[a] == labels[b]), samples[a].id, samples[b].id) for a, b in zip(first, second)]


def _drawn_pairs(labels: np.ndarray, limit: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to limit/2 target pairs and limit/2 non-target pairs (a < b), drawn without repeats, in sorted order."""
    half = limit // 2
    targets = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        a, b = np.triu_indices(members.size, k=1)
        targets.append(np.stack((members[a], members[b]), axis=1))
    targets = np.concatenate(targets)
    # A split of few identities may hold fewer non-target pairs than asked for: take them all then.
    wanted = min(half, labels.size * (labels.size - 1) // 2 - len(targets))
    if len(targets) > half:
        targets = targets[np.sort(rng.choice(len(targets), size=half, replace=False))]
    chosen: set[tuple[int, int]] = set()
    n = labels.size
    while len(chosen) < wanted:
        a, b = rng.integers(0, n, size=(2, 4 * half))
        for x, y in zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()):
            if labels[x] != labels[y] and len(chosen) < wanted:
                chosen.add((x, y))
    pairs = np.concatenate((targets, np.array(sorted(chosen))))
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    return pairs[:, 0], pairs[:, 1]
