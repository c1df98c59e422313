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
from pathlib import Path


def write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically: a temporary file beside it, then one rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
