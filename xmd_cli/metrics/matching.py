"""Cross-modal matching: student embeddings s_i against projected teacher embeddings z_i.

Sample i has both: s_i from its weak modality (a voice) and z_i = P(t_i) from its
strong one (a face). All similarities are cosines. The identities should be unseen
in training. Definitions, with "s2t" meaning a student probe against teacher
candidates and "t2s" the reverse (same trials, roles swapped):

- Probes are the samples whose identity has at least two samples. A probe's
  positive is another sample j != i of its identity (never its own pair: that
  would reward recognising one recording rather than one person).
- 1:N matching (N in `n_ways`; N = 2 is the 1:2 task, "given a voice, which of
  two faces"): candidates are the positive and one sample of each of N-1 distinct
  other identities. The probe scores 1 when the positive has the strictly highest
  cosine, 1/m when it ties with m-1 others at the top (the expected score of
  random tie-breaking), else 0. Chance is 1/N. Each probe gets `trials_per_probe`
  independent draws; its outcome is their mean.
- Cross-modal verification: from each 1:2 draw, the pair (s_i, z_pos) is a target
  trial and (s_i, z_neg) a non-target. EER and ROC AUC (Mann-Whitney: P(target >
  non-target) + P(tie)/2) as in `verification`. Chance: EER 0.5, AUC 0.5.
- Retrieval recall@k: the probe queries the whole gallery of the other modality
  except its own pair; relevant items are those of its identity. A hit at k when
  fewer than k irrelevant items score at least as high as the best relevant one
  (ties count against). Chance for a query with G items, R relevant:
  1 - C(G-R, k) / C(G, k), averaged over probes.
- Confidence intervals: percentile bootstrap (default 95 %) over *identities*:
  each resample draws identities with replacement and keeps all their probes,
  because probes of one identity are not independent. Trials are drawn once from
  one seeded generator and the bootstrap from another, so changing the number of
  resamples never changes the point estimates.
"""

from __future__ import annotations

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.metrics.verification import (
    eer_from_points,
    points_from_sorted,
    roc_auc_from_points,
)

_BLOCK = 1 << 22  # values (32 MB of float64) computed at once: bounds memory at any data size


