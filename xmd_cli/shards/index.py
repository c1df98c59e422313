"""The index: sample id -> (shard, first row, row count), one file for the whole store.

It is derived from the shard headers (which are the truth: each shard names its
own ids), so it can always be rebuilt, and every rank of a torchrun job can write
its own shards without coordinating on a shared index file. `merge_index` builds
it; a reader rebuilds it when the set of shards on disk differs from the set it
covers (a new shard, a crashed writer, a merge by a rank that finished early).

It is stored as safetensors (ids as fixed-width UTF-8 bytes plus int arrays,
sorted by a 64-bit key hashed from the id) so that a reader memory-maps it:
looking up a batch of ids is one vectorised hash, then a jump through a
bucket table on the key's top bits to the one or two candidates, which touches
a few pages whatever the size of the store. (Measured on a million ids: a binary
search over the id strings was ~5x slower, numpy comparing strings one by one;
a binary search over the keys ~4x slower, twenty cache misses a lookup.)
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.shards.format import (
    INDEX,
    NUMPY_OF_TAG,
    ShardFormatError,
    ShardHeader,
    atomic_write,
    list_shards,
    read_header,
    read_meta,
)


def scan_shards(directory: Path, ranks: set[int] | None = None) -> list[ShardHeader]:
    """Headers of every complete shard (of `ranks`, or all); a malformed one is an XmdError naming it."""
    headers = []
    for rank, _seq, name in list_shards(directory):
        if ranks is not None and rank not in ranks:
            continue
        path = Path(directory) / name
        try:
            headers.append(read_header(path))
        except (ShardFormatError, OSError) as e:
            raise XmdError(f"{path}: corrupt shard ({e})",
                           hint=f"run `xmd shards verify {directory}`; delete the shard and rerun the writer "
                                "to recompute its rows") from None
    return headers


_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def id_keys(raw: np.ndarray) -> np.ndarray:
    """64-bit keys of fixed-width byte ids (width a multiple of 8): FNV-1a over 8-byte words, then the
    splitmix64 finaliser so that every bit of the id moves every bit of the key. Stable across processes
    (unlike Python's salted hash()), and vectorised: one pass a word of the id, not a call an id."""
    words = np.ascontiguousarray(raw).view("<u8").reshape(len(raw), raw.dtype.itemsize // 8)
    keys = np.full(len(raw), _FNV_OFFSET, np.uint64)
    for column in words.T:
        keys = (keys ^ column) * _FNV_PRIME
    keys ^= keys >> np.uint64(30)
    keys *= np.uint64(0xBF58476D1CE4E5B9)
    keys ^= keys >> np.uint64(27)
    keys *= np.uint64(0x94D049BB133111EB)
    keys ^= keys >> np.uint64(31)
    return keys


@dataclass
class IndexArrays:
    ids: np.ndarray  # UTF-8 bytes, dtype S{width}, width a multiple of 8; ordered by (key, id)
    keys: np.ndarray  # uint64 id_keys(ids), ascending
    buckets: np.ndarray  # int64 [2**bits + 1]: first position of each value of a key's top `bits` bits
    shard: np.ndarray  # int32: position in `shards`
    start: np.ndarray  # int64: first row in that shard
    count: np.ndarray  # int32: rows of this id (1 unless every frame is stored)
    shards: list[dict]  # name, rows, size: the shard files this index covers

    @property
    def width(self) -> int:
        return self.ids.dtype.itemsize

    def locate(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """Positions of these ids in the index, and whether each is there at all."""
        raw, too_long = encode_ids(ids, self.width)
        if not len(self.ids):
            return np.zeros(len(raw), np.int64), np.zeros(len(raw), bool)
        keys = id_keys(raw)
        pos = self._first_at_least(keys)
        found = (pos < len(self.ids)) & ~too_long
        pos = np.minimum(pos, len(self.ids) - 1)
        found &= self.ids[pos] == raw
        # Two stored ids with one key (about 1 in 10^7 for a million ids): look past the first.
        for k in np.flatnonzero(~found & ~too_long & (self.keys[pos] == keys)):
            p = int(pos[k]) + 1
            while p < len(self.ids) and self.keys[p] == keys[k]:
                if self.ids[p] == raw[k]:
                    pos[k], found[k] = p, True
                    break
                p += 1
        return pos, found

    def _first_at_least(self, keys: np.ndarray) -> np.ndarray:
        """For each key, the first position whose stored key is >= it (a searchsorted through buckets)."""
        bits = (len(self.buckets) - 1).bit_length() - 1  # the table has 2**bits + 1 entries
        bucket = (keys >> np.uint64(64 - bits)).astype(np.int64)
        pos, end = self.buckets[bucket], self.buckets[bucket + 1]
        todo = np.flatnonzero(pos < end)
        while len(todo):  # a bucket holds ~1 key: a step or two
            behind = self.keys[pos[todo]] < keys[todo]
            todo = todo[behind]
            pos[todo] += 1
            todo = todo[pos[todo] < end[todo]]
        return pos


def build_index(headers: list[ShardHeader]) -> tuple[IndexArrays, list[str]]:
    """The index of these shards, and one line per id found in more than one shard."""
    names, shard_col, start_col, count_col = [], [], [], []
    shards = []
    for number, header in enumerate(headers):
        counts = header.counts if header.counts is not None else [1] * len(header.ids)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if counts else np.zeros(0, np.int64)
        names.extend(header.ids)
        shard_col.append(np.full(len(header.ids), number, np.int32))
        start_col.append(starts.astype(np.int64))
        count_col.append(np.asarray(counts, np.int32))
        shards.append({"name": header.path.name, "rows": header.n_rows, "size": header.path.stat().st_size})
    raw = encode_ids(names)[0]
    ids = raw.astype(f"S{-(-max(raw.dtype.itemsize, 1) // 8) * 8}")
    keys = id_keys(ids)
    order = np.lexsort((ids, keys))  # by key, and by id among equal keys: a repeated id sits next to itself
    ids, keys = ids[order], keys[order]
    cat = (lambda parts, dtype: np.concatenate(parts)[order] if parts else np.zeros(0, dtype))
    arrays = IndexArrays(ids, keys, bucket_table(keys), cat(shard_col, np.int32), cat(start_col, np.int64),
                         cat(count_col, np.int32), shards)
    duplicates = []
    if len(ids) > 1:
        for at in np.flatnonzero(ids[1:] == ids[:-1])[:20]:
            a, b = arrays.shard[at], arrays.shard[at + 1]
            duplicates.append(f"id {ids[at].decode()!r} is in both {shards[a]['name']} and {shards[b]['name']}")
    return arrays, duplicates


def bucket_table(keys: np.ndarray) -> np.ndarray:
    """Where each run of keys sharing their top bits starts; about one key a bucket."""
    bits = max(int(len(keys)).bit_length(), 1)
    starts = np.arange(2 ** bits, dtype=np.uint64) << np.uint64(64 - bits)
    return np.append(np.searchsorted(keys, starts), len(keys)).astype(np.int64)


def merge_index(directory: Path) -> IndexArrays:
    """Build the index of every complete shard and write it atomically; returns it."""
    directory = Path(directory)
    meta = read_meta(directory)
    arrays, duplicates = build_index(scan_shards(directory))
    if duplicates:
        raise XmdError(f"{directory}: sample ids stored twice: " + "; ".join(duplicates[:5]),
                       hint=f"run `xmd shards verify {directory}`; delete one shard of each pair, "
                            "or rebuild the store with --force")
    write_index(directory, arrays, meta["fingerprint"])
    return arrays


def write_index(directory: Path, arrays: IndexArrays, fingerprint: str) -> None:
    from safetensors.numpy import save

    ids = np.ascontiguousarray(arrays.ids).view(np.uint8).reshape(len(arrays.ids), arrays.width)
    tensors = {"ids": ids, "keys": arrays.keys, "buckets": arrays.buckets, "shard": arrays.shard, "start": arrays.start,
               "count": arrays.count}
    metadata = {"format": "xmd-index-1", "fingerprint": fingerprint, "shards": json.dumps(arrays.shards)}
    atomic_write(Path(directory) / INDEX, save(tensors, metadata=metadata))


def on_disk_shards(directory: Path) -> list[dict]:
    return [{"name": name, "rows": None, "size": (Path(directory) / name).stat().st_size}
            for _rank, _seq, name in list_shards(directory)]


def is_current(arrays: IndexArrays, directory: Path) -> bool:
    """Does the index cover exactly the shard files on disk now (same names, same sizes)?"""
    now = {(s["name"], s["size"]) for s in on_disk_shards(directory)}
    return now == {(s["name"], s["size"]) for s in arrays.shards}


def map_file(path: Path) -> mmap.mmap:
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def load_index(directory: Path) -> IndexArrays | None:
    """The index file, memory-mapped; None when absent or unreadable (then it is rebuilt)."""
    path = Path(directory) / INDEX
    try:
        buffer = map_file(path)
        (header_len,) = struct.unpack("<Q", buffer[:8])
        header = json.loads(buffer[8:8 + header_len])
        tensors = {}
        for name in ("ids", "keys", "buckets", "shard", "start", "count"):
            entry = header[name]
            dtype = NUMPY_OF_TAG[entry["dtype"]]
            begin, end = entry["data_offsets"]
            count = (end - begin) // dtype.itemsize
            tensors[name] = np.frombuffer(buffer, dtype, count, 8 + header_len + begin).reshape(entry["shape"])
        width = header["ids"]["shape"][1]
        ids = tensors["ids"].reshape(-1).view(f"S{width}") if len(tensors["ids"]) else np.zeros(0, "S8")
        shards = json.loads(header["__metadata__"]["shards"])
    except (FileNotFoundError, ValueError, KeyError, TypeError, struct.error, OSError):
        return None
    return IndexArrays(ids, tensors["keys"], tensors["buckets"], tensors["shard"], tensors["start"], tensors["count"], shards)


def current_index(directory: Path, *, write: bool = True) -> IndexArrays:
    """The index matching the shards on disk: the file if current, else rebuilt (and saved if allowed)."""
    arrays = load_index(directory)
    if arrays is not None and is_current(arrays, directory):
        return arrays
    if write:
        try:
            return merge_index(directory)
        except PermissionError:
            pass  # a read-only store: keep the rebuilt index in memory
    arrays, duplicates = build_index(scan_shards(directory))
    if duplicates:
        raise XmdError(f"{directory}: sample ids stored twice: " + "; ".join(duplicates[:5]),
                       hint=f"run `xmd shards verify {directory}`")
    return arrays


def encode_ids(ids, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ids as fixed-width UTF-8 bytes (the index's form), and which are longer than `width`.

    An id longer than every stored id cannot be in the store; it is flagged instead of
    being cut to `width` bytes, where its prefix might match another id.
    """
    if isinstance(ids, np.ndarray) and ids.dtype.kind == "S":
        encoded = ids.tolist()
    else:
        encoded = [i if isinstance(i, str) else str(i) for i in ids]
        if not all(map(str.isascii, encoded)):  # ASCII (the usual id) numpy encodes itself, faster
            encoded = [i.encode() for i in encoded]
    lengths = list(map(len, encoded))
    longest = max(lengths, default=0)
    if width is None:
        width = longest
    raw = np.array(encoded, dtype=f"S{max(width, 1)}")
    too_long = np.asarray(lengths) > width if longest > width else np.zeros(len(raw), bool)
    return raw, too_long


def stored_bytes(directory: Path) -> int:
    return sum(entry.stat().st_size for entry in os.scandir(directory) if entry.is_file())
