"""ShardWriter: append embeddings by sample id into a store, crash-safe and resumable.

Rows are buffered and written a whole shard at a time (temporary file, fsync,
rename), so a crash loses at most the shard being filled; the rerun asks
`pending_ids` for what is missing and computes exactly that. With torchrun each
rank writes its own shards (their names carry the rank) and holds its own lock;
the index is rebuilt from the shard headers, so ranks never share a file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.shards.fingerprint import Fingerprint, diff
from xmd_cli.shards.format import (
    DTYPES,
    META,
    TMP_PREFIX,
    atomic_write,
    list_shards,
    make_meta,
    read_meta,
    shard_bytes,
    shard_name,
    write_meta,
)
from xmd_cli.shards.index_store import merge_index, scan_shards
from xmd_cli.shards.lock import WriterLock

FRAMES = ("mean", "all")


class ShardWriter:
    """Write rows by sample id into DIRECTORY.

        with ShardWriter(store, components, dim=512, dtype="float16", shard_rows=4096) as writer:
            for batch in batches(writer.pending_ids(manifest_ids)):
                writer.add(batch.ids, teacher(batch))           # [n, dim], one row per id
                writer.add(ids, frame_rows, counts=[3, 5, ...])  # several frames per id

    frames="mean" stores one row per id (the mean of an id's frames); frames="all" keeps
    every frame for sampling in training. `force` wipes the store first (with several
    ranks: only on rank 0, and the other ranks open theirs after a barrier).

    Examples
    --------
    A rerun resumes: `pending_ids` leaves out what an earlier run stored.

    >>> import tempfile
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a"], [[1.0, 2.0]])
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     todo = writer.pending_ids(["a", "b", "c"])
    ...     writer.add(todo, [[3.0, 4.0], [5.0, 6.0]])
    >>> todo, writer.rows_written, sorted(name for name in os.listdir(store) if name.startswith("shard"))
    (['b', 'c'], 2, ['shard-r000-00000.safetensors', 'shard-r000-00001.safetensors'])
    """

    def __init__(self, directory: Path, fingerprint: Mapping, dim: int, dtype: str = "float16",
                 shard_rows: int = 4096, *, frames: str = "mean", rank: int = 0, world_size: int = 1,
                 force: bool = False):
        if dtype not in DTYPES:
            raise XmdError(f"shard dtype {dtype!r} is not one of {', '.join(DTYPES)}")
        if frames not in FRAMES:
            raise XmdError(f"frames {frames!r} is not one of {', '.join(FRAMES)}")
        if dim < 1 or shard_rows < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need dim >= 1, shard_rows >= 1 and 0 <= rank < world_size "
                             f"(got {dim}, {shard_rows}, {rank}, {world_size})")
        if force and rank != 0:
            raise ValueError("force wipes the whole store: pass it on rank 0 only, "
                             "and open the other ranks' writers after a barrier")
        self.directory = Path(directory)
        self.fingerprint = Fingerprint(dict(fingerprint))
        self.dim, self.dtype, self.shard_rows, self.frames = dim, dtype, shard_rows, frames
        self.rank, self.world_size, self.force = rank, world_size, force
        self.np_dtype = DTYPES[dtype][1]
        self._lock = WriterLock(self.directory, rank)
        self._done: set[str] = set()  # ids in complete shards or in the buffer
        self._ids: list[str] = []
        self._counts: list[int] = []
        self._rows: list[np.ndarray] = []
        self._buffered = 0
        self._next_seq = 0
        self.shards_written = 0
        self.rows_written = 0
        self._open = False

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> "ShardWriter":
        self.open()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
            return
        try:  # an interrupted run keeps every complete sample it buffered
            self._flush(everything=True)
        finally:
            self._lock.release()
            self._open = False

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self._adopt_or_reset()
            self._remove_own_temporaries()
            headers = scan_shards(self.directory)
            for header in headers:
                if header.metadata.get("fingerprint") != self.fingerprint.digest:
                    raise XmdError(f"{header.path}: written for another fingerprint than {self.directory / META}",
                                   hint="a shard from another store was copied here; remove it, "
                                        "or rebuild with --force")
                self._done.update(header.ids)
            own = [seq for rank, seq, _ in list_shards(self.directory) if rank == self.rank]
            self._next_seq = max(own) + 1 if own else 0
        except BaseException:
            self._lock.release()
            raise
        self._open = True

    def _adopt_or_reset(self) -> None:
        meta_path = self.directory / META
        if meta_path.exists() and not self.force:
            meta = read_meta(self.directory)
            problems = diff(dict(self.fingerprint.components), meta["components"])
            for key, wanted in (("dim", self.dim), ("dtype", self.dtype), ("frames", self.frames)):
                if meta[key] != wanted:
                    problems.append(f"{key}: expected {wanted} but the store has {meta[key]}")
            if problems:
                raise XmdError(f"{self.directory} holds another fingerprint's rows:\n  " + "\n  ".join(problems),
                               hint="rerun with --force to recompute the store, or write to another directory")
            return
        if self.force:
            self._wipe()
        write_meta(self.directory, make_meta(self.fingerprint.digest, dict(self.fingerprint.components),
                                             dim=self.dim, dtype=self.dtype, frames=self.frames,
                                             shard_rows=self.shard_rows))

    def _wipe(self) -> None:
        """Everything but the lock files: the locks of live ranks must survive."""
        for entry in os.scandir(self.directory):
            if entry.name.endswith(".lock"):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)

    def _remove_own_temporaries(self) -> None:
        # Our lock is held, so any temporary shard of this rank belongs to a dead writer;
        # a temporary meta or index file is anyone's, so only a dead process's is removed.
        prefix = f"{TMP_PREFIX}shard-r{self.rank:03d}-"
        for name in os.listdir(self.directory):
            if name.startswith(prefix) or (name.startswith(TMP_PREFIX) and not name.startswith(f"{TMP_PREFIX}shard-")
                                           and not _alive(name.rsplit(".", 1)[-1])):
                os.unlink(self.directory / name)

    def close(self) -> None:
        """Write the last partial shard, rebuild the index, release the lock."""
        if not self._open:
            return
        try:
            self._flush(everything=True)
            merge_index(self.directory)
        finally:
            self._lock.release()
            self._open = False

    # ------------------------------------------------------------ writing
    def pending_ids(self, all_ids: Iterable[str]) -> list[str]:
        """This rank's share of `all_ids` (every world_size-th, from its rank) not yet stored, in order.

        The share is cut before the stored ids are removed, so that ranks which open
        the store at different moments still agree on who computes what.
        """
        self._require_open()
        all_ids = [str(i) for i in all_ids]
        if len(set(all_ids)) != len(all_ids):
            seen, repeated = set(), []
            for i in all_ids:
                if i in seen:
                    repeated.append(i)
                seen.add(i)
            raise XmdError(f"sample ids repeat ({', '.join(repeated[:5])}); a store keeps one entry per id",
                           hint="check the manifest for duplicate ids")
        return [i for i in all_ids[self.rank::self.world_size] if i not in self._done]

    def add(self, ids: list[str], rows, counts: list[int] | None = None) -> None:
        """Store rows for these ids: [len(ids), dim], or [sum(counts), dim] with `counts` frames per id."""
        self._require_open()
        ids = [str(i) for i in ids]
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"rows must be [n, {self.dim}], got {list(rows.shape)}")
        if counts is not None:
            counts = [int(c) for c in counts]
            if len(counts) != len(ids) or min(counts, default=1) < 1 or sum(counts) != len(rows):
                raise ValueError(f"counts must give >= 1 row for each of the {len(ids)} ids and sum to "
                                 f"{len(rows)} rows, got {counts[:10]}")
        elif len(ids) != len(rows):
            raise ValueError(f"{len(ids)} ids but {len(rows)} rows")
        self._check_new(ids)
        if counts is not None and self.frames == "mean":
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            rows = np.add.reduceat(rows.astype(np.float64), starts, axis=0) / np.asarray(counts)[:, None]
            counts = None
        with np.errstate(over="ignore"):  # an overflow to inf is reported just below, naming the ids
            stored = rows.astype(self.np_dtype)
        self._check_finite(ids, counts, rows, stored)
        self._done.update(ids)  # stored or buffered: either way not to be computed again
        self._ids.extend(ids)
        self._counts.extend(counts if counts is not None else [1] * len(ids))
        self._rows.append(stored)
        self._buffered += len(stored)
        while self._buffered >= self.shard_rows:
            self._flush(everything=False)

    def _check_new(self, ids: list[str]) -> None:
        if len(set(ids)) != len(ids):
            raise XmdError(f"ids repeat within one add(): {sorted({i for i in ids if ids.count(i) > 1})[:5]}")
        if any("\x00" in i or not i for i in ids):
            raise XmdError(f"empty id or id with a NUL character among {ids[:5]}",
                           hint="sample ids are non-empty text without NUL")
        again = [i for i in ids if i in self._done]
        if again:
            raise XmdError(f"{self.directory}: ids already stored: {', '.join(again[:5])}",
                           hint="ask writer.pending_ids(...) for the ids still to compute")

    def _check_finite(self, ids, counts, rows, stored) -> None:
        bad_rows = ~np.isfinite(stored).all(axis=1)
        if not bad_rows.any():
            return
        owners = np.repeat(np.arange(len(ids)), counts) if counts is not None else np.arange(len(ids))
        bad = sorted({ids[k] for k in owners[bad_rows]})
        overflow = np.isfinite(np.asarray(rows, np.float64)).all(axis=1) & bad_rows
        why = f"exceed the {self.dtype} range" if overflow.any() else "contain NaN or Inf"
        raise XmdError(f"rows of {len(bad)} sample(s) {why}: {', '.join(bad[:5])}",
                       hint="use dtype float32 for large values" if overflow.any()
                       else "skip or fix these samples before storing them")

    def _flush(self, *, everything: bool) -> None:
        while self._buffered and (everything or self._buffered >= self.shard_rows):
            rows = np.concatenate(self._rows) if len(self._rows) > 1 else self._rows[0]
            ends = np.cumsum(self._counts)
            # Whole samples only (an id's frames never straddle two shards), at least one.
            take = max(int(np.searchsorted(ends, self.shard_rows, side="right")), 1)
            n_rows = int(ends[take - 1])
            ids, counts = self._ids[:take], self._counts[:take]
            self._write_shard(ids, rows[:n_rows], counts if self.frames == "all" else None)
            self._ids, self._counts = self._ids[take:], self._counts[take:]
            self._rows = [rows[n_rows:]] if n_rows < len(rows) else []
            self._buffered -= n_rows

    def _write_shard(self, ids: list[str], rows: np.ndarray, counts: list[int] | None) -> None:
        name = shard_name(self.rank, self._next_seq)
        data = shard_bytes(rows, ids, counts, fingerprint=self.fingerprint.digest, rank=self.rank)
        atomic_write(self.directory / name, data)
        self._next_seq += 1
        self.shards_written += 1
        self.rows_written += len(rows)

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError("use the writer inside `with ShardWriter(...) as writer:` (or call open())")


def _alive(pid_text: str) -> bool:
    try:
        os.kill(int(pid_text), 0)
    except ValueError:
        return False  # no pid in the name: not one of ours, and not in use
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
