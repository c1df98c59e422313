"""Quality vs teacher reliability: do low-quality samples sit far from their class in teacher space?

QAW down-weights the teacher terms of low-quality samples on the premise that a
poor face (or caption) gives an unreliable teacher embedding. Here that premise is
measured: each sample's cosine distance to its class centroid in teacher space
(leave-one-out, so a sample does not pull its own centroid toward itself),
against its teacher-side quality score, by Spearman rank correlation. A clearly
negative correlation means the quality score finds the unreliable rows.
"""

from __future__ import annotations

import numpy as np

from xmd_cli.diagnose.common import encode, unit_rows


def centroid_distances(rows: np.ndarray, labels) -> np.ndarray:
    """1 - cos(row, mean of the other rows of its class); NaN for a class of one."""
    x = unit_rows(rows)
    codes, _ = encode(labels)
    k = int(codes.max()) + 1
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, codes, x)
    counts = np.bincount(codes, minlength=k)[codes]
    others = sums[codes] - x
    norms = np.linalg.norm(others, axis=1)
    cos = np.einsum("nd,nd->n", x, others) / np.where(norms > 0, norms, 1.0)
    return np.where(counts > 1, 1.0 - cos, np.nan)


def quality_reliability(quality: np.ndarray, rows: np.ndarray, labels) -> dict:
    """Spearman correlation of quality with centroid distance, and the distances of the worst and best quarter."""
    from scipy.stats import spearmanr

    distance = centroid_distances(rows, labels)
    quality = np.asarray(quality, np.float64)
    ok = np.isfinite(distance) & np.isfinite(quality)
    q, d = quality[ok], distance[ok]
    result = {"samples": int(ok.sum())}
    if len(q) < 4 or np.ptp(q) == 0:
        return {**result, "skipped": "quality is constant or there are fewer than four samples", "plot": (q, d)}
    rho, p = spearmanr(q, d)
    low, high = np.quantile(q, [0.25, 0.75])
    result.update(spearman_rho=float(rho), p=float(p),
                  distance_low_quality=float(d[q <= low].mean()), distance_high_quality=float(d[q >= high].mean()),
                  distance_mean=float(d.mean()), plot=(q, d))
    return result
