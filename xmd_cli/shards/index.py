"""The index's arrays and the lookup of ids in them: sample id -> (shard, first row, row count).

One index covers the whole store. Ids are kept as fixed-width UTF-8 bytes plus
int arrays, sorted by a 64-bit key hashed from the id, so that a reader that
memory-maps them (`index_file`) looks up a batch of ids with one vectorised hash,
then a jump through a bucket table on the key's top bits to the one or two
candidates, which touches a few pages whatever the size of the store. (Measured
on a million ids: a binary search over the id strings was ~5x slower, numpy
comparing strings one by one; a binary search over the keys ~4x slower, twenty
cache misses a lookup.) `build_index` makes the arrays from the shard headers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xmd_cli.shards.format import ShardHeader

INDEX_FORMAT = "xmd-index-2"  # 2: records shard header digests and a checksum of its own content


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
    >>> from pathlib import Path
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> from xmd_cli.shards.index_file import read_index
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
    >>> from pathlib import Path
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["a", "b"], [[1.0, 2.0], [3.0, 4.0]])
    >>> from xmd_cli.shards.index_store import scan_shards
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
