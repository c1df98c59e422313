"""Student-alone embeddings of given samples, from a checkpoint of `xmd train`.

The student network is rebuilt from the checkpoint's meta.json (its StudentConfig)
and only its `student.*` weights are loaded; the method's parts are not needed.
Inputs are read as at evaluation: whole utterances, or the first image, no
augmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xmd_cli.data.manifest import Manifest
from xmd_cli.errors import XmdError


def checkpoint_task(directory: Path) -> str:
    from xmd_cli.training.checkpoint import read_meta

    return str(read_meta(directory).get("task", "unknown"))


def student_embeddings(directory: Path, manifest: Manifest, ids: list[str], device) -> np.ndarray:
    """float32 [len(ids), D]: the checkpoint's student applied to each sample in `ids`, in that order."""
    import torch
    from safetensors.torch import load_file
    from torch.utils.data import DataLoader

    from xmd_cli.datasets import build_dataset, collate
    from xmd_cli.students import build_student_for_checkpoint, is_speech_student
    from xmd_cli.teachers.checkpoint import checkpoint_weights, read_student_config

    directory = Path(directory).expanduser()
    config = read_student_config(directory)
    network = build_student_for_checkpoint(config)
    state = {k[len("student."):]: v for k, v in load_file(str(checkpoint_weights(directory))).items()
             if k.startswith("student.")}
    missing, unexpected = network.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise XmdError(f"{directory}: the student weights do not fit the student its meta.json describes "
                       f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    network.eval().to(device)
    wanted = set(ids)
    splits = sorted({s.split for s in manifest.samples if s.id in wanted})
    dataset = build_dataset(manifest, splits, config, train=False, labels=manifest.labels)
    position = {sample_id: k for k, sample_id in enumerate(ids)}
    keep = [k for k, s in enumerate(dataset.samples) if s.id in wanted]
    subset = torch.utils.data.Subset(dataset, keep)
    loader = DataLoader(subset, batch_size=1 if is_speech_student(config) else 64, collate_fn=collate)
    out = np.zeros((len(ids), config.embedding_dim), np.float32)
    with torch.no_grad():
        for inputs, _, indices, lengths in loader:
            rows = network(inputs.to(device)) if lengths is None else network(inputs.to(device), lengths.to(device))
            for index, row in zip(indices.tolist(), rows.float().cpu().numpy()):
                out[position[dataset.samples[index].id]] = row
    return out
