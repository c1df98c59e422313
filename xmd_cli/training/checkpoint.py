"""Checkpoints: safetensors weights plus a small state file, written atomically.

A checkpoint is a directory:
  weights.safetensors   the model's state_dict (student.* and method parts)
  state.pt              optimizer, scheduler, RNG states, position in training
  meta.json             what the weights are: task, modality, architecture, dims, classes
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from xmd_cli.errors import XmdError


def save_checkpoint(directory: Path, model: torch.nn.Module, state: dict, meta: dict) -> Path:
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / "weights.safetensors"))
    torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    # Swap in the new directory; a crash in between leaves either the old or the .tmp copy.
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


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


def load_state(directory: Path) -> dict:
    # weights_only=False: the state holds RNG byte tensors and plain Python values we wrote ourselves.
    return torch.load(Path(directory) / "state.pt", map_location="cpu", weights_only=False)
