"""`xmd prepare`: read a dataset with its adapter, check every file, write the manifest.

Outputs in the work directory: manifest.jsonl, labels.json, dataset.json, trials/
(see `xmd_cli.data.manifest`), prepare-report.json (every problem found: counts per
kind and the first examples) and prepare.recipe.yaml (the recipe as resolved).
A sample with a problem is left out and the trials that name it are dropped; with
`strict`, any problem stops the stage after the report is written and before the
manifest is.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from xmd_cli.data.adapters import Problem, get_adapter
from xmd_cli.data.checks import build_report, check_samples, sample_rate_warning
from xmd_cli.data.manifest import (
    DATASET,
    LABELS,
    MANIFEST,
    SPLITS,
    Sample,
    Trial,
    write_manifest,
)
from xmd_cli.errors import XmdError
from xmd_cli.io import ensure_writable, write_json
from xmd_cli.recipe import Recipe, save_resolved

REPORT = "prepare-report.json"
RESOLVED_RECIPE = "prepare.recipe.yaml"
FIRST_PROBLEMS = 5


def _first_problems(problems: list[Problem]) -> str:
    lines = [f"  {p.kind}: {p.detail}" for p in problems[:FIRST_PROBLEMS]]
    if len(problems) > FIRST_PROBLEMS:
        lines.append(f"  ... and {len(problems) - FIRST_PROBLEMS} more")
    return "\n".join(lines)


def _lost_classes(before: list[Sample], after: list[Sample]) -> list[Problem]:
    """Classes every sample of which was dropped: said once, so the report explains a missing class."""
    kept = {s.label for s in after}
    lost = sorted({s.label for s in before} - kept)
    return [Problem("empty-class", label, f"every sample of class {label!r} was dropped "
                    "(see the other problems); the class is left out") for label in lost]


def _keep_trials(trials: dict[str, list[Trial]], kept_ids: set[str],
                 problems: list[Problem]) -> tuple[dict[str, list[Trial]], dict[str, int]]:
    kept, dropped = {}, {}
    for name, trial_list in trials.items():
        usable = [t for t in trial_list if t.enroll in kept_ids and t.test in kept_ids]
        dropped[name] = len(trial_list) - len(usable)
        if usable:
            kept[name] = usable
        else:
            problems.append(Problem("empty-trials", f"trial list {name}", f"no trial of list {name!r} names two "
                                    "usable samples; the list is left out"))
    return kept, dropped


def run_prepare(recipe: Recipe, workdir: Path, *, strict: bool = False, progress=None) -> dict:
    """Run the adapter, check every sample, write the manifest and the report; return a summary.

    `progress(stage, done, total)` is called while scanning ("scan", total None while
    unknown) and checking files ("check").
    """
    workdir = ensure_writable(Path(workdir))  # before scanning: a read-only or full disk fails now
    adapter = recipe.data.adapter
    output = get_adapter(adapter)(recipe.data, workdir, progress=progress)
    rates: Counter = Counter()
    problems = list(output.problems) + check_samples(output.samples, output.root, progress=progress, rates=rates)
    warnings = [w for w in (sample_rate_warning(rates),) if w]

    disqualified = {p.sample_id for p in problems if p.sample_id is not None}
    kept = [s for s in output.samples if s.id not in disqualified]
    problems += _lost_classes(output.samples, kept)
    trials, dropped_trials = _keep_trials(output.trials, {s.id for s in kept}, problems)

    report = build_report(problems, samples_in=len(output.samples), samples_out=len(kept),
                          dropped_trials=dropped_trials)
    report.update(adapter=adapter, root=str(Path(output.root).resolve()), strict=strict, warnings=warnings,
                  sample_rates={str(rate): n for rate, n in sorted(rates.items())})
    report_path = workdir / REPORT
    write_json(report_path, report, ensure_ascii=False)

    if strict and problems:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(Counter(p.kind for p in problems).items()))
        raise XmdError(f"prepare found {len(problems)} problem(s) ({kinds}); no manifest was written. "
                       f"Every problem is listed in {report_path}:\n{_first_problems(problems)}",
                       hint="fix them, or run without --strict to leave the affected samples out")
    if not kept:
        raise XmdError(f"no usable samples in {output.root} (adapter {adapter}); see {report_path}"
                       + (f":\n{_first_problems(problems)}" if problems else ""),
                       hint="check data.root and data.adapter")

    write_manifest(workdir, kept, root=output.root, adapter=adapter, trials=trials,
                   extra={"report": REPORT})
    save_resolved(recipe, workdir / RESOLVED_RECIPE)
    labels = {s.label for s in kept}
    return {
        "adapter": adapter,
        "root": str(Path(output.root).resolve()),
        "samples": len(kept),
        "samples_dropped": len(output.samples) - len(kept),
        "classes": len(labels),
        "splits": {split: sum(s.split == split for s in kept) for split in SPLITS},
        "trials": {name: len(t) for name, t in trials.items()},
        "trials_dropped": dropped_trials,
        "problems": dict(sorted(Counter(p.kind for p in problems).items())),
        "warnings": warnings,
        "manifest": str(workdir / MANIFEST),
        "report": str(report_path),
        "paths": {"labels": str(workdir / LABELS), "dataset": str(workdir / DATASET),
                  "recipe": str(workdir / RESOLVED_RECIPE)},
    }
