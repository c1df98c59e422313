"""matplotlib for report plots: the Agg back-end, imported on first use, one way to save.

Reports are written on servers and in batch jobs, so no display is ever needed;
importing matplotlib lazily keeps `xmd --help` and metric-only imports fast.
"""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot with the Agg back-end selected."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path) -> Path:
    """Lay out, write the PNG (creating its folder) and close `figure`; returns the path."""
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot().close(figure)
    return path
