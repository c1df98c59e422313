"""The index: sample id -> (shard, first row, row count), one file for the whole store.

It is derived from the shard headers (which are the truth: each shard names its
own ids), so it can always be rebuilt, and every rank of a torchrun job can write
its own shards without coordinating on a shared index file. `merge_index` builds
it when a writer finalises the store; `xmd shards repair` rebuilds it from the
sound shards. A reader never rebuilds it: `open_index` refuses an index whose
own checksum fails, that belongs to another store, or that no longer describes
the shards on disk (their names, sizes and header digests), so a deleted,
replaced or copied-in shard is an error, not a quietly smaller store.

It is stored as safetensors (ids as fixed-width UTF-8 bytes plus int arrays,
sorted by a 64-bit key hashed from the id) so that a reader memory-maps it:
looking up a batch of ids is one vectorised hash, then a jump through a
bucket table on the key's top bits to the one or two candidates, which touches
a few pages whatever the size of the store. (Measured on a million ids: a binary
search over the id strings was ~5x slower, numpy comparing strings one by one;
a binary search over the keys ~4x slower, twenty cache misses a lookup.)
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.shards.fingerprint import canonical_json
from xmd_cli.shards.format import (
    INDEX,
    NUMPY_OF_TAG,
    ShardFormatError,
    ShardHeader,
    atomic_write,
    header_sha256,
    list_shards,
    read_header,
    read_meta,
)

INDEX_FORMAT = "xmd-index-2"  # 2: records shard header digests and a checksum of its own content
OLD_INDEX_FORMATS = ("xmd-index-1",)
TENSORS = ("ids", "keys", "buckets", "shard", "start", "count")
TAG_OF = {np.dtype(v): k for k, v in NUMPY_OF_TAG.items()}


class IndexFormatError(ValueError):
    """An index file that is not what a writer wrote (unreadable, altered, or from an older xmd).

    `old` marks an index written by an older xmd, which `xmd shards repair` upgrades.

    Examples
    --------
    >>> error = IndexFormatError("written by an older xmd (xmd-index-1) without a checksum of its own", old=True)
    >>> error.old, isinstance(error, ValueError)
    (True, True)
    """

    def __init__(self, message: str, *, old: bool = False):
        super().__init__(message)
        self.old = old


def scan_shards(directory: Path, ranks: set[int] | None = None, *, fingerprint: str | None = None
                ) -> list[ShardHeader]:
    """Headers of every complete shard (of `ranks`, or all); a malformed one, or with `fingerprint` one
    written for another store, is an XmdError naming it.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> [(header.path.name, header.ids) for header in scan_shards(store)]
    [('shard-r000-00000.safetensors', ['a', 'b'])]
    >>> scan_shards(store, ranks={1})
    []
    """
    headers = []
    for rank, _seq, name in list_shards(directory):
        if ranks is not None and rank not in ranks:
            continue
        path = Path(directory) / name
        try:
            header = read_header(path)
        except (ShardFormatError, OSError) as e:
            raise XmdError(f"{path}: corrupt shard ({e})",
                           hint=f"run `xmd shards verify {directory}`, then `xmd shards repair {directory}` "
                                "and rerun the writer to recompute its rows") from None
        if fingerprint is not None and header.metadata.get("fingerprint") != fingerprint:
            raise XmdError(f"{path}: a shard of another store (its fingerprint is not meta.json's)",
                           hint=f"run `xmd shards repair {directory}` to set it aside, then rerun the writer")
        headers.append(header)
    return headers


_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def id_keys(raw: np.ndarray) -> np.ndarray:
    """64-bit keys of fixed-width byte ids (width a multiple of 8): FNV-1a over 8-byte words, then the
    splitmix64 finaliser so that every bit of the id moves every bit of the key. Stable across processes
    (unlike Python's salted hash()), and vectorised: one pass a word of the id, not a call an id.

    Examples
    --------
    >>> raw = encode_ids(["a", "b", "a"], width=8)[0]
    >>> keys = id_keys(raw)
    >>> keys.dtype.name, bool(keys[0] == keys[2]), bool(keys[0] == keys[1])
    ('uint64', True, False)
    """
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
    """The index's arrays (memory-mapped when read from a file) and the lookup of ids in them.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> index = read_index(store)
    >>> positions, found = index.locate(["b", "zz"])
    >>> found.tolist(), int(index.start[positions[0]]), index.shards[0]["rows"]
    ([True, False], 1, 2)
    """

    ids: np.ndarray  # UTF-8 bytes, dtype S{width}, width a multiple of 8; ordered by (key, id)
    keys: np.ndarray  # uint64 id_keys(ids), ascending
    buckets: np.ndarray  # int64 [2**bits + 1]: first position of each value of a key's top `bits` bits
    shard: np.ndarray  # int32: position in `shards`
    start: np.ndarray  # int64: first row in that shard
    count: np.ndarray  # int32: rows of this id (1 unless every frame is stored)
    shards: list[dict]  # name, rows, size, header_sha256: the shard files this index covers
    fingerprint: str = ""  # the store's, as recorded in the index file
    format: str = INDEX_FORMAT

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
    """The index of these shards, and one line per id found in more than one shard.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> headers = scan_shards(store)
    >>> arrays, duplicates = build_index(headers)
    >>> len(arrays.ids), duplicates
    (2, [])
    >>> build_index(headers + headers)[1][0]
    "id 'a' is in both shard-r000-00000.safetensors and shard-r000-00000.safetensors"
    """
    names, shard_col, start_col, count_col = [], [], [], []
    shards = []
    for number, header in enumerate(headers):
        counts = header.counts if header.counts is not None else [1] * len(header.ids)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if counts else np.zeros(0, np.int64)
        names.extend(header.ids)
        shard_col.append(np.full(len(header.ids), number, np.int32))
        start_col.append(starts.astype(np.int64))
        count_col.append(np.asarray(counts, np.int32))
        shards.append({"name": header.path.name, "rows": header.n_rows, "size": header.path.stat().st_size,
                       "header_sha256": header.header_sha256})
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
    """Where each run of keys sharing their top bits starts; about one key a bucket.

    Examples
    --------
    Three keys get 2**2 buckets (by their top two bits), plus the end:

    >>> bucket_table(np.array([1, 2**63, 2**64 - 1], dtype=np.uint64)).tolist()
    [0, 1, 1, 2, 3]
    """
    bits = max(int(len(keys)).bit_length(), 1)
    starts = np.arange(2 ** bits, dtype=np.uint64) << np.uint64(64 - bits)
    return np.append(np.searchsorted(keys, starts), len(keys)).astype(np.int64)


def merge_index(directory: Path) -> IndexArrays:
    """Build the index of every complete shard and write it atomically; returns it.

    Only a writer finalising the store (and `repair`) calls this: it is the one place
    an index is made, and it refuses a malformed shard or one of another store.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> arrays = merge_index(store)
    >>> len(arrays.ids), arrays.fingerprint == read_meta(store)["fingerprint"]
    (2, True)
    """
    directory = Path(directory)
    meta = read_meta(directory)
    arrays, duplicates = build_index(scan_shards(directory, fingerprint=meta["fingerprint"]))
    if duplicates:
        raise XmdError(f"{directory}: sample ids stored twice: " + "; ".join(duplicates[:5]),
                       hint=f"run `xmd shards repair {directory}`, which keeps the first shard of each pair, "
                            "or rebuild the store with --force")
    write_index(directory, arrays, meta["fingerprint"])
    arrays.fingerprint = meta["fingerprint"]
    return arrays


def _checksum(metadata: dict, shapes: dict, chunks) -> str:
    """sha256 of the index's metadata, tensor layout and tensor bytes (in TENSORS order): one altered byte
    anywhere in the file that matters to a lookup changes it."""
    body = {k: v for k, v in metadata.items() if k != "checksum"}
    digest = hashlib.sha256(canonical_json({"metadata": body, "tensors": shapes}).encode())
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def write_index(directory: Path, arrays: IndexArrays, fingerprint: str) -> None:
    """Write index.safetensors atomically, with a checksum of its metadata, layout and bytes.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> arrays, _ = build_index(scan_shards(store))
    >>> write_index(store, arrays, read_meta(store)["fingerprint"])
    >>> len(read_index(store).ids)
    2
    """
    from safetensors.numpy import save

    ids = np.ascontiguousarray(arrays.ids).view(np.uint8).reshape(len(arrays.ids), arrays.width)
    tensors = {"ids": ids, "keys": arrays.keys, "buckets": arrays.buckets, "shard": arrays.shard, "start": arrays.start,
               "count": arrays.count}
    tensors = {name: np.ascontiguousarray(tensors[name]) for name in TENSORS}
    metadata = {"format": INDEX_FORMAT, "fingerprint": fingerprint, "shards": json.dumps(arrays.shards)}
    shapes = {name: {"dtype": TAG_OF[t.dtype], "shape": list(t.shape)} for name, t in tensors.items()}
    metadata["checksum"] = _checksum(metadata, shapes, (t.data.cast("B") for t in tensors.values()))
    atomic_write(Path(directory) / INDEX, save(tensors, metadata=metadata))


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


def read_index(directory: Path) -> IndexArrays:
    """The index file, checksum verified, then memory-mapped (the same open file: what was hashed is what
    is mapped). FileNotFoundError when absent; IndexFormatError when unreadable, altered or old.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> index = read_index(store)
    >>> len(index.ids), index.width, index.format
    (2, 8, 'xmd-index-2')
    """
    path = Path(directory) / INDEX
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            raw_len = f.read(8)
            if len(raw_len) < 8:
                raise ValueError("shorter than a safetensors header")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > size - 8:
                raise ValueError(f"header length {header_len} exceeds the file ({size} bytes)")
            header = json.loads(f.read(header_len))
            metadata = header["__metadata__"]
            entries = {name: header[name] for name in TENSORS}
            layout = {name: (NUMPY_OF_TAG[e["dtype"]], [int(n) for n in e["shape"]], *map(int, e["data_offsets"]))
                      for name, e in entries.items()}
            if any(len(v) != 4 or not 0 <= v[2] <= v[3] for v in layout.values()):
                raise ValueError("a tensor's data offsets are malformed")
        except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as e:
            raise IndexFormatError(f"unreadable ({e})") from None
        if not isinstance(metadata, dict) or metadata.get("format") != INDEX_FORMAT:
            fmt = metadata.get("format") if isinstance(metadata, dict) else None
            if fmt in OLD_INDEX_FORMATS:
                raise IndexFormatError(f"written by an older xmd ({fmt}) without a checksum of its own", old=True)
            raise IndexFormatError(f"not an xmd index (format {fmt!r})")
        data_start = 8 + header_len
        for name, (dtype, shape, begin, end) in layout.items():
            if end - begin != int(np.prod(shape)) * dtype.itemsize or data_start + end > size:
                raise IndexFormatError(f"tensor {name} does not fit the file (truncated?)")

        def chunks():  # read, not mapped: hashing must not pull the whole index into this process's RSS
            for name in TENSORS:
                _dtype, _shape, begin, end = layout[name]
                at = data_start + begin
                while at < data_start + end:
                    piece = os.pread(f.fileno(), min(data_start + end - at, 1 << 20), at)
                    if not piece:
                        return
                    yield piece
                    at += len(piece)

        shapes = {name: {"dtype": entries[name]["dtype"], "shape": layout[name][1]} for name in TENSORS}
        if metadata.get("checksum") != _checksum(metadata, shapes, chunks()):
            raise IndexFormatError("checksum mismatch: the index was altered after its writer finished")
        try:
            shards = json.loads(metadata["shards"])
            buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except (KeyError, ValueError) as e:
            raise IndexFormatError(f"unreadable ({e})") from None
    tensors = {name: np.frombuffer(buffer, dtype, int(np.prod(shape)), data_start + begin).reshape(shape)
               for name, (dtype, shape, begin, _end) in layout.items()}
    width = layout["ids"][1][1] if len(layout["ids"][1]) == 2 else 8
    ids = tensors["ids"].reshape(-1).view(f"S{width}") if len(tensors["ids"]) else np.zeros(0, "S8")
    return IndexArrays(ids, tensors["keys"], tensors["buckets"], tensors["shard"], tensors["start"],
                       tensors["count"], shards, fingerprint=str(metadata.get("fingerprint", "")))


def load_index(directory: Path) -> IndexArrays | None:
    """read_index, or None when the file is absent, unreadable, altered or old (for reports).

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> len(load_index(store).ids)
    2
    >>> _ = (store / INDEX).write_bytes(b"not an index")
    >>> load_index(store) is None
    True
    """
    try:
        return read_index(directory)
    except (OSError, IndexFormatError):
        return None


def shard_mismatches(arrays: IndexArrays, directory: Path) -> list[tuple[str, str]]:
    """(shard name, what is wrong) for every way the shards on disk differ from those the index was built
    from: a shard missing, one not indexed (written later, or copied in), or one whose size or header
    bytes changed (replaced by another store's shard of the same name, or altered). Reads each header's
    bytes (tens of kB a shard), not the rows.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> shard_mismatches(read_index(store), store)
    []
    >>> import shutil
    >>> _ = shutil.copy(store / "shard-r000-00000.safetensors", store / "shard-r001-00000.safetensors")
    >>> [(name, what.split(",")[0]) for name, what in shard_mismatches(read_index(store), store)]
    [('shard-r001-00000.safetensors', 'orphan shard')]
    """
    directory = Path(directory)
    on_disk = [name for _r, _s, name in list_shards(directory)]
    indexed = {s["name"]: s for s in arrays.shards}
    problems = [(name, f"listed in {INDEX} but missing on disk") for name in sorted(set(indexed) - set(on_disk))]
    problems += [(name, f"orphan shard, not in {INDEX} (written after the index was built, or copied in)")
                 for name in on_disk if name not in indexed]
    for name in on_disk:
        entry = indexed.get(name)
        if entry is None:
            continue
        try:
            with open(directory / name, "rb") as f:
                size, digest = os.fstat(f.fileno()).st_size, header_sha256(f)
        except OSError as e:
            problems.append((name, f"unreadable ({e.strerror})"))
            continue
        if size != entry.get("size") or digest != entry.get("header_sha256"):
            problems.append((name, _what_changed(directory / name, arrays.fingerprint)))
    return problems


def _what_changed(path: Path, fingerprint: str) -> str:
    """Why a shard differs from the one indexed, in words (only on the error path: this parses it)."""
    try:
        header = read_header(path)
    except (ShardFormatError, OSError) as e:
        return f"not the shard the index was built from, and unreadable ({e})"
    if header.metadata.get("fingerprint") != fingerprint:
        return "a shard of another store (its fingerprint is not this store's): copied in over this one?"
    return "not the shard the index was built from (replaced or altered since the index was written)"


def open_index(directory: Path, meta: dict) -> IndexArrays:
    """What a reader checks before it reads a row: the index's own checksum, that it is this store's
    (fingerprint), and that it describes exactly the shards on disk. Every refusal names the file.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> len(open_index(store, read_meta(store)).ids)
    2
    >>> (store / INDEX).unlink()
    >>> open_index(store, read_meta(store))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xmd_cli.errors.XmdError: .../index.safetensors: missing (its writer did not finish, or the file was deleted)
    ...
    """
    directory = Path(directory)
    path = directory / INDEX
    hint = f"run `xmd shards verify {directory}` to see what is wrong, `xmd shards repair {directory}` to fix it"
    try:
        arrays = read_index(directory)
    except FileNotFoundError:
        raise XmdError(f"{path}: missing (its writer did not finish, or the file was deleted)",
                       hint=f"rerun the writer to resume it, or {hint.split(', ', 1)[1]}") from None
    except IndexFormatError as e:
        raise XmdError(f"{path}: {e}", hint=f"run `xmd shards repair {directory}` to re-check every shard and "
                                            "rebuild the index" if e.old else hint) from None
    except OSError as e:
        raise XmdError(f"{path}: unreadable ({e.strerror})", hint=hint) from None
    if arrays.fingerprint != meta["fingerprint"]:
        raise XmdError(f"{path}: indexes another store (fingerprint {arrays.fingerprint[:12]}…, meta.json "
                       f"says {meta['fingerprint'][:12]}…)", hint=hint)
    problems = shard_mismatches(arrays, directory)
    if problems:
        name, what = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        live = _live_writers(directory)
        raise XmdError(f"{directory / name}: {what}{more}; the store no longer matches its index",
                       hint=f"{live} is still writing it: wait for it to finish" if live else hint)
    return arrays


def _live_writers(directory: Path) -> str:
    from xmd_cli.shards.lock import lock_holder

    for entry in sorted(os.listdir(directory)):
        if entry.startswith("writer-r") and entry.endswith(".lock"):
            holder = lock_holder(Path(directory) / entry)
            if holder:
                return f"a writer (pid {holder})" if holder is not True else "a writer"
    return ""


def encode_ids(ids, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ids as fixed-width UTF-8 bytes (the index's form), and which are longer than `width`.

    An id longer than every stored id cannot be in the store; it is flagged instead of
    being cut to `width` bytes, where its prefix might match another id.

    Examples
    --------
    >>> raw, too_long = encode_ids(["a", "bcd", "é"])
    >>> raw.tolist(), too_long.tolist()
    ([b'a', b'bcd', b'\\xc3\\xa9'], [False, False, False])
    >>> encode_ids(["abcdef"], width=4)[1].tolist()
    [True]
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
