"""Writes that survive kill -9 and power loss: data fsync'd before it is named, names fsync'd in their directory.

(Small on purpose; the house-wide atomic writer is xmd_cli/io.py once it lands.)
"""

from __future__ import annotations

import os
from pathlib import Path

from xmd_cli.io import naming


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory's fsync makes the names in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durable(path: Path, data: bytes) -> None:
    """Write a new file and fsync it (the caller fsyncs the directory once all its files are written)."""
    with naming(path), open(path, "wb") as f:  # ENOSPC from write() names no file: say which
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def point(link: Path, target_name: str) -> None:
    """Make `link` a symlink to `target_name` (a sibling) in one rename, then make that rename durable.

    A reader sees the old target or the new one, never neither: the swap a kill -9 cannot split.
    """
    staging = link.with_name(f".{link.name}.link-{os.getpid()}")
    staging.unlink(missing_ok=True)
    os.symlink(target_name, staging)
    os.replace(staging, link)
    fsync_path(link.parent)
