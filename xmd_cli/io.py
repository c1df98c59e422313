"""Small file helpers every stage shares: atomic writes and content hashes.

A file a stage writes either appears whole or not at all: it is written beside
its final name and renamed over it (`os.replace` is atomic on POSIX), so a
reader never sees half a report and a kill leaves the old file in place.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "report.json"
>>> write_json(path, {"eer": 0.25})
>>> path.read_text()
'{\\n "eer": 0.25\\n}\\n'
>>> file_sha256(path)[:12]
'09d62e539171'
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from xmd_cli.errors import XmdError, disk_error

PROBE_BYTES = 4096  # one block: creating an empty file can succeed on a full disk; writing a block cannot


@contextmanager
def naming(path: Path):
    """Give an OSError raised inside the block `path` as its file name when it has none.

    A failed write() or fsync() on an open file (ENOSPC) carries no name; the
    message a user sees must still say which file.
    """
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise


@contextmanager
def removed_on_error(tmp: Path):
    """Delete the temporary file `tmp` when the block fails (a full disk leaves 0-byte files otherwise)."""
    try:
        with naming(tmp):
            yield
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # never written, or the disk refuses even that: the original error matters
        raise


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically: a temporary file beside it, then one rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with removed_on_error(tmp):
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def ensure_writable(directory: Path) -> Path:
    """Make `directory` and prove a file can be written in it, before a stage spends time computing.

    Writes and removes one block, so a read-only file system, a missing permission
    or a disk already full is refused now, naming the directory, instead of after
    hours of work. (It cannot promise room for everything the stage will write.)
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".xmd-probe-", dir=directory)
        try:
            with naming(directory):
                os.write(fd, b"\0" * PROBE_BYTES)
                os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as e:
        if e.filename is None or str(e.filename).startswith(str(directory / ".xmd-probe-")):
            e.filename = str(directory)
        raise disk_error(e) or XmdError(f"{directory}: cannot write here ({e.strerror})") from None
    return directory


def write_json(path: Path, data, *, indent: int = 1, **dumps_options) -> None:
    """`data` as indented JSON with a final newline, written atomically."""
    write_text(path, json.dumps(data, indent=indent, **dumps_options) + "\n")


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file's bytes, read in blocks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()
