"""Does the teacher separate the classes? Cross-validated accuracy and within/between-class cosine.

A teacher whose embeddings do not separate the labels gives the shared classifier
nothing to pull toward; one that separates them perfectly may still add nothing
beyond the label (that is `beyond_label`'s question).
"""

from __future__ import annotations

import warnings

import numpy as np

from xmd_cli.diagnose.common import (
    encode,
    folds_for,
    stratified_subset,
    unit_rows,
    with_min_count,
)


def cosine_summary(rows: np.ndarray, codes: np.ndarray) -> dict:
    """Mean cosine over same-class pairs and over different-class pairs, in O(n d) memory.

    With unit rows, the sum of all pairwise cosines of a set is |sum|^2 - n (self pairs
    removed), so class sums give both means without an n x n matrix.
    """
    x = unit_rows(rows)
    k = int(codes.max()) + 1
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, codes, x)
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    within_pairs = counts * (counts - 1)
    within_sum = (np.einsum("kd,kd->k", sums, sums) - counts)
    total = x.sum(axis=0)
    between_pairs = len(x) ** 2 - np.sum(counts ** 2)
    between_sum = float(total @ total) - float(np.einsum("kd,kd->", sums, sums))
    within = float(within_sum.sum() / within_pairs.sum()) if within_pairs.sum() else float("nan")
    between = float(between_sum / between_pairs) if between_pairs else float("nan")
    return {"within_cosine": within, "between_cosine": between, "cosine_gap": within - between}


def pair_cosines(rows: np.ndarray, codes: np.ndarray, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of random same-class and different-class pairs (for the histogram in the report)."""
    x, rng = unit_rows(rows), np.random.default_rng(seed)
    a, b = rng.integers(0, len(x), 20 * pairs), rng.integers(0, len(x), 20 * pairs)
    a, b = a[a != b], b[a != b]
    same = codes[a] == codes[b]
    cos = np.einsum("nd,nd->n", x[a], x[b])
    return cos[same][:pairs], cos[~same][:pairs]


def separability(rows: np.ndarray, labels, *, folds: int = 5, seed: int = 0, max_samples: int = 4000) -> dict:
    """Cross-validated nearest-centroid and linear-probe accuracy of the teacher rows on the labels.

    Rows are unit-normalised (nearest centroid is then a cosine classifier). Classes with
    fewer than two samples are left out. Above `max_samples` a stratified subset is used.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import NearestCentroid
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    codes, _ = encode(labels)
    keep = with_min_count(codes, 2)
    x, codes = unit_rows(rows)[keep], encode(np.asarray(labels, dtype=str)[keep])[0]
    result = {"samples": int(len(x)), "classes": int(len(np.unique(codes))), "left_out_samples": int((~keep).sum())}
    if result["classes"] < 2:
        return {**result, "skipped": "fewer than two classes with two or more samples"}
    result.update(cosine_summary(x, codes))
    subset = stratified_subset(codes, max_samples, seed)
    xs, ys = x[subset], encode(codes[subset])[0]
    k = folds_for(ys, folds)
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny folds says nothing a user can act on
        centroid = cross_val_score(NearestCentroid(), xs, ys, cv=cv).mean()
        linear = cross_val_score(probe, xs, ys, cv=cv).mean()
    chance = float(np.bincount(ys).max() / len(ys))
    best = max(centroid, linear)
    result.update(samples_cv=int(len(xs)), folds=k, nearest_centroid_accuracy=float(centroid),
                  linear_probe_accuracy=float(linear), chance=chance,
                  # 0 at chance, 1 at perfect: comparable across numbers of classes
                  lift_over_chance=float((best - chance) / (1 - chance)) if chance < 1 else 0.0)
    return result
