"""`xmd train` and `xmd distill`: from a recipe and a work directory to a trained run.

`train` is supervised on one modality (the demo's face teacher, the student-alone
baseline). `distill` adds the teacher rows and quality scores read from the
stores that extract-teacher and score-quality wrote; it never builds a teacher
network. Both run the same `Trainer`, on one process or under torchrun.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xmd_cli import __version__
from xmd_cli.console import Output
from xmd_cli.data.manifest import Manifest, read_manifest
from xmd_cli.errors import XmdError
from xmd_cli.models.distill import DistillationLoss
from xmd_cli.recipe import Recipe, save_resolved
from xmd_cli.training.distributed import init_distributed, shutdown
from xmd_cli.training.loop import StudentWithMethod, Trainer, TrainJob, seed_everything


def training_labels(manifest: Manifest) -> dict[str, int]:
    """The classifier's classes: identities of the train split only (test identities are unseen)."""
    labels = sorted({s.label for s in manifest.samples if s.split == "train"})
    if len(labels) < 2:
        raise XmdError(f"{manifest.workdir}: the train split has {len(labels)} class(es); training needs at least 2")
    return {label: i for i, label in enumerate(labels)}


def subsample(dataset, fraction: float, seed: int) -> None:
    """Keep `fraction` of each class's samples (at least one), chosen by a seeded shuffle."""
    if fraction >= 1:
        return
    rng = np.random.default_rng([seed, 7919])
    by_class: dict[int, list[int]] = {}
    for position, target in enumerate(dataset.targets):
        by_class.setdefault(target, []).append(position)
    keep = set()
    for target in sorted(by_class):
        positions = by_class[target]
        count = max(1, int(round(fraction * len(positions))))
        keep.update(rng.permutation(positions)[:count].tolist())
    restrict(dataset, {dataset.samples[p].id for p in keep})


def restrict(dataset, keep) -> None:
    """Keep only the samples whose id is in `keep` (method.missing: drop)."""
    pairs = [(s, t) for s, t in zip(dataset.samples, dataset.targets) if s.id in keep]
    dataset.samples, dataset.targets = [p[0] for p in pairs], [p[1] for p in pairs]


def run_state(recipe: Recipe, workdir: Path) -> str:
    """'finished', 'resumable' or 'new' for WORKDIR/runs/<recipe.name>.

    A run made with another recipe (other seed, settings) or on another manifest is
    'new': it is retrained from the start, never reused or resumed under the wrong name.
    """
    from xmd_cli.data.manifest import manifest_hash
    from xmd_cli.recipe import load_recipe

    run_dir = Path(workdir) / "runs" / recipe.name
    meta_path, saved = run_dir / "checkpoints" / "last" / "meta.json", run_dir / "recipe.resolved.yaml"
    if not (meta_path.exists() and saved.exists()):
        return "new"
    meta = json.loads(meta_path.read_text())
    if load_recipe(saved) != recipe or meta.get("manifest_sha256") != manifest_hash(workdir):
        return "new"
    return "finished" if meta.get("epoch") == recipe.training.epochs else "resumable"


def run_fit(recipe: Recipe, workdir: Path, *, kind: str, device: str = "auto", resume: bool = False,
            allow_stale: bool = False, out: Output | None = None) -> dict:
    from xmd_cli.data.datasets import build_dataset, collate
    from xmd_cli.inference import embedding_batch_size
    from xmd_cli.models.students import build_student

    out = out or Output()
    workdir = Path(workdir)
    context = init_distributed(device)
    try:
        manifest = read_manifest(workdir)
        seed_everything(recipe.seed)
        labels = training_labels(manifest)
        student_config = recipe.student
        train_set = build_dataset(manifest, "train", student_config, train=True, seed=recipe.seed,
                                  noise_snr=recipe.training.noise_snr, labels=labels)
        subsample(train_set, recipe.training.train_fraction, recipe.seed)
        has_validation = any(s.split == "validation" for s in manifest.samples)
        val_set = (build_dataset(manifest, "validation", student_config, train=False, labels=labels)
                   if has_validation else None)
        side_info, teacher_dim, provenance, incomplete = (lambda indices: {}), None, {}, False
        if kind == "distill":
            from xmd_cli.stages.side_info import DistillationInputs

            inputs = DistillationInputs(recipe, manifest, train_set, allow_stale=allow_stale, out=out)
            if recipe.method.missing == "drop":
                restrict(train_set, inputs.present)
            side_info, teacher_dim, provenance = inputs, inputs.teacher_dim, inputs.provenance()
            incomplete = any(s.id not in inputs.present for s in train_set.samples)
        student = build_student(student_config)
        method = DistillationLoss.from_recipe(recipe.method, student_dim=student_config.embedding_dim,
                                              teacher_dim=teacher_dim, classes=len(labels))
        run_dir = workdir / "runs" / recipe.name
        if context.is_main:
            save_resolved(recipe, run_dir / "recipe.resolved.yaml")
        meta = {"task": kind, "recipe": recipe.name, "seed": recipe.seed, "xmd_version": __version__,
                "student": student_config.model_dump(mode="json"), "modality": student_config.modality,
                "embedding_dim": student_config.embedding_dim, "classes": list(labels),
                "teacher_dim": teacher_dim, "method": recipe.method.model_dump(mode="json") if kind == "distill" else None,
                "manifest_sha256": manifest.fingerprint, **provenance}
        job = TrainJob(model=StudentWithMethod(student, method), train_set=train_set, collate=collate,
                       config=recipe.training, seed=recipe.seed, run_dir=run_dir, meta=meta, val_set=val_set,
                       val_batch_size=embedding_batch_size(student_config), side_info=side_info,
                       may_skip_parameters=incomplete)
        out.note(f"[bold]xmd {kind}[/bold] {recipe.name}: {len(train_set)} training samples, {len(labels)} classes, "
                 f"{student_config.arch} on {context.device}"
                 + (f", {context.world} processes" if context.active else ""))
        summary = Trainer(job, context, out).fit(resume=resume)
        return {**summary, "task": kind, "samples": len(train_set), "classes": len(labels)}
    finally:
        shutdown(context)
