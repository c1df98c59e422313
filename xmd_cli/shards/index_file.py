"""index.safetensors: the index's arrays written with a checksum of their own, and read back only if it holds.

The file is a safetensors file (tensors `ids`, `keys`, `buckets`, `shard`, `start`,
`count`) whose metadata names its format, the store's fingerprint, the shards it
covers (name, rows, size, header digest) and a sha256 of all of that and of the
tensor bytes. `read_index` verifies that checksum before it memory-maps the file,
so an altered, truncated or foreign file is an `IndexFormatError`, never a lookup
that quietly goes wrong; one from an older xmd is marked `old` for `repair`.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import struct
from pathlib import Path

import numpy as np

from xmd_cli.shards.fingerprint import canonical_json
from xmd_cli.shards.format import INDEX, NUMPY_OF_TAG, atomic_write
from xmd_cli.shards.index import INDEX_FORMAT, IndexArrays

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
    >>> from xmd_cli.shards.format import read_meta
    >>> from xmd_cli.shards.index import build_index
    >>> from xmd_cli.shards.index_store import scan_shards
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
