"""Whether a report on disk already answers an evaluation, so that it need not be made again.

`xmd ablate` reuses finished runs; evaluating one again re-embeds its whole test set (a minute a run on
the benchmark) to write the same numbers. A report stands for a new evaluation only when everything the
numbers depend on is recorded in it and equal now: the xmd version, the task, the evaluation settings
and seed (`evaluation_settings`), the checkpoint's weights, the data (manifest), the trial list of a
verification, and the per-trial scores file beside it (its sha256, so a damaged or edited scores.npz is
evaluated afresh, never read). A zero-shot or matching number also reads the teacher store the checkpoint
was distilled with; stores are named by the fingerprint of what made them, and the report records it,
so it is not re-hashed here. Reports written before these were recorded are never reused. The device
is not part of it: a report made on a GPU stands for one on the CPU (their embeddings differ in the last
digits). `xmd evaluate` itself always evaluates.
"""

from __future__ import annotations

from pathlib import Path

from xmd_cli import __version__
from xmd_cli.errors import XmdError
from xmd_cli.io import file_sha256
from xmd_cli.metrics.evidence import SCORES_NPZ
from xmd_cli.metrics.report import read_report
from xmd_cli.recipe import Recipe
from xmd_cli.shards.fingerprint import Fingerprint


def evaluation_settings(recipe: Recipe, task: str) -> str:
    """The digest of what an evaluation reads from the recipe: the task, the evaluation section and the seed
    (the bootstrap's)."""
    return Fingerprint({"task": task, "evaluation": recipe.evaluation.model_dump(mode="json"),
                        "seed": recipe.seed}).digest


def reusable_report(report_dir: Path, recipe: Recipe, workdir: Path, task: str, checkpoint: Path) -> dict | None:
    """The report in `report_dir` with its file paths, when it answers this evaluation; None otherwise."""
    from xmd_cli.data.manifest import read_manifest
    from xmd_cli.stages.evaluation.verification import trials_file

    path, scores = report_dir / "report.json", report_dir / SCORES_NPZ
    if not (path.is_file() and scores.is_file() and (checkpoint / "weights.safetensors").is_file()):
        return None
    try:
        report = read_report(path)
    except XmdError:
        return None  # damaged: evaluated afresh, which rewrites it
    recorded = report.get("fingerprints") or {}
    if report.get("xmd_version") != __version__ or report.get("task") != task:
        return None
    manifest = read_manifest(workdir)
    expected = {"evaluation_settings": evaluation_settings(recipe, task),
                "checkpoint_weights_sha256": file_sha256(checkpoint / "weights.safetensors"),
                "manifest_sha256": manifest.fingerprint, "scores_npz_sha256": file_sha256(scores)}
    if task == "speaker-verification":
        trials = trials_file(recipe.evaluation.trials, "evaluation.trials", manifest.workdir, manifest.dataset)
        expected["trials_sha256"] = file_sha256(trials)
    if any(recorded.get(key) != value for key, value in expected.items()):
        return None
    return {**report, "report_json": str(path), "report_md": str(report_dir / "report.md")}
