"""`xmd train` and `xmd distill`: from a recipe and a work directory to a trained run.

`train` is supervised on one modality (the demo's face teacher, the student-alone
baseline). `distill` adds the teacher rows and quality scores read from the
stores that extract-teacher and score-quality wrote; it never builds a teacher
network. Both run the same `Trainer`, on one process or under torchrun.
"""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from xmd_cli import __version__
from xmd_cli.console import Output
from xmd_cli.data.manifest import Manifest, read_manifest
from xmd_cli.errors import XmdError
from xmd_cli.io import ensure_writable
from xmd_cli.models.distill import DistillationLoss
from xmd_cli.recipe import Recipe, save_resolved
from xmd_cli.training.distributed import init_distributed, shutdown
from xmd_cli.training.loop import StudentWithMethod, Trainer, TrainJob, seed_everything
from xmd_cli.training.rundir import RunLock, clear, refuse_recipe_change, refuse_reuse, run_directory


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


def validation_plan(recipe: Recipe, manifest: Manifest, labels: dict[str, int]):
    """(validation dataset or None, trials or None): closed-set when the validation labels are training
    classes, open-set (EER on trials, `best` by lowest EER) when they are all unseen in training."""
    from xmd_cli.data.datasets import build_dataset
    from xmd_cli.data.manifest import label_map

    samples = manifest.split("validation")
    if not samples:
        return None, None
    unseen = sorted({s.label for s in samples} - set(labels))
    if not unseen:
        return build_dataset(manifest, "validation", recipe.student, train=False, labels=labels), None
    seen = sorted({s.label for s in samples} & set(labels))
    if seen:
        raise XmdError(f"{manifest.workdir}: the validation split holds {len(seen)} training identities (first "
                       f"{seen[0]!r}) and {len(unseen)} unseen ones (first {unseen[0]!r}); validation is closed-set "
                       "accuracy on training identities or EER on unseen ones, not both",
                       hint="give the validation split only training identities or only unseen ones, then rerun "
                            "`xmd prepare`")
    val_set = build_dataset(manifest, "validation", recipe.student, train=False, labels=label_map(samples))
    return val_set, _validation_trials(recipe, manifest, val_set.samples)


def _validation_trials(recipe: Recipe, manifest: Manifest, samples) -> tuple:
    """(enroll positions, test positions, labels) into `samples`: the named list, or generated pairs."""
    from xmd_cli.data.manifest import read_trials
    from xmd_cli.data.pairs import generated_trials
    from xmd_cli.stages.evaluation.verification import trials_file

    spec = recipe.training.validation_trials
    position = {s.id: i for i, s in enumerate(samples)}
    if spec is None:
        trials = generated_trials(samples, seed=recipe.data.seed, where=f"{manifest.workdir}: validation split")
    else:
        path = trials_file(spec, "training.validation_trials", manifest.workdir, manifest.dataset)
        trials = read_trials(path, {s.id for s in manifest.samples})
        outside = next((name for t in trials for name in (t.enroll, t.test) if name not in position), None)
        if outside is not None:
            raise XmdError(f"{path}: trial sample {outside!r} is not in the validation split; "
                           "training.validation_trials must name validation samples only",
                           hint="use a trial list over the validation split, or unset training.validation_trials "
                                "to generate one")
    return (np.array([position[t.enroll] for t in trials]), np.array([position[t.test] for t in trials]),
            np.array([t.target for t in trials], dtype=bool))


def teacher_class_means(recipe: Recipe, inputs, train_set, labels: dict[str, int], out: Output) -> dict:
    """teacher-generated: the training samples' mean teacher row per class (kwargs of from_recipe), else {}."""
    if recipe.method.classifier.kind != "teacher-generated":
        return {}
    means, has_mean = inputs.class_means(train_set, len(labels))
    lacking = [name for name, k in labels.items() if not has_mean[k]]
    if lacking:
        out.note(f"[yellow]{len(lacking)} of {len(labels)} classes have no teacher row in the training split[/yellow] "
                 f"(e.g. {', '.join(lacking[:3])}): their classifier rows are learned, not generated "
                 "(method.classifier.kind teacher-generated)")
    return {"class_means": means, "has_class_mean": has_mean}


def qaw_epoch_metrics(summary: dict | None) -> dict:
    """What metrics.jsonl and the console repeat at each epoch's end about the QAW weights."""
    if not summary or "effective_size" not in summary:
        return {}
    return {"qaw/effective_size": summary["effective_size"], "qaw/effective_share": summary["effective_share"]}


def margin_schedule(classifier) -> tuple[int, int, float] | None:
    """method.classifier's AAM margin warm-up as the trainer takes it; None when off."""
    if not classifier.margin_warmup_end_epoch:
        return None
    return (classifier.margin_warmup_start_epoch, classifier.margin_warmup_end_epoch, classifier.angular_margin)


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
            force: bool = False, allow_recipe_change: bool = False, allow_stale: bool = False,
            out: Output | None = None) -> dict:
    """Train WORKDIR/runs/<recipe.name>: a new run, `resume` it, or `force` it to start over."""
    out = out or Output()
    workdir = Path(workdir)
    context = init_distributed(device)
    try:
        run_dir = run_directory(workdir, recipe.name)
        with claimed_run(run_dir, recipe, workdir, context, resume=resume, force=force,
                         allow_recipe_change=allow_recipe_change):
            return _train(recipe, workdir, run_dir, kind=kind, context=context, resume=resume,
                          allow_stale=allow_stale, out=out)
    finally:
        shutdown(context)


