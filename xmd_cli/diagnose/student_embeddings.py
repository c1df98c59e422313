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
    """float32 [len(ids), D]: the checkpoint's student applied to each sample in `ids`, in that order.

    The evaluate stage's loader and embedder, so diagnose sees exactly what evaluate scores.
    """
    from xmd_cli.stages.evaluation.embed import embed_samples
    from xmd_cli.stages.evaluation.model import load_checkpoint

    by_id = manifest.by_id()
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise XmdError(f"{manifest.workdir}: sample(s) {', '.join(map(repr, unknown[:3]))} are not in the manifest")
    model = load_checkpoint(Path(directory), device)
    samples = [by_id[i] for i in ids]
    return embed_samples(model, manifest, samples, stage="diagnose: student embeddings").astype(np.float32)
