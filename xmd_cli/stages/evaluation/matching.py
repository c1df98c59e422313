"""Cross-modal matching: student embeddings of the test split against P(teacher rows).

The teacher rows come from the store the checkpoint was distilled with (its
meta.json names it and its fingerprint); the teacher network is never run here.
Evaluated in another work directory (cross-dataset), the same teacher's store of
that directory's manifest is used: the store whose components equal the
checkpoint's store except for the manifest hash.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xmd_cli.data.manifest import Manifest
from xmd_cli.errors import XmdError
from xmd_cli.inference import CheckpointModel, describe_embedding, embed_samples
from xmd_cli.metrics.matching import matching_summary
from xmd_cli.recipe import Recipe
from xmd_cli.shards import ShardReader, store_dir
from xmd_cli.shards.format import read_meta
from xmd_cli.stages.evaluation.model import check_fits

BACKEND = "cosine(student, projection(teacher))"


def teacher_store(model: CheckpointModel, manifest: Manifest, *, allow_stale: bool) -> Path:
    """The store holding this manifest's rows of the teacher the checkpoint was distilled with."""
    recorded = Path(model.meta.get("teacher_store") or "")
    expected = model.meta.get("teacher_fingerprint")
    if not recorded.name or not expected:
        raise XmdError(f"{model.directory}/meta.json names no teacher store",
                       hint="evaluate a checkpoint of `xmd distill`, which records the store it read")
    # meta.json may hold the path as the trainer was called (relative to its directory):
    # the work directory's teacher/ folder is looked in first.
    candidates = [manifest.workdir / "teacher" / recorded.name, recorded]
    found = next((p for p in candidates if (p / "meta.json").is_file()), None)
    if found is None:
        raise XmdError(f"the teacher store {recorded} the checkpoint was distilled with is gone",
                       hint="rerun `xmd extract-teacher` with the recipe the checkpoint was distilled with")
    store_meta = read_meta(found)
    if store_meta["fingerprint"] != expected:
        message = (f"{found} holds teacher rows with fingerprint {store_meta['fingerprint'][:12]}, but the "
                   f"checkpoint was distilled with {expected[:12]}")
        if not allow_stale:
            raise XmdError(message, hint="the store was rewritten since; rerun `xmd distill`, or pass "
                                         "--allow-stale to use these rows anyway")
        model.notes.append(message + " (--allow-stale)")
    components = dict(store_meta["components"])
    if components.get("manifest_sha256") in (None, manifest.fingerprint):
        return found
    components["manifest_sha256"] = manifest.fingerprint
    other = store_dir(manifest.workdir, "teacher", components)
    if not (other / "meta.json").is_file():
        raise XmdError(f"{manifest.workdir}: no teacher store of this data set made with the checkpoint's "
                       f"teacher ({components.get('teacher')}); expected {other}",
                       hint="run `xmd extract-teacher` in this work directory with the teacher recipe the "
                            "checkpoint was distilled with")
    return other


def teacher_rows(model: CheckpointModel, manifest: Manifest, samples: list, *, allow_stale: bool
                 ) -> tuple[Path, list, np.ndarray, int]:
    """(store, the samples that have a teacher row, their rows, how many had none), from the store the
    checkpoint was distilled with, its row width checked against the projection head's."""
    path = teacher_store(model, manifest, allow_stale=allow_stale)
    with ShardReader(path) as reader:
        if reader.dim != int(model.meta["teacher_dim"]):
            raise XmdError(f"{path}: teacher rows have {reader.dim} values, the checkpoint's projection head "
                           f"takes {model.meta['teacher_dim']}")
        missing = set(reader.missing([s.id for s in samples]))
        kept = [s for s in samples if s.id not in missing]
        rows = reader.get([s.id for s in kept], pick="mean") if kept else np.zeros((0, reader.dim))
    return path, kept, rows, len(missing)


def evaluate_matching(recipe: Recipe, manifest: Manifest, model: CheckpointModel, *, out_dir: Path,
                      allow_stale: bool, out, trials: None = None) -> dict:
    test = manifest.split("test")
    if not test:
        raise XmdError(f"{manifest.workdir}: the manifest has no test split to match on",
                       hint="prepare the data set with a test split of identities unseen in training")
    facts = check_fits(model, "cross-modal-matching", manifest, {s.label for s in test}, allow_stale=allow_stale)
    projection = model.projection()
    path, kept, teacher, missing = teacher_rows(model, manifest, test, allow_stale=allow_stale)
    if not kept:
        raise XmdError(f"{path}: none of the {len(test)} test samples has a teacher row",
                       hint="run `xmd extract-teacher` on the whole data set")
    if missing:
        model.notes.append(f"{missing} test sample(s) without a teacher row were left out")
    student = embed_samples(model, manifest, kept, stage="test samples", num_workers=recipe.training.num_workers,
                            out=out)
    with torch.no_grad():
        projected = projection(torch.from_numpy(teacher).float().to(model.device)).double().cpu().numpy()
    evaluation = recipe.evaluation
    result = matching_summary(student, projected, [s.label for s in kept], n_ways=evaluation.matching_n_ways,
                              recall_ks=evaluation.recall_ks, trials_per_probe=evaluation.trials_per_probe,
                              bootstrap=evaluation.bootstrap, seed=recipe.seed)
    protocol = {"split": "test", **result["protocol"], "left_out_without_teacher_row": missing,
                "teacher_rows": "mean of the stored frames of each sample", "embedding": describe_embedding(model),
                **facts}
    if result["skipped"]:
        protocol["skipped"] = result["skipped"]
    return {"backend": BACKEND, "metrics": result["metrics"], "protocol": protocol,
            "fingerprints": {"teacher_store": read_meta(path)["fingerprint"]}, "plots": {}}