@contextmanager
def claimed_run(run_dir: Path, recipe: Recipe, workdir: Path, context, *, resume: bool, force: bool,
                allow_recipe_change: bool):
    """Hold the run's lock (rank 0) and refuse what would mix runs; every rank agrees before anyone trains."""
    with ExitStack() as stack:
        error = None
        try:
            # Rank 0 alone looks at the run directory, under the lock it holds: another rank looking
            # while rank 0 writes its probe and lock files would see a run that is not there.
            if context.is_main:
                ensure_writable(run_dir)  # before building datasets and models
                stack.enter_context(RunLock(run_dir, recipe.name))
                _check_run(run_dir, recipe, workdir, resume=resume, force=force,
                           allow_recipe_change=allow_recipe_change)
        except XmdError as e:
            error = e
        # A rank that refuses alone would leave the others waiting in DDP's first collective.
        if context.active and context.mean(1.0 if error else 0.0) > 0 and error is None:
            error = XmdError(f"run '{recipe.name}': another process of this run refused to start (see its message)")
        if error:
            raise error
        if force and not resume and context.is_main:
            clear(run_dir)
        yield


def _check_run(run_dir: Path, recipe: Recipe, workdir: Path, *, resume: bool, force: bool,
               allow_recipe_change: bool) -> None:
    from xmd_cli.data.manifest import manifest_hash

    if resume and force:
        raise XmdError(f"--resume continues run '{recipe.name}' and --force deletes it: pass only one")
    if not resume:
        if not force:
            refuse_reuse(run_dir, recipe.name)
    elif not allow_recipe_change:
        manifest = workdir / "manifest.jsonl"
        refuse_recipe_change(run_dir, recipe.name, recipe.model_dump(mode="json"),
                             manifest_hash(workdir) if manifest.exists() else None)


def _train(recipe: Recipe, workdir: Path, run_dir: Path, *, kind: str, context, resume: bool, allow_stale: bool,
           out: Output) -> dict:
    from xmd_cli.data.datasets import build_dataset, collate
    from xmd_cli.inference import embedding_batch_size
    from xmd_cli.models.students import build_student

    manifest = read_manifest(workdir)
    seed_everything(recipe.seed)
    labels = training_labels(manifest)
    student_config = recipe.student
    train_set = build_dataset(manifest, "train", student_config, train=True, seed=recipe.seed,
                              noise_snr=recipe.training.noise_snr, labels=labels,
                              augment=recipe.training.augment)
    subsample(train_set, recipe.training.train_fraction, recipe.seed)
    val_set, val_trials = validation_plan(recipe, manifest, labels)
    side_info, teacher_dim, provenance, incomplete = (lambda indices: {}), None, {}, False
    class_means, qaw_summary = {}, None
    if kind == "distill":
        from xmd_cli.stages.side_info import DistillationInputs, describe_qaw_effective

        inputs = DistillationInputs(recipe, manifest, train_set, allow_stale=allow_stale, out=out)
        if recipe.method.missing == "drop":
            restrict(train_set, inputs.present)
        side_info, teacher_dim, provenance = inputs, inputs.teacher_dim, inputs.provenance()
        incomplete = any(s.id not in inputs.present for s in train_set.samples)
        class_means = teacher_class_means(recipe, inputs, train_set, labels, out)
        qaw_summary = inputs.qaw_effective(train_set)
        if qaw_summary and "effective_size" in qaw_summary:
            out.note(describe_qaw_effective(qaw_summary))
    student = build_student(student_config)
    method = DistillationLoss.from_recipe(recipe.method, student_dim=student_config.embedding_dim,
                                          teacher_dim=teacher_dim, classes=len(labels), **class_means)
    if context.is_main:
        save_resolved(recipe, run_dir / "recipe.resolved.yaml")
    # resolved_recipe: what --resume compares the recipe it is given with.
    meta = {"task": kind, "recipe": recipe.name, "seed": recipe.seed, "xmd_version": __version__,
            "student": student_config.model_dump(mode="json"), "modality": student_config.modality,
            "embedding_dim": student_config.embedding_dim, "classes": list(labels),
            "teacher_dim": teacher_dim, "method": recipe.method.model_dump(mode="json") if kind == "distill" else None,
            "manifest_sha256": manifest.fingerprint, **provenance,
            "resolved_recipe": recipe.model_dump(mode="json")}
    if qaw_summary is not None:
        meta["qaw_effective"] = qaw_summary
    job = TrainJob(model=StudentWithMethod(student, method), train_set=train_set, collate=collate,
                   config=recipe.training, seed=recipe.seed, run_dir=run_dir, meta=meta, val_set=val_set,
                   val_batch_size=embedding_batch_size(student_config), val_trials=val_trials, side_info=side_info,
                   may_skip_parameters=incomplete, epoch_metrics=qaw_epoch_metrics(qaw_summary),
                   margin_schedule=margin_schedule(recipe.method.classifier))
    out.note(f"[bold]xmd {kind}[/bold] {recipe.name}: {len(train_set)} training samples, {len(labels)} classes, "
             f"{student_config.arch} on {context.device}"
             + (f", {context.world} processes" if context.active else "")
             + (f"; open-set validation: EER on {len(val_trials[2])} trials" if val_trials is not None else ""))
    summary = Trainer(job, context, out).fit(resume=resume)
    return {**summary, "task": kind, "samples": len(train_set), "classes": len(labels)}
