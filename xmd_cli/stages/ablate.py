"""`xmd ablate`: the ablation grid of docs/method.md (and any sweep) over seeds, as one table.

Every row is the recipe with a few method fields changed; every (row, seed) is
an ordinary run in WORKDIR/runs/ablate-<tag>-<row>-s<seed> (tag: a hash of the base recipe), evaluated like any other,
so a finished run is reused and an interrupted one resumes. The teacher and
quality stores are shared by all rows. Results: WORKDIR/ablations/<recipe>-<grid>-<tag>/
results.csv (one line a run), summary.md and summary.csv (mean ± std a row),
and a plot of the headline metric.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.plotting import pyplot, save_figure
from xmd_cli.recipe import Recipe, deep_merge, load_recipe
from xmd_cli.shards.fingerprint import Fingerprint
from xmd_cli.vocab import CONTROL_TEACHERS

SOFT = {"projection": "mlp"}
OFF = {"qaw": {"enabled": False}}
# docs/method.md's grid: the hard baselines use a linear head and m = 0; soft rows keep the recipe's margin.
PAPER_GRID: dict[str, dict] = {
    "none": {"method": {"feature": {"loss": "none"}, "classifier": {"kind": "none"}, **OFF}},
    "hard-l2": {"method": {"projection": "linear", "feature": {"loss": "l2", "margin": 0.0},
                           "classifier": {"kind": "none"}, **OFF}},
    "hard-cosine": {"method": {"projection": "linear", "feature": {"loss": "cosine", "margin": 0.0},
                               "classifier": {"kind": "none"}, **OFF}},
    "logit-kd": {"method": {"projection": "linear", "feature": {"loss": "none"}, "classifier": {"kind": "logit-kd"},
                            **OFF}},
    "soft-feature": {"method": {**SOFT, "feature": {"loss": "cosine"}, "classifier": {"kind": "none"}, **OFF}},
    "soft-classifier": {"method": {**SOFT, "feature": {"loss": "none"}, "classifier": {"kind": "shared"}, **OFF}},
    "soft-both": {"method": {**SOFT, "feature": {"loss": "cosine"}, "classifier": {"kind": "shared"}, **OFF}},
    "full": {"method": {**SOFT, "feature": {"loss": "cosine"}, "classifier": {"kind": "shared"},
                        "qaw": {"enabled": True}}},
    # Extensions (docs/method.md): soft-both with W generated from the teacher's class means, or plus the
    # relational term (weight 1; the recipe's relation margin).
    "teacher-generated": {"method": {**SOFT, "feature": {"loss": "cosine"}, "classifier": {"kind": "teacher-generated"},
                                     **OFF}},
    "soft-both+relation": {"method": {**SOFT, "feature": {"loss": "cosine"}, "classifier": {"kind": "shared"},
                                      "relation": {"weight": 1.0}, **OFF}},
}
# Control teachers beside the real one: the full method fed a label-only or shuffled teacher.
CONTROL_KINDS = CONTROL_TEACHERS
CONTROLS = {f"full/{kind}": {**PAPER_GRID["full"], "teacher": {"kind": kind}} for kind in CONTROL_KINDS}
GRIDS = {"paper": {**PAPER_GRID, **CONTROLS}, "paper-no-controls": PAPER_GRID,
         "quick": {k: PAPER_GRID[k] for k in ("none", "hard-cosine", "full")}}
HEADLINE = {"speaker-verification": "eer", "classification": "top1", "cross-modal-matching": "match_1:2_s2t"}
LOWER_IS_BETTER = {"eer", "min_dcf@0.01", "min_dcf@0.05"}


def parse_sweep(text: str) -> tuple[str, list]:
    """`method.feature.margin=0,0.1,0.2` -> ("method.feature.margin", [0, 0.1, 0.2])."""
    if "=" not in text:
        raise XmdError(f"--sweep {text!r}: expected KEY=V1,V2,..., e.g. --sweep method.feature.margin=0,0.1,0.3")
    key, values = text.split("=", 1)
    parsed = [yaml.safe_load(v) for v in values.split(",") if v.strip()]
    if not parsed:
        raise XmdError(f"--sweep {text!r}: no values")
    return key.strip(), parsed


def _nested(key: str, value) -> dict:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def build_rows(grid: str, sweeps: list[str], base_row: str = "full") -> dict[str, dict]:
    if grid not in GRIDS:
        raise XmdError(f"--grid {grid!r}: expected one of {', '.join(GRIDS)}")
    rows = dict(GRIDS[grid])
    for text in sweeps:
        key, values = parse_sweep(text)
        for value in values:
            rows[f"{base_row}/{key.split('.')[-1]}={value}"] = deep_merge(PAPER_GRID[base_row], _nested(key, value))
    return rows


def run_ablate(recipe: Recipe, recipe_path: Path | None, overrides: list[str], workdir: Path, *, grid: str,
               seeds: int, sweeps: list[str], device: str = "auto", out: Output | None = None) -> dict:
    from xmd_cli.stages.evaluate import run_evaluate
    from xmd_cli.stages.extract import run_extract
    from xmd_cli.stages.fit import run_fit, run_state

    out = out or Output()
    workdir = Path(workdir)
    rows = build_rows(grid, sweeps)
    # The base recipe's hash keeps ablations with other settings (--set) from reusing these runs.
    tag = Fingerprint(recipe.model_dump(mode="json")).short[:6]
    task = recipe.evaluation.task
    results = []
    for row, changes in rows.items():
        for seed in range(seeds):
            name = f"ablate-{tag}-{row.replace('/', '-')}-s{seed}"
            if changes.get("teacher", {}).get("kind") in CONTROL_KINDS and recipe.teacher.kind not in CONTROL_KINDS:
                # A control teacher is derived from the recipe's real teacher store.
                changes = deep_merge(changes, {"teacher": {"source_kind": recipe.teacher.kind,
                                                       "source_weights": recipe.teacher.weights}})
            run = load_recipe(recipe_path, overrides, deep_merge(changes, {"name": name, "seed": seed}))
            kind = "train" if row == "none" else "distill"
            if kind == "distill" and run.teacher.kind in CONTROL_KINDS:
                run_extract(run, workdir, device=device, out=out)  # a derived store: seconds
            run_dir = workdir / "runs" / name
            state = run_state(run, workdir)
            if state != "finished":
                run_fit(run, workdir, kind=kind, device=device, resume=state == "resumable",
                        force=state == "new", out=out)
            report = run_evaluate(run, workdir, task=task, checkpoint=run_dir / "checkpoints" / "best",
                                  device=device, out=Output(verbosity=0))
            results.append({"row": row, "seed": seed, "run": name, **_flat_metrics(report.get("metrics", {}))})
            out.note(f"{row} seed {seed}: {HEADLINE[task]} {results[-1].get(HEADLINE[task])}")
    return _write(results, workdir / "ablations" / f"{recipe.name}-{grid}-{tag}", task, seeds, out)


def _flat_metrics(metrics: dict) -> dict:
    flat = {}
    for name, value in metrics.items():
        value = value.get("value") if isinstance(value, dict) else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def _write(results: list[dict], directory: Path, task: str, seeds: int, out: Output) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    metrics = sorted({k for r in results for k in r} - {"row", "seed", "run"})
    with (directory / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["row", "seed", "run", *metrics])
        writer.writeheader()
        writer.writerows(results)
    order = list(dict.fromkeys(r["row"] for r in results))
    summary = {}
    for row in order:
        values = {m: [r[m] for r in results if r["row"] == row and m in r] for m in metrics}
        summary[row] = {m: (float(np.mean(v)), float(np.std(v))) for m, v in values.items() if v}
    shown = [m for m in metrics if m in (HEADLINE[task], "min_dcf@0.01", "top5")] or metrics[:3]
    lines = [f"| row | {' | '.join(shown)} |", "|---|" + "---|" * len(shown)]
    for row in order:
        cells = [f"{summary[row][m][0]:.4f} ± {summary[row][m][1]:.4f}" if m in summary[row] else "-" for m in shown]
        lines.append(f"| {row} | {' | '.join(cells)} |")
    note = (f"mean ± std over {seeds} seed(s) (0..{seeds - 1}); task {task}; "
            "std is the population std of the seeds' values.")
    (directory / "summary.md").write_text("\n".join(lines) + f"\n\n{note}\n")
    with (directory / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", *[f"{m}_{s}" for m in metrics for s in ("mean", "std")]])
        for row in order:
            writer.writerow([row, *[x for m in metrics for x in summary[row].get(m, (None, None))]])
    _plot(summary, order, HEADLINE[task], directory / "summary.png", note)
    out.table(f"ablation ({note})", [(row, *[f"{summary[row][m][0]:.4f} ± {summary[row][m][1]:.4f}"
                                             if m in summary[row] else "-" for m in shown]) for row in order],
              ("row", *shown))
    return {"directory": str(directory), "summary": summary, "runs": len(results), "task": task}


def _plot(summary: dict, order: list[str], metric: str, path: Path, note: str) -> None:
    rows = [r for r in order if metric in summary[r]]
    if not rows:
        return
    means = [summary[r][metric][0] for r in rows]
    stds = [summary[r][metric][1] for r in rows]
    figure, axis = pyplot().subplots(figsize=(max(5, 0.7 * len(rows) + 2), 3.5), dpi=120)
    axis.bar(range(len(rows)), means, yerr=stds, capsize=3, color="#3b6ea8")
    axis.set_xticks(range(len(rows)), rows, rotation=40, ha="right", fontsize=8)
    axis.set_ylabel(metric + (" (lower is better)" if metric in LOWER_IS_BETTER else ""))
    axis.set_title(note, fontsize=7)
    save_figure(figure, path)
