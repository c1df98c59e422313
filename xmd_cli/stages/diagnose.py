"""`xmd diagnose`: before spending GPU days, measure whether this teacher can help this student.

Reads the teacher store the recipe names (found like distill finds it), the
manifest's labels and analysis-only attributes, the teacher-side quality store
when there is one, and optionally a student-alone checkpoint; writes report.json,
report.md and plots into WORKDIR/reports/NAME/diagnose/ (or --out). Every
number is computed on every sample that has a teacher row (all splits: the
teacher never saw a label), with the recipe's seed for folds and permutations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xmd_cli.console import Output
from xmd_cli.data.manifest import read_manifest
from xmd_cli.diagnose import verdicts as v
from xmd_cli.diagnose.beyond_label import beyond_label
from xmd_cli.diagnose.cka import cka_report
from xmd_cli.diagnose.class_attributes import class_attributes
from xmd_cli.diagnose.quality_reliability import quality_reliability
from xmd_cli.diagnose.report import (
    plot_cka,
    plot_cosines,
    plot_quality,
    summary_rows,
    write_diagnose_report,
)
from xmd_cli.diagnose.separability import pair_cosines, separability
from xmd_cli.errors import XmdError
from xmd_cli.io import ensure_writable
from xmd_cli.quality.store import quality_store
from xmd_cli.recipe import Recipe, save_resolved
from xmd_cli.shards import ShardReader
from xmd_cli.shards.locate import find_store
from xmd_cli.teachers import teacher_components

PERMUTATIONS = 19  # attribute and direction nulls: the smallest count where p <= 0.05 is reachable
CKA_PERMUTATIONS = 199  # CKA is cheap: a finer null


def run_diagnose(recipe: Recipe, workdir: Path, *, checkpoint: Path | None = None, out_dir: Path | None = None,
                 allow_stale: bool = False, device: str = "auto", out: Output | None = None) -> dict:
    out = out or Output()
    workdir = Path(workdir)
    manifest = read_manifest(workdir)
    expected = teacher_components(recipe.teacher, manifest)
    store = find_store(workdir, "teacher", expected, allow_stale=allow_stale, stage="extract-teacher", out=out)
    reader = ShardReader(store, expect_fingerprint=expected, allow_stale=allow_stale)
    absent = set(reader.missing([s.id for s in manifest.samples]))
    if absent:
        from xmd_cli.stages.side_info import missing_rows_policy
        # diagnose trains nothing: either non-stop choice means leaving those samples out
        missing_rows_policy("stop" if recipe.method.missing == "stop" else "drop", sorted(absent),
                            len(manifest.samples), "samples", "teacher row", store, out)
    samples = [s for s in manifest.samples if s.id not in absent]
    if len(samples) < 4:
        raise XmdError(f"{store}: only {len(samples)} sample(s) of the manifest have a teacher row; "
                       "diagnose needs at least four", hint="run `xmd extract-teacher` on this work directory")
    ids, labels = [s.id for s in samples], [s.label for s in samples]
    rows = reader.get(ids)
    seed = recipe.seed
    out_dir = Path(out_dir) if out_dir else workdir / "reports" / recipe.name / "diagnose"
    ensure_writable(out_dir)  # before the permutation tests, not after
    save_resolved(recipe, out_dir / "recipe.resolved.yaml")
    plots = []

    with out.progress() as progress:
        steps = 5
        progress("diagnose", 0, steps, "separability")
        sep = separability(rows, labels, seed=seed)
        if "skipped" not in sep:
            from xmd_cli.diagnose.common import encode

            within, between = pair_cosines(rows, encode(labels)[0], 2000, seed)
            plots.append(plot_cosines(out_dir / "separability.png", within, between))
        progress("diagnose", 1, steps, "beyond the label")
        beyond = beyond_label(rows, labels, [s.info for s in samples], seed=seed, permutations=PERMUTATIONS)
        progress("diagnose", 2, steps, "class-level attributes")
        class_level = class_attributes(rows, labels, [s.info for s in samples], seed=seed, permutations=PERMUTATIONS)
        progress("diagnose", 3, steps, "shared structure")
        cka = None
        if checkpoint is not None:
            cka = _cka(checkpoint, manifest, ids, rows, labels, device, seed, out)
            plots.append(plot_cka(out_dir / "cka.png", cka))
        progress("diagnose", 4, steps, "quality vs reliability")
        quality, quality_store = _quality(recipe, manifest, ids, rows, labels, allow_stale, out)
        if quality is not None and "plot" in quality and "skipped" not in quality:
            plots.append(plot_quality(out_dir / "quality-reliability.png", *quality["plot"]))
        qaw = _qaw_effective(recipe, manifest, allow_stale, out)
        progress("diagnose", 5, steps, "done")

    verdicts = {"separability": v.separability_verdict(sep), "beyond_label": v.beyond_label_verdict(beyond),
                "class_attributes": v.class_attributes_verdict(class_level),
                "cka": v.cka_verdict(cka), "quality_reliability": v.quality_verdict(quality),
                "qaw_effective": v.qaw_effective_verdict(qaw)}
    report = {"task": "diagnose", "headline": v.headline(verdicts), "verdicts": verdicts,
              "teacher_store": str(store), "teacher_fingerprint": reader.meta["fingerprint"],
              "teacher_kind": reader.meta["components"].get("teacher", recipe.teacher.kind),
              "manifest_sha256": manifest.fingerprint, "samples": len(ids), "classes": len(set(labels)),
              "seed": seed, "checkpoint": str(checkpoint) if checkpoint else None, "quality_store": quality_store,
              "how": (f"unit-normalised teacher rows of every sample with a row (all splits); "
                      f"{sep.get('folds', '-')}-fold stratified CV (seed {seed}); "
                      f"attribute and direction nulls: {PERMUTATIONS} permutations (class-level attributes: "
                      f"stratified CV over classes, values shuffled over classes); "
                      f"CKA null: {CKA_PERMUTATIONS} permutations"),
              "separability": sep, "beyond_label": beyond, "class_attributes": class_level, "cka": cka,
              "quality_reliability": quality, "qaw_effective": qaw,
              "plots": [str(p) for p in plots]}
    clean = write_diagnose_report(out_dir, report)
    out.table(f"xmd diagnose: {store.name} ({clean['teacher_kind']})", summary_rows(clean),
              ("diagnostic", "measured", "verdict"))
    for verdict in verdicts.values():
        out.note(f"- {verdict['text']}")
    out.note(f"[bold]{clean['headline']}[/bold]\nreport: {out_dir / 'report.md'}")
    return {**clean, "report": str(out_dir / "report.json")}


def _cka(checkpoint: Path, manifest, ids, rows, labels, device, seed, out) -> dict:
    from xmd_cli.inference import read_meta, student_embeddings
    from xmd_cli.training.distributed import resolve_device

    task = str(read_meta(checkpoint).get("task", "unknown"))
    if task != "train":
        out.note(f"[yellow]{checkpoint} is a {task!r} checkpoint, not a student alone (`xmd train`)[/yellow]: "
                 "CKA then measures what training with the teacher induced, not what the modalities share")
    student = student_embeddings(checkpoint, manifest, ids, resolve_device(device))
    result = cka_report(rows, student, labels, permutations=CKA_PERMUTATIONS, seed=seed)
    return {**result, "checkpoint_task": task}


def _quality(recipe, manifest, ids, rows, labels, allow_stale, out) -> tuple[dict | None, str | None]:
    """The teacher-side quality store's scores against centroid distance; skipped (with why) when absent."""
    try:
        reader = quality_store(recipe.quality.teacher, manifest, allow_stale=allow_stale, out=out)
        path = reader.directory
    except XmdError as e:
        out.note(f"quality vs reliability skipped: {e.message}")
        return {"skipped": f"{e.message} ({e.hint})" if e.hint else e.message}, None
    missing = set(reader.missing(ids))
    keep = np.array([i not in missing for i in ids])
    if not keep.any():
        return {"skipped": f"{path} has no row for the teacher's samples"}, str(path)
    quality = np.full(len(ids), np.nan)
    quality[keep] = reader.get([i for i, k in zip(ids, keep) if k])[:, 0]  # column 0: the combined score
    return quality_reliability(quality, rows, labels), str(path)


def _qaw_effective(recipe, manifest, allow_stale, out) -> dict:
    """Effective sample size of the recipe's QAW weights over the train split (docs/method.md); skipped with why."""
    from xmd_cli.stages.side_info import qaw_effective, quality_columns

    qaw = recipe.method.qaw
    if not qaw.enabled:
        return {"skipped": "method.qaw.enabled is false: every weight is 1"}
    ids = [s.id for s in manifest.samples if s.split == "train"]
    readers = {}
    for side, exponent in (("teacher", qaw.alpha), ("student", qaw.beta)):
        if exponent == 0:
            continue
        try:
            readers[side] = quality_store(getattr(recipe.quality, side), manifest, allow_stale=allow_stale, out=out)
        except XmdError as e:
            return {"skipped": f"quality.{side} (QAW exponent {exponent:g}): {e.message}"}
        missing = set(readers[side].missing(ids))
        ids = [i for i in ids if i not in missing]
    return qaw_effective(qaw, quality_columns(readers, ids), len(ids))
