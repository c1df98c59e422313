"""Keep the newest N epoch checkpoints, and average the weights of the last N (as WeSpeaker's avg_model).

Epoch checkpoints (`epoch-NNN`) hold weights and meta only: the optimizer state, needed only to
continue training, lives in `last` (and `best`). An averaged checkpoint (`averaged`) is the
element-wise mean of the float tensors, BatchNorm statistics included; integer buffers
(num_batches_tracked) are the newest epoch's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from xmd_cli.errors import XmdError

EPOCH_NAME = re.compile(r"epoch-(\d+)$")
AVERAGED = "averaged"


def epoch_checkpoints(checkpoints: Path) -> list[Path]:
    """checkpoints/epoch-NNN names, oldest first."""
    found = [p for p in Path(checkpoints).glob("epoch-*") if EPOCH_NAME.match(p.name)]
    return sorted(found, key=lambda p: int(EPOCH_NAME.match(p.name)[1]))


def keep_newest(checkpoints: Path, keep: int) -> list[str]:
    """Remove all but the newest `keep` epoch checkpoints (the name first, then its version); returns removed names."""
    removed = []
    for name in epoch_checkpoints(checkpoints)[:-keep]:
        target = name.parent / os.readlink(name) if name.is_symlink() else name
        if name.is_symlink():
            name.unlink()
        shutil.rmtree(target, ignore_errors=True)
        removed.append(name.name)
    return removed


def average_weights(directories: list[Path]) -> dict[str, torch.Tensor]:
    """The mean of the checkpoints' weights (float tensors); other tensors from the last one."""
    states = [load_file(str(Path(d) / "weights.safetensors")) for d in directories]
    keys = states[-1].keys()
    for directory, state in zip(directories, states):
        if state.keys() != keys:
            raise XmdError(f"{directory}: its weights have other names than {directories[-1]}'s; "
                           "checkpoints of different models cannot be averaged")
    averaged = {}
    for key in keys:
        newest = states[-1][key]
        if newest.is_floating_point():
            total = sum(state[key].double() for state in states)
            averaged[key] = (total / len(states)).to(newest.dtype)
        else:
            averaged[key] = newest.clone()
    return averaged


def average_last(checkpoints: Path, last: int) -> tuple[dict[str, torch.Tensor], dict]:
    """(weights, meta) of the mean of the newest `last` epoch checkpoints."""
    found = epoch_checkpoints(checkpoints)
    if len(found) < last:
        raise XmdError(f"{checkpoints}: {len(found)} epoch checkpoint(s), fewer than the {last} to average",
                       hint="lower training.average_last, or keep more (training.keep_last, checkpoint_every 1)")
    chosen = found[-last:]
    meta = json.loads((chosen[-1] / "meta.json").read_text())
    meta["averaged_from"] = [p.name for p in chosen]
    return average_weights(chosen), meta
