"""The one exception type a user should ever see, and how the CLI prints it.

Code anywhere in xmd raises `XmdError` for bad input (a recipe typo, a missing
file, a corrupt wav); the CLI catches it and prints the message without a
traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno


class XmdError(Exception):
    """A user-facing error: the message names the file, line or key and what to do."""

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


# The OS errors that are the machine's state, not a bug: said in one line with what to do.
# Others (EIO, ENOENT in the middle of a stage...) keep their traceback.
_FULL = "free space there (or point --workdir at a disk with room) and rerun the same command; finished work is kept"
DISK_FAULTS = {
    errno.ENOSPC: ("no space left on the device", _FULL),
    errno.EDQUOT: ("disk quota exceeded", _FULL),
    errno.EROFS: ("the file system is read-only",
                  "remount it read-write or point --workdir at a writable directory, then rerun"),
    errno.EACCES: ("permission denied", "give this user access (see `ls -ld` on it and its parents) "
                   "or point --workdir elsewhere, then rerun"),
    errno.EPERM: ("operation not permitted", "give this user access (see `ls -ld` on it and its parents) "
                  "or point --workdir elsewhere, then rerun"),
}


def disk_error(error: OSError, near: object = None) -> XmdError | None:
    """A disk fault (full, read-only, not permitted) as one XmdError naming the path; None for other errors.

    `near` (e.g. the work directory) names where it happened when the OS error
    carries no file name, as a failed write() on an open file does.
    """
    fault = DISK_FAULTS.get(error.errno)
    if fault is None:
        return None
    what, todo = fault
    path = error.filename if error.filename is not None else (f"writing under {near}" if near else "(unknown path)")
    also = f" -> {error.filename2}" if error.filename2 is not None else ""
    return XmdError(f"{path}{also}: {what}", hint=todo)
