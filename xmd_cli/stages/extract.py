"""`xmd extract-teacher`: run the teacher once over the dataset into a shard store.

Samples already in the store are skipped, so a crashed run resumes after its
last complete shard. DataLoader workers read and preprocess (`teacher.load`)
while the main process runs the network (`teacher.embed`). Under torchrun each
rank embeds its slice of the pending samples into shards of its own; rank 0
merges the index. A sample that cannot be embedded goes to failures.jsonl with
its reason and gets no row.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from xmd_cli.console import Output
from xmd_cli.data.manifest import read_manifest
from xmd_cli.errors import XmdError
from xmd_cli.io import ensure_writable, write_text
from xmd_cli.recipe import Recipe, save_resolved
from xmd_cli.shards import ShardWriter, merge_index, store_dir
from xmd_cli.teachers import SampleFailure, build_teacher, teacher_components
from xmd_cli.training.distributed import init_distributed, shutdown
from xmd_cli.vocab import CONTROL_TEACHERS

FAILURES = "failures.jsonl"


class _Loading(Dataset):
    """(sample id, loaded item or SampleFailure): loading errors travel as values, not exceptions."""

    def __init__(self, teacher, samples, root: Path):
        self.teacher, self.samples, self.root = teacher, samples, root

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        sample = self.samples[index]
        try:
            return sample.id, self.teacher.load(sample, self.root)
        except SampleFailure as failure:
            return sample.id, failure


def _as_list(batch):
    return batch


def run_extract(recipe: Recipe, workdir: Path, *, device: str = "auto", force: bool = False,
                out: Output | None = None) -> dict:
    out = out or Output()
    workdir = Path(workdir)
    ensure_writable(workdir / "teacher")  # before loading a teacher network (each rank: each may be elsewhere)
    if recipe.teacher.kind in CONTROL_TEACHERS:
        # A control teacher runs no network: it is derived from a real teacher's store.
        from xmd_cli.teachers.controls import run_control
        return run_control(recipe, workdir, force=force, out=out)
    context = init_distributed(device)
    try:
        manifest = read_manifest(workdir)
        config = recipe.teacher
        teacher = build_teacher(config, context.device)
        components = teacher_components(config, manifest, teacher.fingerprint())
        store = store_dir(workdir, "teacher", components)
        if context.is_main:
            save_resolved(recipe, store.parent / f"{store.name}.recipe.yaml")
        if force and context.active:
            # Only rank 0 may wipe; the other ranks open their writers after it did.
            if context.is_main:
                with ShardWriter(store, components, teacher.dim, config.dtype, config.shard_rows,
                                 frames=config.frames, force=True):
                    pass
            context.barrier()
            force = False
        started = time.perf_counter()
        with ShardWriter(store, components, teacher.dim, config.dtype, config.shard_rows, frames=config.frames,
                         rank=context.rank, world_size=context.world, force=force) as writer:
            pending = writer.pending_ids([s.id for s in manifest.samples])  # this rank's share only
            by_id = manifest.by_id()
            mine = [by_id[i] for i in pending]
            failures = _embed_all(teacher, mine, manifest.root, writer, config, recipe.training.num_workers, out)
        elapsed = time.perf_counter() - started
        _write_rank_report(store, context.rank, failures, attempted=len(pending), seconds=elapsed)
        context.barrier()
        if not context.is_main:
            return {}
        merge_index(store)
        return _finish(store, manifest, components, config, context.world, out)
    finally:
        shutdown(context)


def _embed_all(teacher, samples, root, writer, config, workers: int, out: Output) -> list[dict]:
    loader = DataLoader(_Loading(teacher, samples, root), batch_size=config.batch_size, num_workers=workers,
                        collate_fn=_as_list)
    failures, done, started = [], 0, time.perf_counter()
    if not samples:
        return failures
    with out.progress() as progress:
        progress("extract-teacher", 0, len(samples))
        for batch in loader:
            loaded = [(i, item) for i, item in batch if not isinstance(item, SampleFailure)]
            failures += [{"id": i, "reason": item.reason} for i, item in batch if isinstance(item, SampleFailure)]
            results = teacher.embed([item for _, item in loaded]) if loaded else []
            ids, rows, counts = [], [], []
            for (sample_id, _), result in zip(loaded, results):
                if isinstance(result, SampleFailure):
                    failures.append({"id": sample_id, "reason": result.reason})
                else:
                    ids.append(sample_id)
                    rows.append(result)
                    counts.append(len(result))
            if ids:
                writer.add(ids, np.concatenate(rows), counts=counts)
            done += len(batch)
            rate = done / max(1e-9, time.perf_counter() - started)
            progress("extract-teacher", done, len(samples), f"{rate:.1f} samples/s, {len(failures)} failed")
    return failures


def _write_rank_report(store: Path, rank: int, failures: list[dict], *, attempted: int, seconds: float) -> None:
    # Each rank writes its own part; failed samples are retried on a rerun, so a part
    # describes that rank's latest attempt only. Rank 0 joins them.
    report = {"attempted": attempted, "seconds": seconds, "failures": failures}
    write_text(store / f"run-r{rank}.json", json.dumps(report) + "\n")


def _finish(store: Path, manifest, components: dict, config, world: int, out: Output) -> dict:
    # Only this run's ranks: an earlier run with more processes may have left parts behind.
    parts = [json.loads((store / f"run-r{rank}.json").read_text()) for rank in range(world)]
    failures = list({f["id"]: f for part in parts for f in part["failures"]}.values())
    attempted = sum(part["attempted"] for part in parts)
    elapsed = max(part["seconds"] for part in parts)
    write_text(store / FAILURES, "".join(json.dumps(f) + "\n" for f in failures))
    from xmd_cli.shards import ShardReader

    rows = len(ShardReader(store))
    total = len(manifest.samples)
    rate = len(failures) / total if total else 0.0
    summary = {"store": str(store), "rows": rows, "samples": total, "embedded_now": attempted - len(failures),
               "failures": len(failures), "failure_rate": rate, "seconds": round(elapsed, 2),
               "samples_per_s": round(attempted / elapsed, 2) if elapsed > 0 and attempted else None,
               "dim": None, "teacher": components.get("teacher")}
    summary["dim"] = json.loads((store / "meta.json").read_text())["dim"]
    out.table("extract-teacher", [(k, v) for k, v in summary.items()], ("", "value"))
    if failures:
        out.note(f"{len(failures)} sample(s) have no teacher row; reasons in {store / FAILURES}")
    if rate > config.max_failure_rate:
        raise XmdError(f"{len(failures)} of {total} samples failed ({rate:.1%}), above "
                       f"teacher.max_failure_rate {config.max_failure_rate:.1%}; reasons in {store / FAILURES}",
                       hint="the rows that worked are kept; fix the inputs and rerun, or raise teacher.max_failure_rate")
    return summary
