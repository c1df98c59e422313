"""Integrity of a store (`verify`) and a summary of what it holds (`summary`).

verify re-reads everything: every header (and its own checksum), every row
against the data hash its writer recorded (so one flipped byte anywhere is
caught), NaN/Inf rows, ids stored twice, shards from another fingerprint, and
whether the index covers exactly the shards on disk and agrees with them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.shards.format import (
    DTYPES,
    INDEX,
    META,
    TMP_PREFIX,
    ShardFormatError,
    ShardHeader,
    list_shards,
    read_header,
    read_meta,
    rows_sha256,
)
from xmd_cli.shards.index import build_index, load_index, map_file, stored_bytes
from xmd_cli.shards.lock import lock_holder


def verify(directory: Path) -> list[str]:
    """Every problem found, one line each naming the file; an empty list means the store is sound."""
    directory = Path(directory)
    try:
        meta = read_meta(directory)
    except XmdError as e:
        return [str(e).split("\n")[0]]
    problems: list[str] = []
    headers: list[ShardHeader] = []
    for _rank, _seq, name in list_shards(directory):
        path = directory / name
        try:
            header = read_header(path)
        except (ShardFormatError, OSError) as e:
            problems.append(f"{name}: unreadable ({e})")
            continue
        found = _check_shard(header, meta)
        problems += [f"{name}: {p}" for p in found]
        if not found:
            headers.append(header)
    arrays, duplicates = build_index(headers)
    problems += duplicates
    problems += _check_index(directory, arrays, unreadable=len(list_shards(directory)) - len(headers))
    return problems


def _check_shard(header: ShardHeader, meta: dict) -> list[str]:
    from safetensors import safe_open

    problems = []
    tag = {np.dtype("<f2"): "float16", np.dtype("<f4"): "float32"}[header.dtype]
    if header.metadata.get("fingerprint") != meta["fingerprint"]:
        problems.append("written for another fingerprint than meta.json (a shard of another store?)")
    if tag != meta["dtype"] or header.shape[1] != meta["dim"]:
        problems.append(f"rows are {tag} [*, {header.shape[1]}], meta.json says {meta['dtype']} [*, {meta['dim']}]")
    if header.counts is not None and meta["frames"] != "all":
        problems.append("stores several frames per id in a store of one row per id")
    try:  # the safetensors library itself must accept the file a user may open with it
        with safe_open(str(header.path), framework="numpy") as f:
            if list(f.get_slice("rows").get_shape()) != list(header.shape):
                problems.append("safetensors reads another shape than the header says")
    except Exception as e:  # the library raises its own error types
        problems.append(f"safetensors cannot open it ({e})")
    if problems:
        return problems
    if rows_sha256(header) != header.metadata.get("rows_sha256"):
        problems.append("data checksum mismatch: row bytes changed after writing")
        return problems
    bad = _non_finite_rows(header)
    if len(bad):
        owners = np.repeat(np.arange(len(header.ids)), header.counts or [1] * len(header.ids))
        names = sorted({header.ids[k] for k in owners[bad]})
        problems.append(f"{len(bad)} row(s) hold NaN or Inf (ids {', '.join(names[:5])})")
    return problems


def _non_finite_rows(header: ShardHeader, chunk: int = 8192) -> np.ndarray:
    buffer = map_file(header.path)
    rows = np.frombuffer(buffer, header.dtype, header.n_rows * header.shape[1], header.data_offset)
    rows = rows.reshape(header.shape)
    bad = [np.flatnonzero(~np.isfinite(rows[i:i + chunk]).all(axis=1)) + i for i in range(0, len(rows), chunk)]
    del rows
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def _check_index(directory: Path, rebuilt, unreadable: int) -> list[str]:
    on_disk = {name for _r, _s, name in list_shards(directory)}
    index = load_index(directory)
    if index is None:
        if not on_disk:
            return []
        return [f"{INDEX}: missing or unreadable (the writer did not finish; rerun it to resume, "
                "or open the store with a reader to rebuild the index)"]
    problems = []
    indexed = {s["name"] for s in index.shards}
    for name in sorted(on_disk - indexed):
        problems.append(f"{name}: orphan shard, not in {INDEX} (an unfinished writer? rerun it to resume)")
    for name in sorted(indexed - on_disk):
        problems.append(f"{name}: listed in {INDEX} but missing on disk (rerun the writer to recompute its rows)")
    if problems or unreadable:
        return problems
    sizes = {s["name"]: s["size"] for s in index.shards}
    changed = [n for n in sorted(on_disk) if (directory / n).stat().st_size != sizes[n]]
    problems += [f"{n}: size differs from when {INDEX} was built" for n in changed]
    names_then = np.asarray([s["name"] for s in index.shards] or [""])[index.shard] if len(index.ids) else []
    names_now = np.asarray([s["name"] for s in rebuilt.shards] or [""])[rebuilt.shard] if len(rebuilt.ids) else []
    same = (len(index.ids) == len(rebuilt.ids) and np.array_equal(index.ids, rebuilt.ids)
            and np.array_equal(index.keys, rebuilt.keys)
            and np.array_equal(names_then, names_now) and np.array_equal(index.start, rebuilt.start)
            and np.array_equal(index.count, rebuilt.count))
    if not same:
        problems.append(f"{INDEX}: disagrees with the shard headers "
                        f"({len(index.ids)} ids indexed, {len(rebuilt.ids)} in shards); delete it to rebuild")
    return problems


def summary(directory: Path) -> dict:
    """What `xmd shards info` shows: counts, layout, fingerprint, size, index and writer state."""
    directory = Path(directory)
    meta = read_meta(directory)
    ids = rows = unreadable = 0
    ranks = set()
    shards = list_shards(directory)
    for rank, _seq, name in shards:
        try:
            header = read_header(directory / name, check=False)
        except (ShardFormatError, OSError):
            unreadable += 1
            continue
        ids += len(header.ids)
        rows += header.n_rows
        ranks.add(rank)
    index = load_index(directory)
    on_disk = {(n, (directory / n).stat().st_size) for _r, _s, n in shards}
    index_state = ("missing" if index is None else
                   "current" if on_disk == {(s["name"], s["size"]) for s in index.shards} else "stale")
    writers = {}
    for entry in os.scandir(directory):
        if entry.name.startswith("writer-r") and entry.name.endswith(".lock"):
            holder = lock_holder(Path(entry.path))
            if holder:
                writers[entry.name] = holder if holder is not True else None
    return {"store": str(directory), "ids": ids, "rows": rows, "dim": meta["dim"], "dtype": meta["dtype"],
            "frames": meta["frames"], "shards": len(shards), "unreadable_shards": unreadable,
            "ranks": sorted(ranks), "shard_rows": meta.get("shard_rows"), "bytes": stored_bytes(directory),
            "bytes_per_row": DTYPES[meta["dtype"]][1].itemsize * meta["dim"],
            "fingerprint": meta["fingerprint"], "components": meta["components"],
            "xmd_version": meta.get("xmd_version"), "created": meta.get("created"), "index": index_state,
            "live_writers": writers,
            "leftover_temporaries": sorted(n for n in os.listdir(directory) if n.startswith(TMP_PREFIX)),
            "meta": str(directory / META)}
