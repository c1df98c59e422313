"""The checkpoint an evaluation measures: its student, its method parts, and whether it fits the task.

A checkpoint directory (from `xmd train` or `xmd distill`) holds weights.safetensors
(keys `student.*`, `method.*`) and meta.json (task, student config, classes,
teacher_dim, method config, manifest_sha256, teacher store). The student is rebuilt
from meta.json's `student` config, so evaluation needs no recipe of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from xmd_cli.data.manifest import Manifest
from xmd_cli.errors import XmdError
from xmd_cli.recipe import Recipe, StudentConfig
from xmd_cli.training.checkpoint import load_part

TASKS = ("speaker-verification", "classification", "cross-modal-matching")


def default_checkpoint(recipe: Recipe, workdir: Path) -> Path:
    return Path(workdir) / "runs" / recipe.name / "checkpoints" / recipe.evaluation.checkpoint


@dataclass
class CheckpointModel:
    directory: Path
    meta: dict
    config: StudentConfig
    student: torch.nn.Module
    weights: dict[str, torch.Tensor]
    device: torch.device
    notes: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes") or [])

    @property
    def describe(self) -> str:
        return (f"{self.directory} (a `{self.meta.get('task')}` checkpoint of a {self.config.arch} "
                f"{self.config.modality} student)")

    def part(self, prefix: str) -> dict[str, torch.Tensor]:
        """The weights under `prefix` (e.g. "method.projection."), the prefix removed."""
        return {k[len(prefix):]: v for k, v in self.weights.items() if k.startswith(prefix)}

    def classifier_weight(self) -> torch.Tensor:
        weight = self.weights.get("method.classifier.weight")
        if weight is None:
            raise XmdError(f"{self.describe} has no classifier (no method.classifier.weight)",
                           hint="classification needs a checkpoint from `xmd train` or `xmd distill`")
        return weight.to(self.device, torch.float32)

    def projection(self):
        """The trained projection head P (teacher dim -> student dim), eval mode, on the device."""
        from xmd_cli.method import ProjectionHead

        state = self.part("method.projection.")
        method = self.meta.get("method") or {}
        if not state or not self.meta.get("teacher_dim") or "projection" not in method:
            raise XmdError(f"{self.describe} has no projection head, so its student cannot be compared with "
                           "teacher embeddings",
                           hint="cross-modal matching needs a checkpoint of `xmd distill` whose method uses the "
                                "teacher (method.feature.loss or method.classifier.kind not none)")
        head = ProjectionHead(int(self.meta["teacher_dim"]), self.config.embedding_dim, method["projection"])
        return load_part(head, self.weights, "method.projection.", self.directory).eval().to(self.device)


def load_checkpoint(directory: Path, device: torch.device) -> CheckpointModel:
    from safetensors.torch import load_file

    from xmd_cli.training.checkpoint import load_student, read_meta

    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise XmdError(f"{directory}: no checkpoint here",
                       hint="run `xmd train` or `xmd distill` with this recipe and work directory first, "
                            "or pass --checkpoint DIR (a run's checkpoints/best)")
    meta = read_meta(directory)
    weights_path = directory / "weights.safetensors"
    if not weights_path.exists():
        raise XmdError(f"{directory}: no weights.safetensors", hint="pass a run's checkpoints/best or /last")
    if meta.get("task") not in ("train", "distill") or "student" not in meta:
        raise XmdError(f"{directory}/meta.json: task {meta.get('task')!r} is not a checkpoint of "
                       "`xmd train` or `xmd distill`, or it does not name its student",
                       hint="evaluate a run's checkpoints/best or checkpoints/last directory")
    config = StudentConfig(**meta["student"])
    weights = load_file(str(weights_path))
    student = load_student(directory, config, weights)
    return CheckpointModel(directory, meta, config, student.to(device), weights, device)


def check_fits(model: CheckpointModel, task: str, manifest: Manifest, identities: set[str], *,
               allow_stale: bool) -> dict:
    """Refuse a checkpoint that cannot do `task` on these identities; returns protocol facts.

    A checkpoint of another manifest is accepted only when none of the evaluated
    identities is among its training classes (cross-dataset evaluation, e.g. trained
    on VoxCeleb2, tested on VoxCeleb1). When they overlap, the data set was probably
    re-prepared and its samples may be among those the model trained on.
    """
    from xmd_cli.students import is_speech_student

    if task == "speaker-verification" and not is_speech_student(model.config):
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
