"""Which checkpoint an evaluation measures, and whether it can do the task asked of it."""

from __future__ import annotations

from pathlib import Path

from xmd_cli.data.manifest import Manifest
from xmd_cli.errors import XmdError
from xmd_cli.inference import CheckpointModel
from xmd_cli.recipe import Recipe
from xmd_cli.vocab import is_speech_arch


def default_checkpoint(recipe: Recipe, workdir: Path) -> Path:
    return Path(workdir) / "runs" / recipe.name / "checkpoints" / recipe.evaluation.checkpoint


def check_fits(model: CheckpointModel, task: str, manifest: Manifest, identities: set[str], *,
               allow_stale: bool) -> dict:
    """Refuse a checkpoint that cannot do `task` on these identities; returns protocol facts.

    A checkpoint of another manifest is accepted only when none of the evaluated
    identities is among its training classes (cross-dataset evaluation, e.g. trained
    on VoxCeleb2, tested on VoxCeleb1). When they overlap, the data set was probably
    re-prepared and its samples may be among those the model trained on.
    """
    if task == "speaker-verification" and not is_speech_arch(model.config.arch):
        raise XmdError(f"{model.describe}: speaker verification needs a speech student (ecapa or resnet34)",
                       hint="use --task classification or cross-modal-matching for image students")
    if task == "cross-modal-matching" and model.meta.get("task") != "distill":
        raise XmdError(f"{model.describe}: cross-modal matching compares the student with projected teacher "
                       "embeddings, and only `xmd distill` trains a projection head",
                       hint="evaluate a checkpoint of `xmd distill`, or use --task speaker-verification "
                            "or classification")
    seen = identities & set(model.classes)
    facts = {"checkpoint_task": model.meta.get("task"), "evaluated_identities": len(identities),
             "identities_seen_in_training": len(seen)}
    if seen and task != "classification":
        # Open-set tasks measure generalisation to new identities; say so when they are not new.
        model.notes.append(f"{len(seen)} of the {len(identities)} evaluated identities are classes the checkpoint "
                           "trained on, so this is not an evaluation on unseen identities")
    trained_on = model.meta.get("manifest_sha256")
    if trained_on and trained_on != manifest.fingerprint:
        facts["cross_dataset"] = True
        if seen and not allow_stale:
            raise XmdError(f"{model.directory} was trained on another manifest (sha256 {trained_on[:12]}) than "
                           f"{manifest.workdir} holds ({manifest.fingerprint[:12]}), and {len(seen)} of the "
                           f"{len(identities)} evaluated identities are among its training classes, so its "
                           "training samples may be among the evaluated ones",
                           hint="evaluate in the work directory the checkpoint was trained in, or pass "
                                "--allow-stale to accept the overlap")
        model.notes.append(f"the checkpoint was trained on another manifest ({trained_on[:12]}); "
                           + ("evaluated identities overlap its classes (--allow-stale)" if seen
                              else "no evaluated identity is among its training classes (cross-dataset)"))
    return facts
