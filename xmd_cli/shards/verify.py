"""Integrity of a store (`verify`) and a summary of what it holds (`summary`).

verify re-reads everything: every header (and its own checksum), every row
against the data hash its writer recorded (so one flipped byte anywhere is
caught), NaN/Inf rows, ids stored twice, shards from another fingerprint, and
whether the index (its own checksum, its fingerprint) covers exactly the shards
on disk and agrees with them. `repair` is the one explicit way to make a damaged
store consistent again: it sets the unsound shards aside and rebuilds the index
from the sound ones, saying what it dropped.
"""

from __future__ import annotations

import mmap
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
from xmd_cli.shards.index import build_index
from xmd_cli.shards.index_file import IndexFormatError, load_index, read_index, write_index
from xmd_cli.shards.index_store import shard_mismatches
from xmd_cli.shards.lock import WriterLock, lock_holder

DROPPED = "dropped"  # repair moves the shards it sets aside here (a folder inside the store)


def verify(directory: Path) -> list[str]:
    """Every problem found, one line each naming the file; an empty list means the store is sound.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> verify(store)
    []
    >>> shard = store / "shard-r000-00000.safetensors"
    >>> _ = shard.write_bytes(shard.read_bytes()[:-1] + b"\\x01")  # flip the last byte of the rows
    >>> verify(store)
    ['shard-r000-00000.safetensors: data checksum mismatch: row bytes changed after writing']
    """
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
    problems += _check_index(directory, arrays, meta, unreadable=len(list_shards(directory)) - len(headers))
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


def map_file(path: Path) -> mmap.mmap:
    """The whole file, memory-mapped read-only.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "data.bin"
    >>> _ = path.write_bytes(b"abc")
    >>> map_file(path)[:2]
    b'ab'
    """
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _non_finite_rows(header: ShardHeader, chunk: int = 8192) -> np.ndarray:
    buffer = map_file(header.path)
    rows = np.frombuffer(buffer, header.dtype, header.n_rows * header.shape[1], header.data_offset)
    rows = rows.reshape(header.shape)
    bad = [np.flatnonzero(~np.isfinite(rows[i:i + chunk]).all(axis=1)) + i for i in range(0, len(rows), chunk)]
    del rows
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def _check_index(directory: Path, rebuilt, meta: dict, unreadable: int) -> list[str]:
    on_disk = {name for _r, _s, name in list_shards(directory)}
    try:
        index = read_index(directory)
    except FileNotFoundError:
        if not on_disk:
            return []
        return [f"{INDEX}: missing (the writer did not finish; rerun it to resume, "
                f"or run `xmd shards repair {directory}` to index the shards there are)"]
    except (IndexFormatError, OSError) as e:
        return [f"{INDEX}: {e} (run `xmd shards repair {directory}` to rebuild it)"]
    problems = []
    if index.fingerprint != meta["fingerprint"]:
        problems.append(f"{INDEX}: indexes another store (its fingerprint is not meta.json's)")
    problems += [f"{name}: {what}" for name, what in shard_mismatches(index, directory)]
    if problems or unreadable:
        return problems
    names_then = np.asarray([s["name"] for s in index.shards] or [""])[index.shard] if len(index.ids) else []
    names_now = np.asarray([s["name"] for s in rebuilt.shards] or [""])[rebuilt.shard] if len(rebuilt.ids) else []
    same = (len(index.ids) == len(rebuilt.ids) and np.array_equal(index.ids, rebuilt.ids)
            and np.array_equal(index.keys, rebuilt.keys)
            and np.array_equal(names_then, names_now) and np.array_equal(index.start, rebuilt.start)
            and np.array_equal(index.count, rebuilt.count))
    if not same:
        problems.append(f"{INDEX}: disagrees with the shard headers "
                        f"({len(index.ids)} ids indexed, {len(rebuilt.ids)} in shards); "
                        f"run `xmd shards repair {directory}` to rebuild it")
    return problems


def summary(directory: Path) -> dict:
    """What `xmd shards info` shows: counts, layout, fingerprint, size, index and writer state.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> info = summary(store)
    >>> info["ids"], info["rows"], info["dim"], info["dtype"], info["shards"], info["index"], info["live_writers"]
    (2, 2, 2, 'float16', 1, 'current', {})
    """
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
    index_state = _index_state(directory, meta)
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


def stored_bytes(directory: Path) -> int:
    """Bytes of the files directly in `directory` (not in its subfolders).

    Examples
    --------
    >>> import tempfile
    >>> directory = Path(tempfile.mkdtemp())
    >>> _ = (directory / "a.bin").write_bytes(b"12345")
    >>> (directory / "sub").mkdir()
    >>> stored_bytes(directory)
    5
    """
    return sum(entry.stat().st_size for entry in os.scandir(directory) if entry.is_file())


def _index_state(directory: Path, meta: dict) -> str:
    try:
        index = read_index(directory)
    except FileNotFoundError:
        return "missing"
    except (IndexFormatError, OSError) as e:
        return "old (no checksum; run `xmd shards repair`)" if getattr(e, "old", False) else "damaged"
    if index.fingerprint != meta["fingerprint"]:
        return "damaged"
    return "stale" if shard_mismatches(index, directory) else "current"


