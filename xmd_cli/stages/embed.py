"""`xmd embed`: a trained student over many inputs, to an embedding file for other tools.

Inputs: see `stages.embed_inputs` (work directory, wav.scp, file list, folder).
Embedding: `inference.embed_samples`, the path evaluate takes, so `xmd embed`
gives exactly the vectors evaluate scores.

Resuming: rows go first to a store beside the output, OUT.parts/ (the writer of
the teacher stores: a shard of `part_rows` samples at a time, written whole and
renamed), which remembers which ids are done. An interrupted run (Ctrl-C, a kill,
a bad file) keeps every finished part; the rerun embeds only the ids still missing,
then writes OUT in one piece from the parts and removes them. OUT.xmd.json beside
the output records what made it (checkpoint weights, inputs, embedding), so a
rerun of the same command is a no-op and a different run refuses to overwrite it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import contextmanager
from pathlib import Path

from xmd_cli import __version__
from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.io import file_sha256, write_json
from xmd_cli.shards.embedfile import companion_files, embedding_format, write_embeddings
from xmd_cli.shards.fingerprint import Fingerprint, canonical_json, diff

PART_ROWS = 256  # samples a part: what a kill can lose, and how often the bar's store is fsynced


def sidecar_path(out_path: Path) -> Path:
    return Path(out_path).with_name(Path(out_path).name + ".xmd.json")


def parts_path(out_path: Path) -> Path:
    return Path(out_path).with_name(Path(out_path).name + ".parts")


class _RunProgress:
    """An `out` for one `embed_samples` call whose bar counts the whole run, not the one part."""

    def __init__(self, update, offset: int, total: int):
        self.update, self.offset, self.total = update, offset, total

    @contextmanager
    def progress(self):
        yield lambda stage, done, total, info="": self.update("embed", self.offset + done, self.total)


def _components(model, manifest, samples, kind: str) -> dict:
    from xmd_cli.inference import describe_embedding

    listing = [(s.id, s.audio or (s.images[0] if s.images else None), s.segment) for s in samples]
    return {"stage": "embed", "checkpoint_weights_sha256": file_sha256(model.directory / "weights.safetensors"),
            "student": model.config.arch, "embedding": describe_embedding(model), "source": kind,
            "inputs_sha256": hashlib.sha256(canonical_json(listing).encode()).hexdigest(),
            "manifest_sha256": manifest.fingerprint if kind == "workdir" else None}


def _check_output(out_path: Path, fmt: str, components: dict, force: bool) -> bool:
    """True when OUT is already this run's finished output; refuses another run's output."""
    files = companion_files(out_path, fmt)
    if force or parts_path(out_path).exists() or not any(p.exists() for p in files):
        return False  # nothing there, replacing on purpose, or finishing a run of ours (parts decide)
    sidecar = sidecar_path(out_path)
    recorded = json.loads(sidecar.read_text()).get("components") if sidecar.is_file() else None
    if recorded == components and all(p.exists() for p in files):
        return True
    why = ("; ".join(diff(components, recorded)) if recorded is not None
           else f"it has no {sidecar.name} saying what made it")
    raise XmdError(f"{out_path} exists and was not written by this run ({why})",
                   hint="choose another --out, or pass --force to replace it")


def run_embed(checkpoint: Path, source: Path, out_path: Path, *, fmt: str | None = None,
              splits: list[str] | None = None, device: str = "auto", force: bool = False,
              part_rows: int = PART_ROWS, num_workers: int = 0, out: Output | None = None) -> dict:
    """Embed every input of `source` with the student of `checkpoint` into `out_path`; returns a summary."""
    from xmd_cli.inference import load_checkpoint
    from xmd_cli.stages.embed_inputs import resolve_inputs
    from xmd_cli.training.distributed import resolve_device

    out = out or Output()
    out_path = Path(out_path)
    fmt = embedding_format(out_path, fmt)
    if not out_path.parent.is_dir():
        raise XmdError(f"--out {out_path}: folder {out_path.parent} does not exist", hint="create it first")
    model = load_checkpoint(Path(checkpoint), resolve_device(device))
    manifest, samples, kind = resolve_inputs(Path(source), model.config, splits)
    components = _components(model, manifest, samples, kind)
    summary = {"out": str(out_path), "format": fmt, "files": [str(p) for p in companion_files(out_path, fmt)],
               "ids": len(samples), "dim": model.config.embedding_dim, "source": kind,
               "checkpoint": str(model.directory), "fingerprint": Fingerprint(components).digest}
    if _check_output(out_path, fmt, components, force):
        out.note(f"{out_path}: already written by this same run; nothing to do")
        return {**summary, "embedded": 0, "resumed": len(samples)}
    out.note(f"[bold]xmd embed[/bold]: {len(samples)} inputs ({kind}) with {model.describe}, {model.device}")
    embedded, resumed = _embed_into_parts(model, manifest, samples, components, parts_path(out_path), force=force,
                                          part_rows=part_rows, num_workers=num_workers, out=out)
    _finish(out_path, fmt, [s.id for s in samples], components)
    out.note(f"wrote {out_path} ({len(samples)} x {model.config.embedding_dim}, {fmt})")
    return {**summary, "embedded": embedded, "resumed": resumed}


def _embed_into_parts(model, manifest, samples, components: dict, parts: Path, *, force: bool, part_rows: int,
                      num_workers: int, out: Output) -> tuple[int, int]:
    """(embedded now, found done) after every sample has a row in the parts store."""
    from xmd_cli.inference import embed_samples
    from xmd_cli.shards.writer import ShardWriter

    by_id = {s.id: s for s in samples}
    with ShardWriter(parts, components, model.config.embedding_dim, "float32", shard_rows=part_rows,
                     force=force) as writer:
        pending = writer.pending_ids(by_id)
        resumed = len(samples) - len(pending)
        if resumed and pending:
            out.note(f"resuming: {resumed} of {len(samples)} embeddings are in {parts}")
        with out.progress() as update:
            for start in range(0, len(pending), part_rows):
                chunk = pending[start:start + part_rows]
                rows = embed_samples(model, manifest, [by_id[i] for i in chunk], stage="embed",
                                     num_workers=num_workers,
                                     out=_RunProgress(update, resumed + start, len(samples)))
                writer.add(chunk, rows)
    return len(pending), resumed


def _finish(out_path: Path, fmt: str, ids: list[str], components: dict) -> None:
    """Write OUT from the parts (in input order), then what made it, then drop the parts."""
    from xmd_cli.shards.reader import ShardReader

    parts = parts_path(out_path)
    with ShardReader(parts, components) as reader:
        rows = reader.get(ids, pick="first")
    write_embeddings(out_path, ids, rows, fmt)
    write_json(sidecar_path(out_path), {"format": fmt, "ids": len(ids), "dim": int(rows.shape[1]),
                                        "xmd_version": __version__, "components": components})
    shutil.rmtree(parts)
