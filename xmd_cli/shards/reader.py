"""ShardReader: gather rows by sample id, memory-mapped, without loading the store.

Each shard is mapped once (on first use) and viewed as a plain numpy array at
the data offset of its safetensors header; a batch lookup is a binary search in
the memory-mapped index, then a copy of just the rows asked for. The resident
memory this costs is the pages touched, not the size of the store.

Nothing is read from disk unchecked. At open: meta.json, the index's own
checksum and fingerprint, and every shard's name, size and header digest against
the index (which its writer built from headers whose own checksum and
fingerprint it checked) - a few tens of kB a shard. When a shard is first used:
its header again (the file might have been swapped since) and, unless
`verify_rows=False`, the sha256 of all its rows against the one its writer
recorded, hashed from the same open file that is then mapped. So one flipped
byte, a shard of another store or a damaged index is an XmdError naming the
file, never a wrong row; and no reader ever rewrites the index.
"""

from __future__ import annotations

import mmap
import os
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.shards.fingerprint import diff
from xmd_cli.shards.format import DTYPES, ShardFormatError, read_header_from, read_meta, rows_sha256
from xmd_cli.shards.index_store import open_index

PICKS = ("mean", "random", "first")


class ShardReader:
    """Rows of a store by sample id.

    `expect_fingerprint`: the components the consumer would have written; the store is
    refused (XmdError listing what differs) unless they match or `allow_stale` is set.
    Components the consumer does not name are not compared.

    `verify_rows`: hash each shard's rows once, when it is first used, against its writer's
    sha256 (a few s a GB, once a process; docs/store.md says which paths verify rows).

    Examples
    --------
    A writer -> reader round trip; the second store keeps every frame of an id:

    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp()) / "teacher"
    >>> components = {"teacher": "demo", "dtype": "float16"}
    >>> with ShardWriter(store, components, dim=2, shard_rows=2) as writer:
    ...     writer.add(["a", "b", "c"], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> with ShardReader(store, expect_fingerprint=components) as reader:
    ...     reader.get(["c", "a"]).tolist(), reader.ids.tolist(), len(reader), "d" in reader
    ([[5.0, 6.0], [1.0, 2.0]], ['a', 'b', 'c'], 3, False)
    >>> ShardReader(store, expect_fingerprint={"teacher": "other"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xmd_cli.errors.XmdError: ... was written with other inputs than this run expects:
      teacher: expected other but the store has demo
    ...
    >>> frames = Path(tempfile.mkdtemp())
    >>> with ShardWriter(frames, components, dim=1, frames="all") as writer:
    ...     writer.add(["x", "y"], [[1.0], [3.0], [5.0]], counts=[2, 1])
    >>> reader = ShardReader(frames)
    >>> reader.get(["x", "y"]).tolist(), reader.frames_of("x").tolist(), reader.counts(["x", "y"]).tolist()
    ([[2.0], [5.0]], [[1.0], [3.0]], [2, 1])
    """

    def __init__(self, directory: Path, expect_fingerprint: Mapping | None = None, allow_stale: bool = False,
                 *, verify_rows: bool = True):
        self.directory = Path(directory)
        self.meta = read_meta(self.directory)
        self.stale: list[str] = []
        if expect_fingerprint is not None:
            self.stale = diff(dict(expect_fingerprint), self.meta["components"], only_expected_keys=True)
            if self.stale and not allow_stale:
                raise XmdError(f"{self.directory} was written with other inputs than this run expects:\n  "
                               + "\n  ".join(self.stale),
                               hint="recompute it (rerun the writing stage, --force), or accept the stale "
                                    "store explicitly (allow_stale / --allow-stale)")
        self.verify_rows = verify_rows
        self.index = open_index(self.directory, self.meta)
        self.dim = int(self.meta["dim"])
        self.dtype = str(self.meta["dtype"])
        self.frames = str(self.meta["frames"])
        self._single_row = bool(len(self.index.count) == 0 or int(self.index.count.max()) == 1)
        self._np_dtype = DTYPES[self.dtype][1]
        self._row_bytes = self.dim * self._np_dtype.itemsize
        self._views: list[memoryview | None] = [None] * len(self.index.shards)  # shard files, mapped on first use
        self._data_offset = np.zeros(len(self.index.shards), np.int64)
        self._mapped: set[int] = set()
        _allow_open_files(len(self.index.shards))

    # ------------------------------------------------------------ what is stored
    @property
    def ids(self) -> np.ndarray:
        """Every stored id, sorted (a new str array: this reads the whole index)."""
        return np.sort(np.char.decode(self.index.ids, "utf-8")) if len(self.index.ids) else np.zeros(0, str)

    def __len__(self) -> int:
        return len(self.index.ids)

    def __contains__(self, sample_id) -> bool:
        return bool(self._find([str(sample_id)])[1].all())

    def missing(self, ids: Sequence[str]) -> list[str]:
        """The ids of `ids` that the store lacks (a consumer checks its manifest with this)."""
        found = self._find([str(i) for i in ids])[1]
        return [str(i) for i, ok in zip(ids, found) if not ok]

    def counts(self, ids: Sequence[str]) -> np.ndarray:
        return self.index.count[self._positions(ids)].astype(np.int64)

    # ------------------------------------------------------------ reading
    def get(self, ids: Sequence[str], *, pick: str = "mean", rng: np.random.Generator | None = None) -> np.ndarray:
        """float32 [len(ids), dim], one row per id in the order asked.

        For a store of every frame: `pick` "mean" averages an id's frames, "random" takes
        one at random from `rng` (sampling in training), "first" the first frame.
        """
        if pick not in PICKS:
            raise ValueError(f"pick must be one of {PICKS}, got {pick!r}")
        pos = self._positions(ids)
        shard, start = self.index.shard[pos], self.index.start[pos]
        if self._single_row or pick == "first":
            return self._gather(shard, start)
        count = self.index.count[pos].astype(np.int64)
        if pick == "random":
            rng = rng if rng is not None else np.random.default_rng()
            return self._gather(shard, start + rng.integers(0, count))
        # mean: gather every frame, then sum each id's run of rows
        offsets = np.concatenate([[0], np.cumsum(count)[:-1]])
        within = np.arange(int(count.sum())) - np.repeat(offsets, count)
        frames = self._gather(np.repeat(shard, count), np.repeat(start, count) + within)
        return (np.add.reduceat(frames, offsets, axis=0) / count[:, None]).astype(np.float32)

    def frames_of(self, sample_id: str) -> np.ndarray:
        """Every stored row of one id, float32 [count, dim]."""
        at = int(self._positions([sample_id])[0])
        start, count = int(self.index.start[at]), int(self.index.count[at])
        return self._gather(np.full(count, self.index.shard[at]), np.arange(start, start + count))

    def _gather(self, shard: np.ndarray, row: np.ndarray) -> np.ndarray:
        """float32 rows (shard[k], row[k]): one slice of the mapped file a row, joined in one copy.

        Measured faster than one numpy fancy-index call per shard (a random batch touches
        about as many shards as rows) and as fast as a fancy index into one raw memmap.
        """
        if not len(shard):
            return np.empty((0, self.dim), np.float32)
        if len(self._mapped) < len(self._views):
            for number in set(shard.tolist()) - self._mapped:
                self._map(number)
        offsets = (self._data_offset[shard] + row * self._row_bytes).tolist()
        views, size = self._views, self._row_bytes
        joined = b"".join([views[s][o:o + size] for s, o in zip(shard.tolist(), offsets)])
        return np.frombuffer(joined, self._np_dtype).reshape(len(shard), self.dim).astype(np.float32)

    def _map(self, number: int) -> None:
        entry = self.index.shards[number]
        path = self.directory / entry["name"]
        hint = f"run `xmd shards verify {self.directory}`, then `xmd shards repair {self.directory}`"
        try:
            f = open(path, "rb")
        except OSError as e:
            raise XmdError(f"{path}: unreadable shard ({e.strerror})", hint=hint) from None
        with f:  # one open file for header, hash and map: what was checked is what is read
            try:
                header = read_header_from(f, path, check=False)
            except (ShardFormatError, OSError) as e:
                raise XmdError(f"{path}: unreadable shard ({e})", hint=hint) from None
            if header.header_sha256 != entry.get("header_sha256") or os.fstat(f.fileno()).st_size != entry["size"]:
                raise XmdError(f"{path}: not the shard the index was built from (replaced since the store "
                               "was opened)", hint=hint)
            if header.shape[1] != self.dim or header.dtype != self._np_dtype:
                raise XmdError(f"{path}: rows are {header.dtype} [*, {header.shape[1]}], the store's meta.json "
                               f"says {self.dtype} [*, {self.dim}]", hint=hint)
            if self.verify_rows and rows_sha256(header, f) != header.metadata.get("rows_sha256"):
                raise XmdError(f"{path}: data checksum mismatch (row bytes changed after writing)", hint=hint)
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        buffer.madvise(mmap.MADV_RANDOM)  # rows are read by id, not in order: no read-ahead
        self._views[number] = memoryview(buffer)
        self._data_offset[number] = header.data_offset
        self._mapped.add(number)

    def verify_all(self) -> None:
        """Map (and so check) every shard now, for a consumer that would rather fail before its work."""
        for number in range(len(self._views)):
            if number not in self._mapped:
                self._map(number)

    # ------------------------------------------------------------ id lookup
    def _find(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.index.locate(ids)

    def _positions(self, ids: Sequence[str]) -> np.ndarray:
        pos, found = self._find(ids)
        if not found.all():
            absent = [str(i) for i, ok in zip(ids, found) if not ok]
            raise KeyError(f"{len(absent)} id(s) not in {self.directory}: {', '.join(absent[:10])}"
                           + (" …" if len(absent) > 10 else ""))
        return pos

    def close(self) -> None:
        self._views = [None] * len(self._views)
        self._mapped.clear()

    def __enter__(self) -> "ShardReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _allow_open_files(shards: int) -> None:
    """Each mapped shard holds a file descriptor: raise the soft limit toward the hard one if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = shards + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard) if hard != resource.RLIM_INFINITY
                                                    else wanted, hard))