def repair(directory: Path) -> dict:
    """Make a damaged store consistent: set aside every unsound shard, rebuild the index from the rest.

    A shard is kept only if it passes everything `verify` checks of a shard (header and its checksum,
    this store's fingerprint and layout, the safetensors library opens it, every row's sha256, no
    NaN/Inf). Of two sound shards holding one id, the earlier (writing order) is kept. Set-aside
    shards move to STORE/dropped/ (never deleted: a user may want to look); shards the old index
    listed that are gone from disk are reported too. The ids dropped are then `pending` to the
    writer, whose rerun recomputes exactly them.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["c"], [[5.0, 6.0]])
    >>> shard = store / "shard-r000-00000.safetensors"
    >>> _ = shard.write_bytes(shard.read_bytes()[:-1] + b"\\x01")  # flip the last byte of the rows
    >>> result = repair(store)
    >>> result["shards_kept"], result["shards_dropped"], result["ids_dropped"], verify(store)
    (1, 1, 2, [])
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.pending_ids(["a", "b", "c"])
    ['a', 'b']
    """
    directory = Path(directory)
    meta = read_meta(directory)
    ranks = {rank for rank, _s, _n in list_shards(directory)}
    ranks |= {int(e.name[8:-5]) for e in os.scandir(directory)
              if e.name.startswith("writer-r") and e.name.endswith(".lock") and e.name[8:-5].isdigit()}
    locks = []
    try:
        for rank in sorted(ranks):  # no writer may add a shard while the index is rebuilt
            lock = WriterLock(directory, rank)
            lock.acquire()
            locks.append(lock)
        return _repair_locked(directory, meta)
    finally:
        for lock in locks:
            lock.release()


def _repair_locked(directory: Path, meta: dict) -> dict:
    old = load_index(directory)  # only an index whose checksum holds is believed about what is gone
    old_rows = {}
    if old is not None and old.fingerprint == meta["fingerprint"]:
        per_shard = np.bincount(old.shard, minlength=len(old.shards)) if len(old.shard) else [0] * len(old.shards)
        old_rows = {entry["name"]: int(n) for entry, n in zip(old.shards, per_shard)}
    dropped, kept, seen = [], [], set()
    for _rank, _seq, name in list_shards(directory):
        try:
            header = read_header(directory / name)
        except (ShardFormatError, OSError) as e:
            dropped.append({"name": name, "reason": f"unreadable ({e})", "ids": old_rows.get(name)})
            continue
        found = _check_shard(header, meta)
        if not found:
            again = seen.intersection(header.ids)
            if again:
                found = [f"repeats {len(again)} id(s) of an earlier shard (e.g. {sorted(again)[0]})"]
        if found:
            dropped.append({"name": name, "reason": "; ".join(found), "ids": len(header.ids)})
            continue
        seen.update(header.ids)
        kept.append(header)
    foreign = [e for e in dropped if e["reason"].startswith("written for another fingerprint")]
    if foreign and len(foreign) == len(dropped) and not kept:
        # Every shard "foreign" means meta.json is the file that changed: dropping them all would empty
        # a store whose rows are probably fine. Refuse, and move nothing.
        raise XmdError(f"{directory / META}: its fingerprint matches none of the {len(foreign)} shard(s); "
                       "meta.json, not the shards, looks replaced", hint="restore meta.json, or rebuild the store "
                                                                           "with the writer's --force")
    on_disk = {name for _r, _s, name in list_shards(directory)}
    gone = [{"name": name, "reason": "missing on disk", "ids": n, "moved_to": None}
            for name, n in sorted(old_rows.items()) if name not in on_disk]
    if dropped:
        aside = directory / DROPPED
        aside.mkdir(exist_ok=True)
        for entry in dropped:
            target = aside / entry["name"]
            number = 1
            while target.exists():
                target = aside / f"{entry['name']}.{number}"
                number += 1
            os.replace(directory / entry["name"], target)
            entry["moved_to"] = str(target)
    arrays, _duplicates = build_index(kept)  # none: repeats were dropped above
    write_index(directory, arrays, meta["fingerprint"])
    lost = [e for e in dropped + gone]
    known = [e["ids"] for e in lost if e["ids"] is not None]
    if old_rows:
        now = set(np.char.decode(arrays.ids, "utf-8").tolist()) if len(arrays.ids) else set()
        old_ids = set(np.char.decode(old.ids, "utf-8").tolist()) if len(old.ids) else set()
        ids_dropped = len(old_ids - now)
    else:
        ids_dropped = sum(known)
    return {"store": str(directory), "shards_kept": len(kept), "ids": len(arrays.ids),
            "shards_dropped": len(lost), "ids_dropped": ids_dropped,
            "ids_dropped_exact": bool(old_rows) or len(known) == len(lost),
            "dropped": lost, "index": "rebuilt"}
