"""The files of a store and how each is written and parsed.

A store directory holds
  meta.json                       what made the values (fingerprint) and the layout (dim, dtype, frames)
  shard-r<rank>-<seq>.safetensors one tensor `rows` [n, dim]; its header metadata names the sample ids
                                  of those rows and carries hashes of the data and of the header itself,
                                  so every shard is self-describing and self-verifying
  index.safetensors               id -> (shard, start, count), derived from the shard headers; records each
                                  shard's size and header digest and a checksum of its own content
  writer-r<rank>.lock             held (flock) by the live writer of that rank

Every file is written to a temporary name in the same directory, fsynced, then
renamed over its final name: a reader or a crash never sees half a file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmd_cli import __version__
from xmd_cli.errors import XmdError
from xmd_cli.io import removed_on_error
from xmd_cli.shards.fingerprint import canonical_json

META = "meta.json"
INDEX = "index.safetensors"
STORE_FORMAT = "xmd-store"
SHARD_FORMAT = "xmd-shard-1"
DTYPES = {"float16": ("F16", np.dtype("<f2")), "float32": ("F32", np.dtype("<f4"))}
NUMPY_OF_TAG = {"F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "I32": np.dtype("<i4"),
                "I64": np.dtype("<i8"), "U64": np.dtype("<u8"), "U8": np.dtype("u1")}
SHARD_NAME = re.compile(r"^shard-r(\d{3,})-(\d{5,})\.safetensors$")
TMP_PREFIX = ".tmp-"
MAX_HEADER = 100_000_000  # the safetensors library's own limit


def shard_name(rank: int, seq: int) -> str:
    return f"shard-r{rank:03d}-{seq:05d}.safetensors"


def lock_name(rank: int) -> str:
    return f"writer-r{rank:03d}.lock"


def list_shards(directory: Path) -> list[tuple[int, int, str]]:
    """(rank, seq, name) of every complete shard, in writing order."""
    found = []
    for name in os.listdir(directory):
        match = SHARD_NAME.match(name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), name))
    return sorted(found)


def atomic_write(path: Path, data: bytes) -> None:
    """Temporary file, fsync, rename, fsync the directory: the file is whole or absent."""
    path = Path(path)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}")
    with removed_on_error(tmp):  # a full disk must not leave a 0-byte temporary behind
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- meta.json
def make_meta(fingerprint_digest: str, components: dict, *, dim: int, dtype: str, frames: str,
              shard_rows: int) -> dict:
    return {"format": STORE_FORMAT, "format_version": 1, "fingerprint": fingerprint_digest,
            "components": components, "dim": dim, "dtype": dtype, "frames": frames,
            "shard_rows": shard_rows, "xmd_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def write_meta(directory: Path, meta: dict) -> None:
    atomic_write(Path(directory) / META, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())


def read_meta(directory: Path) -> dict:
    path = Path(directory) / META
    if not path.is_file():
        if not Path(directory).is_dir():
            raise XmdError(f"{directory}: no such store directory",
                           hint="pass the directory that holds meta.json, e.g. WORKDIR/teacher/<fingerprint>")
        raise XmdError(f"{path}: missing; {directory} is not an xmd store (or its writer never started)",
                       hint="run the stage that writes it (xmd extract-teacher or xmd score-quality)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise XmdError(f"{path}: not valid JSON ({e})", hint="rerun the writer with --force to rebuild the store")
    missing = [k for k in ("format", "fingerprint", "components", "dim", "dtype", "frames") if k not in meta]
    if meta.get("format") != STORE_FORMAT or missing:
        raise XmdError(f"{path}: not an xmd store meta file" + (f" (lacks {', '.join(missing)})" if missing else ""),
                       hint="rerun the writer with --force to rebuild the store")
    if meta["dtype"] not in DTYPES:
        raise XmdError(f"{path}: dtype {meta['dtype']!r} is not one of {', '.join(DTYPES)}")
    return meta


# ---------------------------------------------------------------- shard files
def _header_check(metadata: dict, tensor: dict) -> str:
    """Hash of the header's content, so that a flipped byte in the ids is caught like one in the data."""
    body = {k: v for k, v in metadata.items() if k != "check"}
    return hashlib.sha256(canonical_json({"metadata": body, "tensor": tensor}).encode()).hexdigest()


def shard_bytes(rows: np.ndarray, ids: list[str], counts: list[int] | None, *, fingerprint: str,
                rank: int) -> bytes:
    """A whole shard file: safetensors header (ids, hashes) + the raw little-endian rows."""
    from safetensors.numpy import save

    rows = np.ascontiguousarray(rows)
    tag = {np.dtype("<f2"): "F16", np.dtype("<f4"): "F32"}[rows.dtype]
    metadata = {"format": SHARD_FORMAT, "fingerprint": fingerprint, "rank": str(rank),
                "ids": canonical_json(list(ids)),
                "counts": canonical_json(list(counts)) if counts is not None else "",
                "rows_sha256": hashlib.sha256(rows.data).hexdigest()}
    metadata["check"] = _header_check(metadata, {"dtype": tag, "shape": list(rows.shape)})
    return save({"rows": rows}, metadata=metadata)


