"""Shared structure across modalities: linear CKA between teacher and student-alone embeddings.

Linear CKA (Kornblith et al., 2019) compares two representations of the same
samples, invariant to rotation and isotropic scaling, so a 384-d text embedding
and a 64-d image embedding can be compared directly:

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F * ||Yc^T Yc||_F)     (Xc, Yc: column-centred)

which equals HSIC(XX^T, YY^T) / sqrt(HSIC(XX^T, XX^T) HSIC(YY^T, YY^T)) and is
computed in feature space (O(n d1 d2)), never as an n x n Gram matrix.

Overall CKA is high whenever both sides separate the same classes; the question
for distillation is the *within-class* CKA (both sides' class means removed):
does the student's modality vary from sample to sample the way the teacher's
does? Each is compared with a permutation null: rows of the student side shuffled
(overall: among all samples; within: among samples of the same class).
"""

from __future__ import annotations

import numpy as np

from xmd_cli.diagnose.common import (
    encode,
    permutation_p,
    residuals,
    unit_rows,
    with_min_count,
)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if len(x) != len(y):
        raise ValueError(f"CKA needs the same samples on both sides: {len(x)} vs {len(y)} rows")
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else 0.0


def _shuffle_within(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    order = np.arange(len(codes))
    for c in np.unique(codes):
        members = np.flatnonzero(codes == c)
        order[members] = rng.permutation(members)
    return order


def _compare(x: np.ndarray, y: np.ndarray, shuffle, permutations: int) -> dict:
    observed = linear_cka(x, y)
    # Shuffling rows of y changes neither its column means nor ||y^T y||: only the cross term is recomputed.
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    null = np.array([np.linalg.norm(y[shuffle()].T @ x) ** 2 / norm if norm > 0 else 0.0
                     for _ in range(permutations)])
    return {"cka": observed, "null_mean": float(null.mean()), "null_p95": float(np.percentile(null, 95)),
            "p": permutation_p(observed, null), "null": null}


def cka_report(teacher: np.ndarray, student: np.ndarray, labels, *, permutations: int = 199, seed: int = 0) -> dict:
    """Overall and within-class linear CKA of unit-normalised rows, each with its permutation null.

    The returned dicts carry the null draws under "null" (for the plot); the report drops them.
    """
    codes, _ = encode(labels)
    keep = with_min_count(codes, 2)
    t, s = unit_rows(teacher)[keep], unit_rows(student)[keep]
    codes = encode(np.asarray(labels, dtype=str)[keep])[0]
    rng = np.random.default_rng(seed)
    overall = _compare(t, s, lambda: rng.permutation(len(s)), permutations)
    within = _compare(residuals(t, codes), residuals(s, codes), lambda: _shuffle_within(codes, rng), permutations)
    return {"samples": int(len(t)), "teacher_dim": int(t.shape[1]), "student_dim": int(s.shape[1]),
            "permutations": permutations, "overall": overall, "within_class": within}