def _unit(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    bad = (norms[:, 0] == 0) | ~np.isfinite(norms[:, 0])
    if bad.any():
        raise XmdError(f"{what}: the embedding in row {int(np.argmax(bad))} is zero or not finite, "
                       "so its cosine is undefined", hint="check the embedding extraction of that sample")
    return x / norms


def _check(student, teacher, identities):
    student, teacher = np.asarray(student), np.asarray(teacher)
    if student.ndim != 2 or student.shape != teacher.shape:
        raise XmdError(f"student embeddings {student.shape} and projected teacher embeddings "
                       f"{teacher.shape} must be matrices of the same shape (one row a sample)")
    _, identity = np.unique(np.asarray(identities), return_inverse=True)
    if identity.size != student.shape[0]:
        raise XmdError(f"{identity.size} identities for {student.shape[0]} samples")
    counts = np.bincount(identity)
    if counts.size < 2 or (counts >= 2).sum() == 0:
        raise XmdError("cross-modal matching needs at least two identities, one of them with two or "
                       f"more samples; got {counts.size} identities of sizes {sorted(counts)[-3:]}")
    return _unit(student, "student embeddings"), _unit(teacher, "teacher embeddings"), identity, counts


def _draw_trials(identity: np.ndarray, counts: np.ndarray, probes: np.ndarray, n_candidates: int,
                 repeats: int, rng: np.random.Generator) -> np.ndarray:
    """(probes, repeats, n_candidates) sample indices: column 0 the positive, then one sample
    of each of n_candidates-1 distinct other identities."""
    members = np.argsort(identity, kind="stable")
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank_in_identity = np.empty_like(identity)
    rank_in_identity[members] = np.arange(identity.size) - start[identity[members]]
    own = identity[probes][:, None]
    # Positive: uniform over the other members of the probe's identity.
    pick = (rng.random((probes.size, repeats)) * (counts[own] - 1)).astype(np.int64)
    pick += pick >= rank_in_identity[probes][:, None]
    out = np.empty((probes.size, repeats, n_candidates), dtype=np.int64)
    out[:, :, 0] = members[start[own] + pick]
    if n_candidates > 1:
        # Distinct other identities: the n-1 smallest of random keys, the own identity excluded.
        # Chunks of probes keep the (probes x repeats x identities) keys near 32 MB.
        step = max(1, _BLOCK // (repeats * counts.size))
        for begin in range(0, probes.size, step):
            rows = slice(begin, begin + step)
            keys = rng.random((probes[rows].size, repeats, counts.size))
            keys[np.arange(keys.shape[0]), :, identity[probes[rows]]] = np.inf
            others = np.argpartition(keys, n_candidates - 2, axis=2)[:, :, :n_candidates - 1]
            within = (rng.random(others.shape) * counts[others]).astype(np.int64)
            out[rows, :, 1:] = members[start[others] + within]
    return out


def _match_outcomes(probe_side: np.ndarray, candidate_side: np.ndarray, probes: np.ndarray,
                    trials: np.ndarray) -> np.ndarray:
    """Per-probe mean over draws of the 1:N score (1, 1/m for an m-way tie at the top, 0)."""
    outcome = np.empty(probes.size)
    step = max(1, _BLOCK // trials[0].size // candidate_side.shape[1])
    for begin in range(0, probes.size, step):
        rows = slice(begin, begin + step)
        scores = np.einsum("pd,prcd->prc", probe_side[probes[rows]], candidate_side[trials[rows]])
        at_top = scores == scores.max(axis=2, keepdims=True)
        credit = np.where(at_top[:, :, 0], 1.0 / at_top.sum(axis=2), 0.0)
        outcome[rows] = credit.mean(axis=1)
    return outcome

def _retrieval_hits(query: np.ndarray, gallery: np.ndarray, identity: np.ndarray, probes: np.ndarray,
                    ks) -> tuple[np.ndarray, np.ndarray]:
    """(hits[probe, k], chance[probe, k]) of each probe querying the other modality."""
    hits = np.empty((probes.size, len(ks)))
    chance = np.empty((probes.size, len(ks)))
    n = identity.size
    step = max(1, _BLOCK // n)
    for begin in range(0, probes.size, step):
        rows = probes[begin:begin + step]
        sim = query[rows] @ gallery.T
        relevant = identity[rows][:, None] == identity[None, :]
        relevant[np.arange(rows.size), rows] = False
        own = np.zeros_like(relevant)
        own[np.arange(rows.size), rows] = True
        best = np.where(relevant, sim, -np.inf).max(axis=1, keepdims=True)
        ahead = ((sim >= best) & ~relevant & ~own).sum(axis=1)
        n_relevant = relevant.sum(axis=1)
        for column, k in enumerate(ks):
            hits[begin:begin + rows.size, column] = ahead < k
            chance[begin:begin + rows.size, column] = _chance_of_hit(n - 1, n_relevant, k)
    return hits, chance


def _chance_of_hit(gallery: int, relevant: np.ndarray, k: int) -> np.ndarray:
    """1 - C(G-R, k)/C(G, k): a random ranking puts a relevant item in the top k."""
    miss = np.ones(relevant.size)
    for i in range(min(k, gallery)):
        miss *= np.clip(gallery - relevant - i, 0, None) / (gallery - i)
    return 1 - miss


class _IdentityBootstrap:
    """Percentile CIs from resampling identities; probes carry their identity's weight."""

    def __init__(self, probe_identity: np.ndarray, n_identities: int, resamples: int,
                 confidence: float, rng: np.random.Generator):
        present = np.unique(probe_identity)
        draws = rng.choice(present, size=(resamples, present.size), replace=True)
        # weights[b, i]: how often identity i was drawn in resample b.
        self.weights = np.stack([np.bincount(d, minlength=n_identities) for d in draws]) \
            if resamples else np.zeros((0, n_identities))
        self.probe_identity = probe_identity
        self.tail = (1 - confidence) / 2

    def interval(self, values: np.ndarray) -> tuple[float | None, float | None]:
        if values.size == 0:
            return None, None
        low, high = np.quantile(values, [self.tail, 1 - self.tail])
        return float(low), float(high)

    def mean_interval(self, outcome: np.ndarray):
        """CI of the mean of a per-probe outcome."""
        per_identity = np.bincount(self.probe_identity, weights=outcome, minlength=self.weights.shape[1])
        probes = np.bincount(self.probe_identity, minlength=self.weights.shape[1])
        return self.interval((self.weights @ per_identity) / (self.weights @ probes))

    def trial_weights(self, trial_probe: np.ndarray):
        """Yields, for each resample, how often each trial counts (one row at a time: bounded memory)."""
        trial_identity = self.probe_identity[trial_probe]
        for row in self.weights:
            yield row[trial_identity]


def _entry(value: float, ci, chance: float, n: int) -> dict:
    return {"value": float(value), "ci_low": ci[0], "ci_high": ci[1], "chance": float(chance), "n": int(n)}


def matching_summary(student, teacher, identities, *, n_ways=(2, 10), recall_ks=(1, 5, 10),
                     trials_per_probe: int = 10, bootstrap: int = 1000, confidence: float = 0.95,
                     seed: int = 0) -> dict:
    """Every cross-modal matching number with its bootstrap CI, JSON-ready.

    `student` and `teacher` are (samples x dim) matrices, row i of each from the same
    sample; `identities` gives each row's identity. Returns {"metrics": {name: {value,
    ci_low, ci_high, chance, n}}, "protocol": {...}, "skipped": {name: reason}}
    with names match_1:N_s2t / _t2s, verification_eer, verification_auc,
    recall@k_s2t / _t2s.

    Examples
    --------
    Four identities of two samples each, whose student embeddings lie close to the
    projected teacher embeddings of the same identity:

    >>> rng = np.random.default_rng(0)
    >>> identities = np.repeat(np.arange(4), 2)
    >>> teacher = rng.normal(size=(4, 8))[identities] + 0.1 * rng.normal(size=(8, 8))
    >>> student = teacher + 0.1 * rng.normal(size=(8, 8))
    >>> result = matching_summary(student, teacher, identities, n_ways=(2,), recall_ks=(1,), bootstrap=50)
    >>> sorted(result["metrics"])
    ['match_1:2_s2t', 'match_1:2_t2s', 'recall@1_s2t', 'recall@1_t2s', 'verification_auc', 'verification_eer']
    >>> entry = result["metrics"]["match_1:2_s2t"]
    >>> entry["value"], entry["chance"], entry["n"], entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    (1.0, 0.5, 8, True)
    """
    s, z, identity, counts = _check(student, teacher, identities)
    if trials_per_probe < 1:
        raise XmdError(f"trials_per_probe must be at least 1, got {trials_per_probe}")
    if not 0 < confidence < 1:
        raise XmdError(f"confidence must be between 0 and 1, got {confidence}")
    probes = np.flatnonzero(counts[identity] >= 2)
    trial_rng, boot_rng = (np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2))
    boot = _IdentityBootstrap(identity[probes], counts.size, bootstrap, confidence, boot_rng)
    metrics: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    pair_trials = None
    for n_way in sorted(set(n_ways)):
        name = f"match_1:{n_way}"
        if n_way < 2 or n_way > counts.size:
            skipped[name] = f"needs 2 <= N <= {counts.size} (the number of identities)"
            continue
        trials = _draw_trials(identity, counts, probes, n_way, trials_per_probe, trial_rng)
        if n_way == 2:
            pair_trials = trials
        for direction, probe_side, candidate_side in (("s2t", s, z), ("t2s", z, s)):
            outcome = _match_outcomes(probe_side, candidate_side, probes, trials)
            metrics[f"{name}_{direction}"] = _entry(outcome.mean(), boot.mean_interval(outcome),
                                                    1 / n_way, probes.size)
    if pair_trials is None:  # verification needs 1:2 draws even when 1:2 is not reported
        pair_trials = _draw_trials(identity, counts, probes, 2, trials_per_probe, trial_rng)
    metrics.update(_verification(s, z, probes, pair_trials, boot))
    for direction, query, gallery in (("s2t", s, z), ("t2s", z, s)):
        ks = [k for k in sorted(set(recall_ks)) if k < identity.size - 1]
        skipped.update({f"recall@{k}_{direction}": "k is not below the gallery size"
                        for k in set(recall_ks) - set(ks)})
        hits, chance = _retrieval_hits(query, gallery, identity, probes, ks)
        for column, k in enumerate(ks):
            metrics[f"recall@{k}_{direction}"] = _entry(hits[:, column].mean(),
                                                        boot.mean_interval(hits[:, column]),
                                                        chance[:, column].mean(), probes.size)
    protocol = {"samples": int(identity.size), "identities": int(counts.size), "probes": int(probes.size),
                "trials_per_probe": trials_per_probe, "n_ways": sorted(set(n_ways)),
                "recall_ks": sorted(set(recall_ks)), "bootstrap": bootstrap, "confidence": confidence,
                "bootstrap_unit": "identity", "seed": seed, "similarity": "cosine"}
    return {"metrics": metrics, "protocol": protocol, "skipped": skipped}


def _verification(s, z, probes, pair_trials, boot: _IdentityBootstrap) -> dict:
    """EER and AUC of (s_probe, z_positive) targets against (s_probe, z_negative) non-targets."""
    repeats = pair_trials.shape[1]
    probe_of_trial = np.repeat(np.arange(probes.size), repeats)
    target = np.einsum("nd,nd->n", s[probes[probe_of_trial]], z[pair_trials[:, :, 0].reshape(-1)])
    nontarget = np.einsum("nd,nd->n", s[probes[probe_of_trial]], z[pair_trials[:, :, 1].reshape(-1)])
    scores = np.concatenate((target, nontarget))
    labels = np.concatenate((np.ones(target.size, bool), np.zeros(nontarget.size, bool)))
    trial_probe = np.concatenate((probe_of_trial, probe_of_trial))
    order = np.argsort(scores)
    scores, labels, trial_probe = scores[order], labels[order], trial_probe[order]
    points = points_from_sorted(scores, labels)
    eers, aucs = [], []
    for weights in boot.trial_weights(trial_probe):
        resampled = points_from_sorted(scores, labels, weights)
        eers.append(eer_from_points(resampled)[0])
        aucs.append(roc_auc_from_points(resampled))
    n = int(labels.size)
    return {"verification_eer": _entry(eer_from_points(points)[0], boot.interval(np.array(eers)), 0.5, n),
            "verification_auc": _entry(roc_auc_from_points(points), boot.interval(np.array(aucs)), 0.5, n)}
