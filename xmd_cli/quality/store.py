"""What a quality store's consumer expects of it, and how it is opened.

`xmd score-quality --modality M` writes `WORKDIR/quality/<fp>/` (rows: the
combined score, then each raw signal); distill, diagnose and evaluate open it
by the fingerprint their own recipe implies.
"""

from __future__ import annotations

from xmd_cli import __version__
from xmd_cli.data.manifest import Manifest
from xmd_cli.recipe import QualitySideConfig
from xmd_cli.shards.locate import find_store


def quality_components(side: QualitySideConfig, manifest: Manifest, signals: list[str]) -> dict:
    """Everything that determines a quality store's values."""
    components = {"scorer": side.modality, "weights": side.weights, "midpoints": side.midpoints,
                  "columns": ["score", *signals], "manifest_sha256": manifest.fingerprint,
                  "xmd_version": __version__}
    if side.modality == "face":  # the other scorers have no fallback: their stores keep their fingerprints
        components["fallback"] = side.fallback
        components["fallback_cap"] = side.fallback_cap if side.fallback != "none" else None
    return components


def quality_store(side: QualitySideConfig, manifest: Manifest, *, allow_stale: bool, out=None):
    """The reader of the quality store that `xmd score-quality --modality M` wrote for this side."""
    from xmd_cli.quality import default_signals
    from xmd_cli.shards import ShardReader

    expected = quality_components(side, manifest, [signal.name for signal in default_signals(side.modality)])
    path = find_store(manifest.workdir, "quality", expected, allow_stale=allow_stale,
                      stage=f"score-quality --modality {side.modality}", out=out)
    return ShardReader(path, expect_fingerprint=expected, allow_stale=allow_stale)
