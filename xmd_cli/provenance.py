"""Where a result came from: the code's git revision, the command line, library versions, the host.

Recorded in every report next to the xmd version, so a number can be traced to
the code and machine that made it. Nothing here imports torch: a report of a
score file (which needs no torch) names the installed version from package
metadata instead.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shlex
import socket
import subprocess
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def git_revision(folder: Path = PACKAGE_DIR) -> str | None:
    """The commit of the checkout the code runs from, with `+dirty` for local changes; None when the
    code is not in a git checkout (an installed wheel) or git is missing."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def _torch() -> dict:
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            return {"torch": importlib.metadata.version("torch"), "cuda": None, "gpu": None}
        except importlib.metadata.PackageNotFoundError:
            return {"torch": None, "cuda": None, "gpu": None}
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": gpu}


def environment() -> dict:
    """{git_revision, command, python, torch, cuda, gpu, host, platform} of this process."""
    return {"git_revision": git_revision(), "command": shlex.join(["xmd", *sys.argv[1:]]),
            "python": platform.python_version(), **_torch(), "host": socket.gethostname(),
            "platform": platform.platform()}
