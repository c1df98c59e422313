"""Small helpers every diagnostic shares: unit rows, class means, fold counts, subsampling."""

from __future__ import annotations

import numpy as np


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length: teachers are compared by cosine, so their norms carry no meaning here."""
    rows = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


def encode(labels) -> tuple[np.ndarray, list[str]]:
    """Labels -> integer codes 0..K-1 (sorted label order) and the label names."""
    names, codes = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
    return codes.astype(np.int64), [str(n) for n in names]


def class_means(rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """[K, d] mean row of each class code."""
    k = int(codes.max()) + 1 if len(codes) else 0
    sums = np.zeros((k, rows.shape[1]))
    np.add.at(sums, codes, rows)
    return sums / np.maximum(np.bincount(codes, minlength=k), 1)[:, None]


def residuals(rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each row minus its class mean: the part of the embedding the label does not explain."""
    return rows - class_means(rows, codes)[codes]


def with_min_count(codes: np.ndarray, minimum: int) -> np.ndarray:
    """Mask of samples whose class has at least `minimum` samples."""
    counts = np.bincount(codes)
    return counts[codes] >= minimum


def folds_for(codes: np.ndarray, wanted: int = 5) -> int:
    """Stratified folds possible: at most `wanted`, at most the smallest class's size."""
    return int(min(wanted, np.bincount(codes)[np.unique(codes)].min()))


def stratified_subset(codes: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of at most `limit` samples, the same share of each class (cross-validation cost grows with n)."""
    n = len(codes)
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(codes):
        members = np.flatnonzero(codes == c)
        take = max(2, int(round(len(members) * limit / n)))
        keep.append(rng.choice(members, min(take, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def permutation_p(observed: float, null: np.ndarray) -> float:
    """One-sided permutation p-value, counting the observed value as one of the draws."""
    return float((1 + np.sum(np.asarray(null) >= observed)) / (1 + len(null)))
