"""What a run directory (WORKDIR/runs/NAME) promises: one writer, one run, one recipe.

- The name stays inside WORKDIR/runs: one plain path component.
- A lock file held with flock for the whole run: a second writer is refused, naming the first.
- A new run never mixes with an old one under the same name: --resume, another name, or --force.
- --resume continues only the run the recipe describes: keys that change what is computed are refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
from pathlib import Path

from xmd_cli.errors import XmdError

LOCK = ".lock"
# Recipe keys that change neither the numbers nor the order of training: a resume may change them.
HARMLESS_KEYS = {"training.log_every", "training.tensorboard", "training.checkpoint_every",
                 "training.checkpoint_every_steps", "training.keep_last", "training.average_last",
                 "method.qaw.min_effective_share"}  # the last only warns
HARMLESS_SECTIONS = ("evaluation.",)  # read by `xmd evaluate`, not by training


def run_directory(workdir: Path, name: str) -> Path:
    """WORKDIR/runs/NAME, refusing a name that would put the run anywhere else."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise XmdError(f"name={name!r}: a run name must be one plain name inside {Path(workdir) / 'runs'} "
                       "(no '/', '..' or absolute path); use e.g. --set name=my-run")
    return Path(workdir) / "runs" / name


class RunLock:
    """flock on RUN/.lock, held while this process trains; the kernel drops it when the process dies."""

    def __init__(self, run_dir: Path, name: str):
        self.path, self.name, self.fd = run_dir / LOCK, name, None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "a process that is starting"
            os.close(fd)
            raise XmdError(f"run '{self.name}' ({self.path.parent}) is in use by another xmd process ({holder}); "
                           "wait for it to finish, or use another --set name=...") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def has_contents(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(p.name != LOCK for p in run_dir.iterdir())


def refuse_reuse(run_dir: Path, name: str) -> None:
    """A run started without --resume must not write into (or read from) an older run of the same name."""
    if has_contents(run_dir):
        raise XmdError(f"run '{name}' already exists in {run_dir}; continue it with --resume, choose another "
                       "--set name=..., or start it over with --force (deletes it)")


def clear(run_dir: Path) -> None:
    """--force: remove an old run's files (the lock we hold stays)."""
    for entry in run_dir.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def changed_keys(saved: dict, current: dict) -> list[str]:
    """Recipe keys (dotted) whose values differ and that change the run; harmless ones are left out."""
    old, new = flatten(saved), flatten(current)
    differing = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return [k for k in differing if k not in HARMLESS_KEYS and not k.startswith(HARMLESS_SECTIONS)]


def refuse_recipe_change(run_dir: Path, name: str, recipe: dict, manifest_sha256: str | None) -> None:
    """--resume: the checkpoint must have been made with this recipe (and manifest), else say what differs."""
    meta_path = run_dir / "checkpoints" / "last" / "meta.json"
    if not meta_path.exists():
        return  # nothing to continue: the run starts at step 0 with this recipe
    meta = json.loads(meta_path.read_text())
    keys = changed_keys(meta.get("resolved_recipe") or {}, recipe) if "resolved_recipe" in meta else []
    if manifest_sha256 is not None and meta.get("manifest_sha256") not in (None, manifest_sha256):
        keys.append("manifest (WORKDIR/manifest.jsonl)")
    if keys:
        raise XmdError(f"--resume: run '{name}' was made with other values of {', '.join(keys)}; resume with "
                       "the recipe it was made with, pass --allow-recipe-change to continue anyway, or use "
                       "--force / another --set name=... to train afresh")
