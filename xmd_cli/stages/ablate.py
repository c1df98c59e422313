"""`xmd ablate`: the ablation grid of docs/method.md (and any sweep) over seeds, as one table.

Every row is the recipe with a few method fields changed; every (row, seed) is
an ordinary run in WORKDIR/runs/ablate-<tag>-<row>-s<seed> (tag: a hash of the base recipe), evaluated like any other,
so a finished run is reused (and its report, when it still answers the evaluation:
stages/evaluation/reuse.py) and an interrupted one resumes. The teacher and
quality stores are shared by all rows.

`--set` applies to every row except on the keys a row sets itself: there the row
wins (a row labelled hard-cosine always trains with margin 0), and a note on the
console and in summary.md says which rows kept their value.

Results: WORKDIR/ablations/<recipe>-<grid>-<tag>/ results.csv (one line a run,
with the run's resolved method settings), summary.md and summary.csv (a row:
mean ± std over seeds, the paired difference to the `none` row with a 95 %
interval over identities and seeds, and a verdict; metrics/ablation.py), and a
plot of the headline metric.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import yaml

from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.io import ensure_writable
from xmd_cli.metrics.ablation import seed_paired
from xmd_cli.metrics.evidence import load_evidence
from xmd_cli.plotting import pyplot, save_figure
from xmd_cli.recipe import Recipe, deep_merge, load_recipe, parse_override
from xmd_cli.safe_yaml import decode, parse_yaml
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
GROUP_HEADLINE = "top1@tail"  # classification on a world with a long tail: shown beside the headline
LOWER_IS_BETTER = {"eer", "min_dcf@0.01", "min_dcf@0.05"}
REFERENCE = "none"  # the row every other row is compared with: the student alone


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


ROW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=,-]*(/[A-Za-z0-9_.+=,-]+)*$")


def grid_file_rows(path: Path) -> dict[str, dict]:
    """A grid of one's own: a YAML mapping of row name -> the recipe fields the row changes.

    It needs a `none` row (the reference every row is compared with); each row's changes are
    checked against the recipe schema before any run starts (`run_ablate`).
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise XmdError(f"{path}: cannot read the grid file ({e.strerror})",
                       hint="--grid takes paper, paper-no-controls, quick or a .yaml file of rows") from None
    raw, _ = parse_yaml(decode(data, str(path)), str(path))
    if raw is not None and not isinstance(raw, dict):
        raise XmdError(f"{path}: a grid must map row names to recipe changes, got {type(raw).__name__}")
    if not raw:
        raise XmdError(f"{path}: an empty grid", hint="map each row name to the recipe fields it changes, e.g. "
                       "none: {method: {feature: {loss: none}, classifier: {kind: none}}}")
    for name, changes in raw.items():
        if not isinstance(name, str) or not ROW_NAME.match(name):
            raise XmdError(f"{path}: row name {name!r}: use letters, digits and _ . + = , - (/ between parts)")
        if not isinstance(changes, dict):
            raise XmdError(f"{path}: row {name!r}: expected a mapping of recipe fields, got "
                           f"{type(changes).__name__}", hint="e.g. full: {method: {qaw: {enabled: true}}}")
    if REFERENCE not in raw:
        raise XmdError(f"{path}: the grid needs a {REFERENCE!r} row, the reference every row is compared with",
                       hint="none: {method: {feature: {loss: none}, classifier: {kind: none}, "
                            "qaw: {enabled: false}}} is the student alone")
    return raw


def build_rows(grid: str, sweeps: list[str], base_row: str = "full", only: list[str] | None = None
               ) -> dict[str, dict]:
    """The grid's rows (a built-in name or a YAML file), its sweeps' rows, cut to `only` when given."""
    if grid in GRIDS:
        rows = dict(GRIDS[grid])
    elif Path(grid).suffix in (".yaml", ".yml"):
        rows = grid_file_rows(Path(grid))
    else:
        raise XmdError(f"--grid {grid!r}: expected one of {', '.join(GRIDS)}, or a .yaml file of rows")
    base = rows.get(base_row, PAPER_GRID[base_row])
    for text in sweeps:
        key, values = parse_sweep(text)
        for value in values:
            rows[f"{base_row}/{key.split('.')[-1]}={value}"] = deep_merge(base, _nested(key, value))
    if only:
        unknown = [name for name in only if name not in rows]
        if unknown:
            raise XmdError(f"--rows: no row {', '.join(map(repr, unknown))} in this grid",
                           hint=f"its rows: {', '.join(rows)}")
        rows = {name: rows[name] for name in rows if name in only}
    return rows