class ShardFormatError(ValueError):
    """A shard file that cannot be what its writer wrote; the message says why."""


@dataclass
class ShardHeader:
    path: Path
    dtype: np.dtype
    shape: tuple[int, int]
    data_offset: int  # byte offset of row 0 in the file
    metadata: dict
    ids: list[str]
    counts: list[int] | None  # None: one row per id
    header_sha256: str = ""  # sha256 of the file's first 8 + header-length bytes, as read

    @property
    def n_rows(self) -> int:
        return self.shape[0]


def read_header(path: Path, *, check: bool = True) -> ShardHeader:
    """Parse a shard's header without touching its rows (8-byte length, JSON, then raw data)."""
    path = Path(path)
    with open(path, "rb") as f:
        return read_header_from(f, path, check=check)


def read_header_from(f, path: Path, *, check: bool = True) -> ShardHeader:
    """read_header on a file already open, so that a caller can go on to hash and map the same inode."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    raw_len = f.read(8)
    if len(raw_len) < 8:
        raise ShardFormatError("shorter than a safetensors header")
    (header_len,) = struct.unpack("<Q", raw_len)
    if header_len > min(MAX_HEADER, size - 8):
        raise ShardFormatError(f"header length {header_len} exceeds the file ({size} bytes)")
    raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ShardFormatError(f"header is not valid JSON ({e})") from None
    parsed = _parse_header(path, header, 8 + header_len, size, check)
    # The index records this digest: a reader compares it at open without parsing the JSON again.
    parsed.header_sha256 = hashlib.sha256(raw_len + raw).hexdigest()
    return parsed


def header_sha256(f) -> str:
    """sha256 of an open shard's header bytes (what read_header_from records), without parsing them."""
    f.seek(0)
    raw_len = f.read(8)
    if len(raw_len) < 8:
        return ""
    (header_len,) = struct.unpack("<Q", raw_len)
    if header_len > min(MAX_HEADER, os.fstat(f.fileno()).st_size - 8):
        return ""
    return hashlib.sha256(raw_len + f.read(header_len)).hexdigest()


def _parse_header(path: Path, header: dict, data_start: int, size: int, check: bool) -> ShardHeader:
    if not isinstance(header, dict) or set(header) != {"__metadata__", "rows"}:
        raise ShardFormatError("header does not hold exactly a `rows` tensor and metadata")
    metadata, tensor = header["__metadata__"], header["rows"]
    try:
        tag, shape, (begin, end) = tensor["dtype"], tuple(tensor["shape"]), tensor["data_offsets"]
        dtype = NUMPY_OF_TAG[tag]
    except (KeyError, TypeError, ValueError):
        raise ShardFormatError("the `rows` tensor entry is malformed") from None
    if tag not in ("F16", "F32") or len(shape) != 2:
        raise ShardFormatError(f"rows are {tag} {list(shape)}, expected F16 or F32 [n, dim]")
    if end - begin != shape[0] * shape[1] * dtype.itemsize or data_start + end != size:
        raise ShardFormatError(f"data of {end - begin} bytes at {data_start + begin} does not fit "
                               f"shape {list(shape)} in a file of {size} bytes (truncated?)")
    if not isinstance(metadata, dict) or metadata.get("format") != SHARD_FORMAT:
        raise ShardFormatError("header metadata is not an xmd shard's")
    if check and metadata.get("check") != _header_check(metadata, {"dtype": tag, "shape": list(shape)}):
        raise ShardFormatError("header checksum mismatch: the ids or hashes were altered")
    try:
        ids = json.loads(metadata["ids"])
        counts = json.loads(metadata["counts"]) if metadata.get("counts") else None
    except (KeyError, json.JSONDecodeError):
        raise ShardFormatError("header metadata lacks a readable id list") from None
    expected_rows = len(ids) if counts is None else sum(counts)
    if expected_rows != shape[0] or (counts is not None and len(counts) != len(ids)):
        raise ShardFormatError(f"{len(ids)} ids describe {expected_rows} rows, the tensor has {shape[0]}")
    return ShardHeader(path, dtype, (int(shape[0]), int(shape[1])), data_start + begin, metadata, ids, counts)


def rows_sha256(header: ShardHeader, f=None) -> str:
    """Recompute the data hash the writer recorded (reads the whole shard; `f`: the file already open)."""
    if f is None:
        with open(header.path, "rb") as opened:
            return rows_sha256(header, opened)
    digest = hashlib.sha256()
    remaining = header.n_rows * header.shape[1] * header.dtype.itemsize
    f.seek(header.data_offset)
    buffer = memoryview(bytearray(1 << 20))  # one reused 1 MiB buffer: hashing allocates nothing per shard
    while remaining:
        got = f.readinto(buffer[:min(remaining, len(buffer))])
        if not got:
            break
        digest.update(buffer[:got])
        remaining -= got
    return digest.hexdigest()
