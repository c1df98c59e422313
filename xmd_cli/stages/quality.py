"""`xmd score-quality`: one quality row a sample, for one modality, into a shard store.

A row is [combined score, signal 1, signal 2, ...] (float32; the column names are
in the store's fingerprint). A sample that cannot be scored (silence, an
unreadable file, no face with the face fallback off) gets score 0 and its reason
in reasons.jsonl; its unmeasured signals are stored as 0. A photo without a
detected face scored by the face fallback keeps its fallback score and has its
reason there too. Resumable like every store: scored samples are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xmd_cli.console import Output
from xmd_cli.data.manifest import Manifest, Sample, read_manifest
from xmd_cli.errors import XmdError
from xmd_cli.io import ensure_writable, write_text
from xmd_cli.plotting import pyplot, save_figure
from xmd_cli.quality.store import quality_components
from xmd_cli.recipe import QualitySideConfig, Recipe
from xmd_cli.shards import ShardReader, ShardWriter, store_dir

CHUNK = 64
REASONS = "reasons.jsonl"


def side_for(recipe: Recipe, modality: str) -> tuple[str, QualitySideConfig]:
    """The recipe's quality settings for `modality`: its teacher or student side, else defaults."""
    for side in ("teacher", "student"):
        config = getattr(recipe.quality, side)
        if config.modality == modality:
            return side, config
    return "quality", QualitySideConfig(modality=modality)


def scorer_input(sample: Sample, manifest: Manifest, modality: str):
    """What the scorer of `modality` reads for one sample, or None when the sample has nothing."""
    if modality == "speech":
        if not sample.audio:
            return None
        if sample.segment is None:
            return manifest.path(sample.audio)
        from xmd_cli.data.media import read_audio

        try:
            return read_audio(manifest.path(sample.audio), segment=sample.segment)
        except XmdError:
            return manifest.path(sample.audio)  # the scorer reports the unreadable file itself
    if modality in ("face", "image"):
        return manifest.path(sample.images[0]) if sample.images else None
    return sample.text


def run_quality(recipe: Recipe, workdir: Path, *, modality: str, device: str = "auto", force: bool = False,
                out: Output | None = None) -> dict:
    from xmd_cli.quality import scorer_for_side
    from xmd_cli.training.distributed import resolve_device

    out = out or Output()
    manifest = read_manifest(Path(workdir))
    side, config = side_for(recipe, modality)
    options = {"device": resolve_device(device)} if modality == "face" else {}
    scorer = scorer_for_side(config, side if side != "quality" else "teacher", **options)
    names = list(scorer.signal_names)
    components = quality_components(config, manifest, names)
    store = store_dir(manifest.workdir, "quality", components)
    ensure_writable(store.parent)  # before loading a scorer (MTCNN) and scoring
    reasons: dict[str, str] = _read_reasons(store) if not force else {}
    opened = False
    try:
        with ShardWriter(store, components, dim=1 + len(names), dtype="float32", shard_rows=8192,
                         force=force) as writer:
            opened = True
            _score_pending(writer, scorer, manifest, modality, names, reasons, out)
    finally:
        if opened:  # written even when interrupted: rows already stored keep their reasons
            write_text(store / REASONS, "".join(json.dumps({"id": i, "reason": r}) + "\n"
                                                 for i, r in sorted(reasons.items())))
    return _summarise(store, manifest, modality, names, reasons, out)


def _score_pending(writer, scorer, manifest: Manifest, modality: str, names: list[str], reasons: dict,
                   out: Output) -> None:
    by_id = manifest.by_id()
    pending = writer.pending_ids([s.id for s in manifest.samples])
    with out.progress() as progress:
        progress(f"score-quality {modality}", 0, len(pending))
        for start in range(0, len(pending), CHUNK):
            ids = pending[start:start + CHUNK]
            rows, items, where = np.zeros((len(ids), 1 + len(names)), np.float32), [], []
            for k, sample_id in enumerate(ids):
                item = scorer_input(by_id[sample_id], manifest, modality)
                if item is None:
                    reasons[sample_id] = f"the sample has no {modality} input"
                else:
                    items.append(item)
                    where.append(k)
            for k, result in zip(where, scorer.score_batch(items)):
                signals = [result.signals.get(n, np.nan) for n in names]
                rows[k] = np.nan_to_num([result.score, *signals], nan=0.0, posinf=0.0, neginf=0.0)
                if result.reason:
                    reasons[ids[k]] = result.reason
            writer.add(ids, rows)
            progress(f"score-quality {modality}", start + len(ids), len(pending))


def _read_reasons(store: Path) -> dict[str, str]:
    path = store / REASONS
    if not path.exists():
        return {}
    return {r["id"]: r["reason"] for r in map(json.loads, path.read_text().splitlines()) if r}


def _summarise(store: Path, manifest: Manifest, modality: str, names: list[str], reasons: dict, out: Output) -> dict:
    reader = ShardReader(store)
    ids = [s.id for s in manifest.samples]
    rows = reader.get(ids)
    measured = np.array([i not in reasons for i in ids])
    fallback = int(np.sum(~measured & (rows[:, 0] > 0)))  # the face fallback's scores: a reason, score > 0
    columns = ["score", *names]
    percentiles = {}
    for c, name in enumerate(columns):
        values = rows[:, c] if name == "score" else rows[measured, c]
        if len(values):
            percentiles[name] = dict(zip(("p5", "p25", "p50", "p75", "p95"),
                                         np.percentile(values, [5, 25, 50, 75, 95]).round(4).tolist()))
    histogram = store / "score-histogram.png"
    _histogram(rows[:, 0], histogram, f"{modality} quality, {len(ids)} samples")
    out.table(f"score-quality {modality} (percentiles; signals over the {int(measured.sum())} scorable samples)",
              [(n, *p.values()) for n, p in percentiles.items()], ("signal", "p5", "p25", "p50", "p75", "p95"))
    out.note(f"{len(reasons) - fallback} sample(s) scored 0 with a reason"
             + (f", {fallback} by the fallback (no face found)" if fallback else "")
             + f" (in {store / REASONS}); histogram {histogram}")
    return {"store": str(store), "modality": modality, "samples": len(ids), "unscorable": len(reasons) - fallback,
            "fallback": fallback,
            "columns": columns, "percentiles": percentiles, "histogram": str(histogram)}


def _histogram(scores: np.ndarray, path: Path, title: str) -> None:
    figure, axis = pyplot().subplots(figsize=(5, 3.2), dpi=120)
    axis.hist(scores, bins=np.linspace(0, 1, 41), color="#3b6ea8")
    axis.set_xlabel("combined quality score")
    axis.set_ylabel("samples")
    axis.set_title(title, fontsize=9)
    save_figure(figure, path)
