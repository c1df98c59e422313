"""PNG plots for reports: the DET curve and the confusion matrix.

matplotlib comes from `xmd_cli.plotting` (Agg, imported on first use), so
importing xmd_cli.metrics costs nothing and no display is ever needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xmd_cli.metrics.verification import operating_points
from xmd_cli.plotting import pyplot, save_figure

_MAX_POINTS = 4000  # DET points drawn; more are invisible at any figure size
_AXIS_PERCENT = (0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 40, 60)


def _thin(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    n = arrays[0].size
    if n <= _MAX_POINTS:
        return arrays
    keep = np.unique(np.linspace(0, n - 1, _MAX_POINTS).round().astype(np.int64))
    return tuple(a[keep] for a in arrays)


def det_curve_png(path: Path, scores, labels, *, summary: dict | None = None,
                  title: str = "DET curve", label: str | None = None) -> Path:
    """Draw P_miss against P_fa on normal-deviate (probit) axes, the NIST DET plot.

    On these axes two Gaussian score distributions give a straight line. The EER
    point and the minDCF operating points from `summary` (a `verification_summary`)
    are marked. Probabilities are clipped to [0.005 %, 99.995 %] so that the ends
    of the curve, where a rate is 0, stay on the plot.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.metrics.verification import verification_summary
    >>> scores, labels = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 0, 1, 0, 1, 1]
    >>> path = Path(tempfile.mkdtemp()) / "det.png"
    >>> det_curve_png(path, scores, labels, summary=verification_summary(scores, labels)).name
    'det.png'
    """
    from scipy.stats import norm

    points = operating_points(scores, labels)
    lo, hi = 5e-5, 1 - 5e-5
    x, y = _thin(norm.ppf(np.clip(points.p_fa, lo, hi)), norm.ppf(np.clip(points.p_miss, lo, hi)))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=110)
    ax.plot(x, y, lw=1.5, label=label or "DET")
    if summary is not None:
        eer = np.clip(summary["eer"], lo, hi)
        ax.plot(norm.ppf(eer), norm.ppf(eer), "o", color="black",
                label=f"EER {100 * summary['eer']:.2f} %")
        for key in sorted(k for k in summary if k.startswith("min_dcf_threshold@")):
            p = key.split("@")[1]
            hit = int(np.searchsorted(points.thresholds, summary[key]))
            ax.plot(norm.ppf(np.clip(points.p_fa[hit], lo, hi)), norm.ppf(np.clip(points.p_miss[hit], lo, hi)),
                    "s", ms=5, label=f"minDCF(p={p}) {summary[f'min_dcf@{p}']:.4f}")
    ticks = [p / 100 for p in _AXIS_PERCENT]
    names = [f"{p:g}" for p in _AXIS_PERCENT]
    for set_ticks, set_labels, set_lim in ((ax.set_xticks, ax.set_xticklabels, ax.set_xlim),
                                           (ax.set_yticks, ax.set_yticklabels, ax.set_ylim)):
        set_ticks(norm.ppf(ticks))
        set_labels(names)
        set_lim(norm.ppf(lo), norm.ppf(0.6))
    ax.plot(norm.ppf([lo, 0.6]), norm.ppf([lo, 0.6]), ":", color="grey", lw=0.8)
    ax.set_xlabel("false alarm probability (%)")
    ax.set_ylabel("miss probability (%)")
    ax.set_title(title)
    ax.grid(True, lw=0.4, alpha=0.6)
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, path)


def confusion_matrix_png(path: Path, matrix, class_names: list[str] | None = None, *,
                         title: str = "Confusion matrix") -> Path:
    """Rows are true classes, columns predicted; cells are shaded by the row share.

    Counts are written in the cells while the matrix is small enough to read (<= 20 classes).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "confusion.png"
    >>> confusion_matrix_png(path, [[3, 1], [0, 4]], ["cat", "dog"]).stat().st_size > 0
    True
    """
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    names = class_names or [str(i) for i in range(n)]
    row_share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    plt = pyplot()
    side = min(3 + 0.45 * n, 16)
    fig, ax = plt.subplots(figsize=(side, side), dpi=100)
    image = ax.imshow(row_share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= 20:
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if row_share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return save_figure(fig, path)
