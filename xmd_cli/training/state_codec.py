"""Trainer state as safetensors (every tensor and array) plus JSON (everything else): loading never unpickles.

The state is a tree of dicts, lists, tuples, tensors, numpy arrays and plain values
(optimizer and scheduler state_dicts, RNG states). Tensors are replaced in the JSON by
{"$tensor": key}; tuples and dicts with non-string keys are tagged so they come back as
they were (optimizer state is keyed by int, Python's RNG state is a tuple), and floats
round-trip exactly through JSON's repr.
"""

from __future__ import annotations

import numpy as np
import torch


def encode(value, tensors: dict):
    if isinstance(value, torch.Tensor):
        return {"$tensor": _add(tensors, value.detach().cpu().contiguous())}
    if isinstance(value, np.ndarray):
        # Stored widened (safetensors has no uint32 in every torch); the dtype brings it back exactly.
        wide = value.astype(np.int64 if value.dtype.kind in "biu" else np.float64)
        return {"$ndarray": _add(tensors, torch.from_numpy(wide)), "dtype": str(value.dtype)}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v, tensors) for k, v in value.items()}
        return {"$items": [[encode(k, tensors), encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"trainer state: cannot store a {type(value).__name__} without pickle")


def decode(value, tensors: dict):
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        return tensors[value["$tensor"]]
    if "$ndarray" in value:
        return tensors[value["$ndarray"]].numpy().astype(value["dtype"])
    if "$tuple" in value:
        return tuple(decode(v, tensors) for v in value["$tuple"])
    if "$items" in value:
        return {decode(k, tensors): decode(v, tensors) for k, v in value["$items"]}
    return {k: decode(v, tensors) for k, v in value.items()}


def _add(tensors: dict, tensor: torch.Tensor) -> str:
    key = f"t{len(tensors)}"
    tensors[key] = tensor
    return key
