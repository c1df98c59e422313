"""Checkpoints: safetensors weights plus the trainer state, without pickle, swapped in atomically.

A checkpoint is a directory:
  weights.safetensors   the model's state_dict (student.* and method parts)
  trainer.safetensors   the trainer state's tensors (optimizer moments, RNG states)
  trainer.json          the rest of it: scheduler, position in training, where each tensor goes
  meta.json             what the weights are: task, modality, architecture, dims, classes

`checkpoints/last` (and best, epoch-NNN) is a symlink to a hidden version directory
(`.last.XXXX`). A save writes and fsyncs a new version, then re-points the name in one
rename: after kill -9 or power loss at any instant the name leads to a whole checkpoint,
the old or the new one. Versions nothing points to are removed by the next save.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from xmd_cli.errors import XmdError
from xmd_cli.training.durable import fsync_path, point, write_durable
from xmd_cli.training.state_codec import decode, encode

STATE_TENSORS, STATE_JSON, LEGACY_STATE = "trainer.safetensors", "trainer.json", "state.pt"


def save_checkpoint(directory: Path, model: torch.nn.Module | dict, state: dict | None, meta: dict) -> Path:
    """Write a checkpoint: `model` (a module or its state dict); `state` None writes weights and meta only."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    version = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    # mkdtemp's 0700 would hide the checkpoint from the group: the folder follows the umask like
    # the files in it (umask 022: 0755 and 0644; umask 027: 0750 and 0640).
    os.chmod(version, 0o777 & ~_umask())
    try:
        _write_version(version, model, state, meta)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)  # a full disk: give back what the half version took
        raise
    _fault_point("checkpoint-swap")
    _set_aside_legacy(directory)
    point(directory, version.name)
    _fault_point("checkpoint-swapped")
    _prune(directory)
    return directory


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_version(version: Path, model: torch.nn.Module | dict, state: dict | None, meta: dict) -> None:
    source = model if isinstance(model, dict) else model.state_dict()
    weights = {k: v.detach().cpu().contiguous() for k, v in source.items()}
    # Bytes, then a plain write: safetensors' own file writer reports a full disk as a
    # SafetensorError, not the OSError the CLI turns into "no space left on ... ".
    write_durable(version / "weights.safetensors", save(weights))
    if state is not None:
        tensors: dict = {}
        document = encode(state, tensors)
        write_durable(version / STATE_TENSORS, save(tensors))
        write_durable(version / STATE_JSON, (json.dumps(document) + "\n").encode())
    write_durable(version / "meta.json", (json.dumps(meta, indent=1, default=str) + "\n").encode())
    fsync_path(version)


def _set_aside_legacy(directory: Path) -> None:
    """A real directory under the name (written by an older xmd) cannot be renamed over: move it aside."""
    if directory.is_dir() and not directory.is_symlink():
        os.replace(directory, tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))


def _prune(directory: Path) -> None:
    """Remove what the name no longer points to: the version just replaced, and leftovers of a kill."""
    current = os.readlink(directory)
    for entry in directory.parent.glob(f".{directory.name}.*"):
        if entry.name == current:
            continue
        if entry.is_symlink():
            entry.unlink(missing_ok=True)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


_FAULTS: dict[str, int] = {}


def _fault_point(name: str) -> None:
    """Test hook: XMD_TEST_KILL_AT=name:N kills this process (SIGKILL, no cleanup) the Nth time it gets here.

    It lets tests leave exactly the on-disk state a kill at this instant leaves.
    """
    wanted = os.environ.get("XMD_TEST_KILL_AT", "")
    if not wanted.startswith(name + ":"):
        return
    _FAULTS[name] = _FAULTS.get(name, 0) + 1
    if _FAULTS[name] == int(wanted.split(":")[1]):
        os.kill(os.getpid(), signal.SIGKILL)


def read_meta(directory: Path) -> dict:
    path = Path(directory) / "meta.json"
    if not path.exists():
        raise XmdError(f"{directory}: not an xmd checkpoint (no meta.json)",
                       hint="pass a run's checkpoints/best or checkpoints/last directory")
    return json.loads(path.read_text())


def load_weights(directory: Path, model: torch.nn.Module, strict: bool = True) -> None:
    path = Path(directory) / "weights.safetensors"
    if not path.exists():
        raise XmdError(f"{directory}: no weights.safetensors")
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if strict and (missing or unexpected):
        raise XmdError(f"{path}: weights do not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})",
                       hint="was this checkpoint made with another recipe? compare its meta.json")


def load_part(module: torch.nn.Module, weights: dict, prefix: str, directory: Path) -> torch.nn.Module:
    """Load the weights under `prefix` (e.g. "student.", "method.projection.") into `module`."""
    state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise XmdError(f"{directory}/weights.safetensors: the {prefix.rstrip('.')} weights do not fit the model "
                       f"its meta.json describes ({first})",
                       hint="the checkpoint directory is damaged or mixed from two runs; use another one") from None
    return module


def load_student(directory: Path, config, weights: dict | None = None) -> torch.nn.Module:
    """A checkpoint's student network with its trained weights, in eval mode (the method's parts left out)."""
    from xmd_cli.models.students import build_student_for_checkpoint

    if weights is None:
        weights = load_file(str(Path(directory) / "weights.safetensors"))
    return load_part(build_student_for_checkpoint(config), weights, "student.", directory).eval()


def has_state(directory: Path) -> bool:
    """Whether `directory` is a checkpoint with trainer state (an old pickled one counts, to be refused)."""
    return (Path(directory) / STATE_JSON).exists() or (Path(directory) / LEGACY_STATE).exists()


def load_state(directory: Path) -> dict:
    """The trainer state, read from safetensors and JSON only: a crafted checkpoint cannot run code."""
    directory = Path(directory)
    if not (directory / STATE_JSON).exists() and (directory / LEGACY_STATE).exists():
        raise XmdError(f"{directory / LEGACY_STATE}: a checkpoint of an older xmd whose pickled state is not "
                       "loaded (unpickling can run code); start the run over with --force or another "
                       "--set name=... (its weights still evaluate)")
    tensors = load_file(str(directory / STATE_TENSORS))
    return decode(json.loads((directory / STATE_JSON).read_text()), tensors)
