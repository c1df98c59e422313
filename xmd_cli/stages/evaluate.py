"""`xmd evaluate`: measure a checkpoint (or a score file) and write report.json, report.md and plots.

Tasks (docs/evaluation.md defines every number):
  speaker-verification   a trial list scored by cosine (+ mean / AS-norm), EER, minDCF, DET,
                         identification; or `--scores FILE`, scores made elsewhere
  classification         the checkpoint's classifier on the test split
  cross-modal-matching   the student against projected teacher rows on the test split
Reports go to `--out DIR` or WORKDIR/reports/<run>-<task>/. `run_compare` sets
reports side by side.
"""

from __future__ import annotations

from pathlib import Path

from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.io import ensure_writable
from xmd_cli.metrics.report import (
    compare_reports,
    read_report,
    report_rows,
    write_report,
)
from xmd_cli.recipe import Recipe
from xmd_cli.stages.evaluation import EVALUATIONS
from xmd_cli.vocab import TASKS


def report_dir(workdir: Path, name: str, task: str, out_dir: Path | None = None) -> Path:
    return Path(out_dir) if out_dir is not None else Path(workdir) / "reports" / f"{name}-{task}"


def _check_saves(task: str, scores: Path | None, save: dict) -> None:
    """Refuse --save-scores/--save-embeddings that cannot be written, before any embedding is computed."""
    from xmd_cli.shards.embedfile import embedding_format

    flags = {"scores": "--save-scores", "embeddings": "--save-embeddings"}
    for what, path in save.items():
        if task != "speaker-verification" or scores is not None:
            raise XmdError(f"{flags[what]} saves a checkpoint's speaker-verification "
                           f"{'scores' if what == 'scores' else 'trial embeddings'}",
                           hint="use it with --task speaker-verification and a checkpoint, not --scores")
        if not Path(path).parent.is_dir():
            raise XmdError(f"{flags[what]} {path}: folder {Path(path).parent} does not exist", hint="create it first")
        if what == "embeddings":
            embedding_format(Path(path))


def _with_model(recipe: Recipe, workdir: Path, task: str, checkpoint: Path | None, trials: str | None,
                device: str, allow_stale: bool, out: Output, out_dir: Path | None, save: dict):
    from xmd_cli.data.manifest import read_manifest
    from xmd_cli.inference import load_checkpoint
    from xmd_cli.io import file_sha256
    from xmd_cli.metrics.evidence import SCORES_NPZ
    from xmd_cli.stages.evaluation.model import default_checkpoint
    from xmd_cli.stages.evaluation.reuse import evaluation_settings
    from xmd_cli.training.distributed import resolve_device

    manifest = read_manifest(workdir)  # first: a work directory without data fails before any model loads
    directory = Path(checkpoint) if checkpoint is not None else default_checkpoint(recipe, workdir)
    model = load_checkpoint(directory, resolve_device(device))
    name = recipe.name if checkpoint is None else model.meta.get("recipe", directory.parent.parent.name)
    target = report_dir(workdir, name, task, out_dir)
    ensure_writable(target)  # before embedding and scoring, not after
    out.note(f"[bold]xmd evaluate[/bold] {task}: {model.describe} on {manifest.workdir}, {model.device}")
    extra = {f"save_{what}": path for what, path in save.items()}  # only speaker verification saves
    parts = EVALUATIONS.get(task)(recipe, manifest=manifest, model=model, out_dir=target, allow_stale=allow_stale,
                                  out=out, trials=trials, **extra)
    parts["fingerprints"] = {"checkpoint": str(directory),
                             "checkpoint_weights_sha256": file_sha256(directory / "weights.safetensors"),
                             "checkpoint_manifest_sha256": model.meta.get("manifest_sha256"),
                             "manifest_sha256": manifest.fingerprint, **parts["fingerprints"],
                             # what `reusable_report` compares before standing in for a new evaluation
                             "evaluation_settings": evaluation_settings(recipe, task)}
    if (target / SCORES_NPZ).is_file():
        parts["fingerprints"]["scores_npz_sha256"] = file_sha256(target / SCORES_NPZ)
    if model.notes:
        parts["protocol"]["notes"] = list(model.notes)
        for note in model.notes:
            out.note(f"[yellow]note:[/yellow] {note}")
    return name, target, parts


def run_evaluate(recipe: Recipe, workdir: Path, *, task: str | None = None, checkpoint: Path | None = None,
                 scores: Path | None = None, trials: str | None = None, out_dir: Path | None = None,
                 device: str = "auto", allow_stale: bool = False, out: Output | None = None,
                 save_scores: Path | None = None, save_embeddings: Path | None = None) -> dict:
    """Evaluate, write the report, print its table; returns the report with its file paths.

    `save_scores` / `save_embeddings` (speaker verification of a checkpoint) also write the
    trial scores and the trial utterances' embeddings, for rescoring without re-embedding."""
    out = out or Output()
    task = task or recipe.evaluation.task
    if task not in TASKS:
        raise XmdError(f"--task {task!r} is not one of {', '.join(TASKS)}")
    if trials is not None and task != "speaker-verification":
        raise XmdError(f"--trials applies to speaker verification; --task {task} evaluates the test split",
                       hint="drop --trials, or use --task speaker-verification")
    save = {k: Path(v) for k, v in (("scores", save_scores), ("embeddings", save_embeddings)) if v is not None}
    _check_saves(task, scores, save)
    if scores is not None:
        if task != "speaker-verification":
            raise XmdError(f"--scores measures verification scores; it cannot do --task {task}",
                           hint="drop --task or use --task speaker-verification")
        if checkpoint is not None:
            raise XmdError("--scores and --checkpoint exclude each other: a score file needs no model")
        from xmd_cli.stages.evaluation.verification import evaluate_score_file

        name = Path(scores).stem
        target = report_dir(workdir, name, task, out_dir)
        ensure_writable(target)  # before scoring: a report that cannot be written is refused now
        parts = evaluate_score_file(recipe, workdir, Path(scores), trials=trials, out_dir=target)
    else:
        name, target, parts = _with_model(recipe, workdir, task, checkpoint, trials, device, allow_stale, out,
                                          out_dir, save)
    seeds = {"seed": recipe.seed}
    json_path, md_path = write_report(target, task=task, title=name, seeds=seeds, **parts)
    report = read_report(json_path)
    out.table(f"{name}: {task} ({report['backend']})", report_rows(report), ("metric", "value", "chance"))
    out.note(f"report: {json_path}")
    return {**report, "report_json": str(json_path), "report_md": str(md_path)}


def run_compare(paths: list[Path], out: Output | None = None) -> dict:
    """Set reports side by side: one row a metric, one column a report (task and back-end first)."""
    from xmd_cli.metrics.evidence import paired_comparison, paired_rows

    out = out or Output()
    paths = [Path(p) for p in paths]
    columns, rows = compare_reports(paths)
    # Each later report against the first, on the same resampled identities (docs/evaluation.md, Intervals).
    paired = paired_comparison(paths, [read_report(p) for p in paths])
    rows = [*rows, *paired_rows(paired, columns[1])]
    out.table("compare", rows, tuple(columns))
    if paired:
        out.note(f"paired: run - {columns[1]}, {100 * paired['confidence']:g} % interval of {paired['bootstrap']} "
                 "resamples; \"not resolved\": the interval contains 0")
    return {"columns": columns, "rows": [list(row) for row in rows], "paired": paired}
