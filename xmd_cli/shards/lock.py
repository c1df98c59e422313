"""One live writer per store rank: an advisory `flock` on writer-r<rank>.lock.

flock (not a lock file created with O_EXCL) because the kernel drops it when
the process dies, however it dies: a SIGKILLed writer leaves no stale lock for a
human to delete, and its rerun takes the lock straight away.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from xmd_cli.errors import XmdError
from xmd_cli.shards.format import lock_name


class WriterLock:
    """The advisory lock of one writer rank: `acquire` takes it or raises an XmdError naming the holder.

    Examples
    --------
    >>> import tempfile
    >>> lock = WriterLock(Path(tempfile.mkdtemp()), rank=0)
    >>> lock.acquire()
    >>> lock.path.name, lock_holder(lock.path) == os.getpid()
    ('writer-r000.lock', True)
    >>> lock.release()
    >>> lock_holder(lock.path)
    False
    """

    def __init__(self, directory: Path, rank: int):
        self.path = Path(directory) / lock_name(rank)
        self.rank = rank
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # A few short retries: `xmd shards info` probes the lock for a moment.
        for attempt in range(5):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES) or attempt == 4:
                    holder = _read_pid(fd)
                    os.close(fd)
                    who = f"process {holder}" if holder else "another process"
                    raise XmdError(
                        f"store {self.path.parent} (rank {self.rank}) is being written by {who}; "
                        "a second writer is refused",
                        hint="wait for that run to finish or stop it; a killed run's rerun resumes where it stopped",
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (ValueError, OSError):
        return None


def lock_holder(path: Path) -> int | None | bool:
    """Whether a live writer holds this lock file: its pid (or True if unknown), else False.

    Examples
    --------
    >>> import tempfile
    >>> lock_holder(Path(tempfile.mkdtemp()) / "writer-r000.lock")  # no such file: nobody writes
    False
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd) or True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
