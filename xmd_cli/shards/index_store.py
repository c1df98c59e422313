"""The index and the shards on disk: made from them by a finishing writer, checked against them by a reader.

The index is derived from the shard headers (which are the truth: each shard names
its own ids), so it can always be rebuilt, and every rank of a torchrun job can
write its own shards without coordinating on a shared index file. `merge_index`
builds it when a writer finalises the store; `xmd shards repair` rebuilds it from
the sound shards. A reader never rebuilds it: `open_index` refuses an index whose
own checksum fails, that belongs to another store, or that no longer describes
the shards on disk (their names, sizes and header digests), so a deleted,
replaced or copied-in shard is an error, not a quietly smaller store.
"""

from __future__ import annotations

import os
from pathlib import Path

from xmd_cli.errors import XmdError
from xmd_cli.shards.format import (
    INDEX,
    ShardFormatError,
    ShardHeader,
    header_sha256,
    list_shards,
    read_header,
    read_meta,
)
from xmd_cli.shards.index import IndexArrays, build_index
from xmd_cli.shards.index_file import IndexFormatError, read_index, write_index


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