def row_keys(changes: dict, prefix: tuple = ()) -> list[tuple[str, ...]]:
    """The key paths a row sets: its leaves (`method.feature.margin`), in order."""
    keys = []
    for key, value in changes.items():
        path = (*prefix, key)
        keys.extend(row_keys(value, path) if isinstance(value, dict) else [path])
    return keys


def overrides_for_rows(rows: dict[str, dict], overrides: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """({row: the --set overrides it takes}, notes): the row wins over --set on every key the row sets.

    A row is the recipe with a few fields changed, and its label says which: `hard-cosine`
    means margin 0 whatever --set says. So an override of a key a row sets is left out of
    that row (and kept for the others), and a note says so. An override of a whole section
    that holds a row's key (`--set method.qaw={...}`) cannot be split and is refused.
    """
    per_row = {row: [] for row in rows}
    skipped: dict[str, list[str]] = {}
    for text in overrides:
        path, _ = parse_override(text)
        for row, changes in rows.items():
            keys = row_keys(changes)
            inner = [k for k in keys if len(k) > len(path) and k[:len(path)] == path]
            if inner:
                raise XmdError(f"--set {text}: sets the whole section {'.'.join(path)}, which row {row!r} "
                               f"changes ({'.'.join(inner[0])}); set its keys one by one, e.g. "
                               f"--set {'.'.join(path)}.KEY=VALUE")
            if any(path[:len(k)] == k for k in keys):
                skipped.setdefault(text, []).append(row)
            else:
                per_row[row].append(text)
    notes = []
    for text, names in skipped.items():
        used = [row for row in rows if text in per_row[row]]
        where = f"applies to {', '.join(used)}" if used else "applies to no row"
        notes.append(f"--set {text}: rows {', '.join(names)} set this key themselves and keep their value; "
                     f"it {where}")
    return per_row, notes


def with_derived_teacher(recipe: Recipe, changes: dict) -> dict:
    """A row's changes, with the recipe's real teacher named as the source when the row sets a control."""
    if changes.get("teacher", {}).get("kind") in CONTROL_KINDS and recipe.teacher.kind not in CONTROL_KINDS:
        # A control teacher is derived from the recipe's real teacher store.
        return deep_merge(changes, {"teacher": {"source_kind": recipe.teacher.kind,
                                                "source_weights": recipe.teacher.weights}})
    return changes


def _flatten(section: dict, prefix: str) -> dict:
    flat = {}
    for key, value in section.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = json.dumps(value) if isinstance(value, list) else value
    return flat


def resolved_settings(run: Recipe, keys: list[tuple[str, ...]]) -> dict:
    """What a run trained with: its whole method section, teacher.kind and every key a row sets."""
    dumped = run.model_dump(mode="json")
    settings = {**_flatten(dumped["method"], "method"), "teacher.kind": dumped["teacher"]["kind"]}
    for key in keys:
        value = dumped
        for part in key:
            value = value[part]
        settings[".".join(key)] = json.dumps(value) if isinstance(value, list) else value
    return settings


def run_ablate(recipe: Recipe, recipe_path: Path | None, overrides: list[str], workdir: Path, *, grid: str,
               seeds: int, sweeps: list[str], rows_only: list[str] | None = None, device: str = "auto",
               out: Output | None = None) -> dict:
    out = out or Output()
    workdir = Path(workdir)
    rows = {row: with_derived_teacher(recipe, changes)
            for row, changes in build_rows(grid, sweeps, only=rows_only).items()}
    ensure_writable(workdir / "ablations")  # the summary is written after hours of runs: refuse a bad disk now
    per_row, notes = overrides_for_rows(rows, overrides)
    for note in notes:
        out.note(f"note: {note}")
    # The base recipe's hash keeps ablations with other settings (--set) from reusing these runs.
    tag = Fingerprint(recipe.model_dump(mode="json")).short[:6]
    task = recipe.evaluation.task
    all_keys = list(dict.fromkeys(k for changes in rows.values() for k in row_keys(changes)))
    # Every run's recipe is built (and so checked) before the first one trains.
    runs = {(row, seed): load_recipe(recipe_path, per_row[row], deep_merge(
                changes, {"name": f"ablate-{tag}-{row.replace('/', '-')}-s{seed}", "seed": seed}))
            for row, changes in rows.items() for seed in range(seeds)}
    results, reports = [], {}
    for row in rows:
        for seed in range(seeds):
            run = runs[row, seed]
            name = run.name
            report = _run_one(run, row, workdir, task, device, out)
            reports.setdefault(row, []).append(Path(report["report_json"]))
            results.append({"row": row, "seed": seed, "run": name, **resolved_settings(run, all_keys),
                            **_flat_metrics(report.get("metrics", {}))})
            out.note(f"{row} seed {seed}: {HEADLINE[task]} {results[-1].get(HEADLINE[task])}")
    evidence, missing = _evidence(reports, recipe)
    paired = _against(evidence, REFERENCE, reports, recipe) if evidence else {}
    # The real teacher's row minus each control's, paired as against `none`: does it beat a teacher that
    # carries only the labels (class-mean), only their distribution (shuffled) or nothing (random)?
    controls = {control: _against({k: evidence[k] for k in (control, row)}, control, reports, recipe)[row]
                for row, control in control_pairs(list(rows))} if evidence else {}
    return _write(results, paired, missing, workdir / "ablations" / ablation_name(recipe.name, grid, tag, seeds,
                                                                                   rows_only), task, seeds,
                  notes, out, controls=controls)


def ablation_name(recipe_name: str, grid: str, tag: str, seeds: int, rows_only: list[str] | None) -> str:
    """`demo-persons-paper-99b9ba`; a row subset or other seed count gets its own folder, never overwriting.

    >>> ablation_name("r", "quick", "abc123", 3, None), ablation_name("r", "g/mine.yaml", "abc123", 1, ["none"])
    ('r-quick-abc123', 'r-mine-rows-2b3271-s1-abc123')
    """
    name = f"{recipe_name}-{grid if grid in GRIDS else Path(grid).stem}"
    if rows_only:
        name += f"-rows-{Fingerprint({'rows': sorted(rows_only)}).short[:6]}"
    if seeds != 3:
        name += f"-s{seeds}"
    return f"{name}-{tag}"


def _run_one(run: Recipe, row: str, workdir: Path, task: str, device: str, out: Output) -> dict:
    """Train (or reuse, or resume) one (row, seed) run and evaluate its best checkpoint."""
    from xmd_cli.stages.evaluate import report_dir, run_evaluate
    from xmd_cli.stages.evaluation.reuse import reusable_report
    from xmd_cli.stages.extract import run_extract
    from xmd_cli.stages.fit import run_fit, run_state

    kind = "train" if row == REFERENCE else "distill"
    if kind == "distill" and run.teacher.kind in CONTROL_KINDS:
        run_extract(run, workdir, device=device, out=out)  # a derived store: seconds
    checkpoint = workdir / "runs" / run.name / "checkpoints" / "best"
    state = run_state(run, workdir)
    if state == "finished":
        # A finished run's report, when it still answers the evaluation, saves re-embedding the test set.
        report = reusable_report(report_dir(workdir, run.name, task), run, workdir, task, checkpoint)
        if report is not None:
            out.note(f"reusing {report['report_json']}")
            return report
    else:
        run_fit(run, workdir, kind=kind, device=device, resume=state == "resumable", force=state == "new", out=out)
    return run_evaluate(run, workdir, task=task, checkpoint=checkpoint, device=device, out=Output(verbosity=0))


def _evidence(reports: dict[str, list[Path]], recipe: Recipe) -> tuple[dict, str]:
    """({row: each seed's scores.npz content}, why it is empty when it is): read once for every comparison."""
    if recipe.evaluation.bootstrap == 0:
        return {}, "intervals off (evaluation.bootstrap = 0)"
    evidence = {row: [load_evidence(path) for path in paths] for row, paths in reports.items()}
    if REFERENCE not in evidence or any(e is None for runs in evidence.values() for e in runs):
        return {}, "no per-trial scores"
    return evidence, ""


def _against(evidence: dict, reference: str, reports: dict[str, list[Path]], recipe: Recipe) -> dict:
    """Every row of `evidence` against `reference` (metrics.ablation.seed_paired)."""
    sources = {row: [str(p) for p in reports[row]] for row in evidence}
    return seed_paired(evidence, reference, sources=sources, p_targets=recipe.evaluation.p_targets,
                       resamples=recipe.evaluation.bootstrap, seed=0)


def control_pairs(rows: list[str]) -> list[tuple[str, str]]:
    """(row, its control row) for every row run beside a control teacher: `full` and `full/shuffled`.

    >>> control_pairs(["none", "full", "full/class-mean", "full/random", "soft-both"])
    [('full', 'full/class-mean'), ('full', 'full/random')]
    """
    return [(row.rsplit("/", 1)[0], row) for row in rows
            if "/" in row and row.rsplit("/", 1)[1] in CONTROL_KINDS and row.rsplit("/", 1)[0] in rows]


def _flat_metrics(metrics: dict) -> dict:
    flat = {}
    for name, value in metrics.items():
        value = value.get("value") if isinstance(value, dict) else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def _cell(summary: dict, metric: str) -> str:
    return f"{summary[metric][0]:.4f} ± {summary[metric][1]:.4f}" if metric in summary else "-"


def _difference_cells(paired: dict, row: str, metric: str, missing: str) -> tuple[str, str]:
    """(`-0.0210 [-0.0400, -0.0050]`, verdict) of the row against none; the reference row gets 'reference'."""
    if row == REFERENCE:
        return "0", "reference"
    entry = paired.get(row, {}).get(metric)
    if entry is None:
        return "-", missing or f"no paired {metric}"
    interval = "" if entry["ci_low"] is None else f" [{entry['ci_low']:+.4f}, {entry['ci_high']:+.4f}]"
    return f"{entry['difference']:+.4f}{interval}", entry["verdict"]


def _write(results: list[dict], paired: dict, missing: str, directory: Path, task: str, seeds: int,
           notes: list[str], out: Output, controls: dict | None = None) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    # Settings are recipe key paths (method.feature.margin); metric names (min_dcf@0.01) start with no section.
    settings = list(dict.fromkeys(k for r in results for k in r if k.split(".")[0] in Recipe.model_fields))
    metrics = sorted({k for r in results for k in r} - {"row", "seed", "run", *settings})
    with (directory / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["row", "seed", "run", *settings, *metrics])
        writer.writeheader()
        writer.writerows(results)
    order = list(dict.fromkeys(r["row"] for r in results))
    summary = {}
    for row in order:
        values = {m: [r[m] for r in results if r["row"] == row and m in r] for m in metrics}
        summary[row] = {m: (float(np.mean(v)), float(np.std(v))) for m, v in values.items() if v}
    headline = HEADLINE[task]
    shown = [m for m in metrics if m in (headline, "min_dcf@0.01", "top5", GROUP_HEADLINE)] or metrics[:3]
    delta = f"{headline} - {REFERENCE} (95 % CI)"
    # The tail group (samples marked info.group tail) gets its own paired difference when the runs record groups.
    extra = [GROUP_HEADLINE] if any(GROUP_HEADLINE in entries for entries in paired.values()) else []
    table = [(row, *[_cell(summary[row], m) for m in shown], *_difference_cells(paired, row, headline, missing),
              *(cell for m in extra for cell in _difference_cells(paired, row, m, missing)))
             for row in order]
    columns = ("row", *shown, delta, "verdict", *(c for m in extra for c in (f"{m} - {REFERENCE} (95 % CI)",
                                                                             f"{m} verdict")))
    note = (f"mean ± std over {seeds} seed(s) (0..{seeds - 1}; population std); task {task}; "
            f"{delta}: mean over seeds of the per-seed difference to the {REFERENCE} row, interval from a "
            "bootstrap over identities and seeds together (docs/evaluation.md, Ablations)")
    lines = [f"| {' | '.join(columns)} |", "|---" * len(columns) + "|",
             *(f"| {' | '.join(cells)} |" for cells in table)]
    control_table = [(f"{row} - {control}", *_difference_cells({"x": controls[control]}, "x", headline, missing))
                     for row, control in control_pairs(order) if control in (controls or {})]
    control_columns = ("real teacher - control", f"{headline} (95 % CI)", "verdict")
    control_lines = ["", "The real teacher against each control teacher (paired as above):", "",
                     f"| {' | '.join(control_columns)} |", "|---" * 3 + "|",
                     *(f"| {' | '.join(cells)} |" for cells in control_table)] if control_table else []
    (directory / "summary.md").write_text("\n".join(lines + control_lines) + f"\n\n{note}\n"
                                          + "".join(f"\n- {n}" for n in notes) + ("\n" if notes else ""))
    _summary_csv(directory / "summary.csv", order, metrics, summary, paired)
    _plot(summary, order, headline, directory / "summary.png", f"mean ± std over {seeds} seed(s); task {task}")
    out.table(f"ablation ({note})", table, columns)
    if control_table:
        out.table("the real teacher against each control teacher", control_table, control_columns)
    return {"directory": str(directory), "summary": summary, "paired": paired, "against": REFERENCE,
            "against_controls": controls or {},
            "verdicts": {row: _difference_cells(paired, row, headline, missing)[1] for row in order},
            "runs": len(results), "task": task, "notes": notes}


def _summary_csv(path: Path, order: list[str], metrics: list[str], summary: dict, paired: dict) -> None:
    compared = list(dict.fromkeys(m for row in paired.values() for m in row))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["row", *[f"{m}_{s}" for m in metrics for s in ("mean", "std")],
                         *[f"{m}_{s}" for m in compared for s in ("diff", "ci_low", "ci_high", "verdict")]])
        for row in order:
            entries = [paired.get(row, {}).get(m) or {} for m in compared]
            judged = [x for e in entries for x in (e.get("difference"), e.get("ci_low"), e.get("ci_high"),
                                                   e.get("verdict", "reference" if row == REFERENCE else None))]
            writer.writerow([row, *[x for m in metrics for x in summary[row].get(m, (None, None))], *judged])


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
