"""Where a stage's stores live, and what fingerprint a consumer expects of them.

extract-teacher and score-quality write `WORKDIR/teacher/<fp>/` and
`WORKDIR/quality/<fp>/`, where <fp> hashes everything that determines the
values. A consumer (distill, evaluate) computes the fingerprint it expects from
its own recipe, without loading any network, and refuses a store written with
other inputs, saying what differs, unless told to accept it (--allow-stale).
"""

from __future__ import annotations

from pathlib import Path

from xmd_cli import __version__
from xmd_cli.data.manifest import Manifest
from xmd_cli.errors import XmdError
from xmd_cli.recipe import QualitySideConfig, TeacherConfig
from xmd_cli.shards import diff, store_dir
from xmd_cli.shards.format import read_meta


def teacher_description(config: TeacherConfig, manifest: Manifest | None = None) -> dict:
    """The teacher's own part of the fingerprint: kind, weights hash, preprocessing.

    A control teacher's part names its kind, seed and its source store's fingerprint,
    which depends on the manifest: controls need `manifest`.
    """
    if config.kind in ("random", "class-mean", "shuffled"):
        from xmd_cli.teachers.controls import describe_control
        return describe_control(config, manifest)
    if config.kind == "face":
        from xmd_cli.teachers.face import describe
    elif config.kind == "text":
        from xmd_cli.teachers.text import describe
    elif config.kind == "checkpoint":
        from xmd_cli.teachers.checkpoint import describe
        if not config.weights:
            raise XmdError("teacher.kind checkpoint needs teacher.weights: a checkpoint directory from `xmd train`")
    else:
        raise XmdError(f"teacher.kind {config.kind!r} has no store of its own")
    return describe(config.weights)


def teacher_components(config: TeacherConfig, manifest: Manifest, description: dict | None = None) -> dict:
    return {**(description or teacher_description(config, manifest)), "manifest_sha256": manifest.fingerprint,
            "dtype": config.dtype, "frames": config.frames, "xmd_version": __version__}


def quality_components(side: QualitySideConfig, manifest: Manifest, signals: list[str]) -> dict:
    return {"scorer": side.modality, "weights": side.weights, "midpoints": side.midpoints,
            "columns": ["score", *signals], "manifest_sha256": manifest.fingerprint, "xmd_version": __version__}


def quality_store(side: QualitySideConfig, manifest: Manifest, *, allow_stale: bool, out=None):
    """The reader of the quality store that `xmd score-quality --modality M` wrote for this side."""
    from xmd_cli.quality import default_signals
    from xmd_cli.shards import ShardReader

    expected = quality_components(side, manifest, [signal.name for signal in default_signals(side.modality)])
    path = find_store(manifest.workdir, "quality", expected, allow_stale=allow_stale,
                      stage=f"score-quality --modality {side.modality}", out=out)
    return ShardReader(path, expect_fingerprint=expected, allow_stale=allow_stale)


# The components that say what a store *is*; a stale store must agree on these to stand in.
IDENTITY = {"teacher": ("teacher", "source_teacher"), "quality": ("scorer",)}


def find_store(workdir: Path, kind: str, expected: dict, *, allow_stale: bool, stage: str, out=None) -> Path:
    """The store written with `expected`; with --allow-stale the newest store of the same teacher or scorer."""
    exact = store_dir(workdir, kind, expected)
    if (exact / "meta.json").exists():
        return exact
    same = [key for key in IDENTITY[kind]]
    candidates = sorted((p for p in (Path(workdir) / kind).glob("*/meta.json")
                         if all(read_meta(p.parent)["components"].get(k) == expected.get(k) for k in same)),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        what = ", ".join(f"{k} {expected.get(k)}" for k in same if expected.get(k) is not None)
        raise XmdError(f"{Path(workdir) / kind}: no {kind} store yet ({what})", hint=f"run `xmd {stage}` first")
    newest = candidates[-1].parent
    differences = diff(expected, read_meta(newest)["components"])
    if allow_stale:
        if out is not None:
            out.note(f"[yellow]using a stale {kind} store[/yellow] {newest}: " + "; ".join(differences))
        return newest
    raise XmdError(f"the {kind} store {newest} was written with other inputs than this recipe asks for:\n  "
                   + "\n  ".join(differences),
                   hint=f"rerun `xmd {stage}` with this recipe, or pass --allow-stale to use it anyway")
