"""report.json (every number and how it was obtained), report.md (for people), and --compare.

report.json holds: xmd version, creation time, task, the scoring back-end, the
metrics, the protocol (trial counts, bootstrap settings, ...), fingerprints of
the checkpoint and data, seeds and plot files. A metric value is a number, or
{"value", "ci_low", "ci_high", "chance", "n"} when it carries a confidence
interval; dicts of numbers (per-class accuracy) and lists (the confusion
matrix) are kept in the JSON and, where readable, shown as their own table.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from xmd_cli import __version__
from xmd_cli.errors import XmdError
from xmd_cli.io import write_json, write_text
from xmd_cli.provenance import environment

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
# Metrics that are fractions of trials or samples, shown as percentages.
_PERCENT = ("eer", "verification_eer", "top", "match_", "recall@", "mean_per_class_accuracy", "accuracy",
            "per_class", "zero_shot_")


def _is_percent(name: str) -> bool:
    return name.startswith(_PERCENT) and "threshold" not in name


def format_value(name: str, value) -> str:
    """A metric as people read it: rates in %, costs and thresholds to 4 decimals.

    Examples
    --------
    >>> format_value("eer", 0.0123), format_value("min_dcf@0.01", 0.5), format_value("n_trials", 40)
    ('1.23 %', '0.5000', '40')
    >>> format_value("top1", {"value": 0.75, "ci_low": 0.7, "ci_high": 0.8})
    '75.00 % [70.00 %, 80.00 %]'
    """
    if value is None:
        return "-"
    if isinstance(value, dict) and "value" in value:
        text = format_value(name, value["value"])
        if value.get("ci_low") is not None:
            text += f" [{format_value(name, value['ci_low'])}, {format_value(name, value['ci_high'])}]"
        return text
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{100 * value:.2f} %" if _is_percent(name) else f"{value:.4f}"
    return str(value)


def scalar_metrics(metrics: dict) -> dict:
    """The metrics a table row can show: numbers and value-with-CI dicts, in report order.

    Examples
    --------
    >>> scalar_metrics({"top1": 0.5, "per_class": {"cat": 1.0}, "eer": {"value": 0.1}, "confusion": [[1]]})
    {'top1': 0.5, 'eer': {'value': 0.1}}
    """
    return {name: value for name, value in metrics.items()
            if isinstance(value, (int, float)) or (isinstance(value, dict) and "value" in value)}


def write_report(outdir: Path, *, task: str, backend: str, metrics: dict, fingerprints: dict[str, str],
                 seeds: dict[str, int], protocol: dict | None = None, plots: dict[str, str] | None = None,
                 title: str | None = None) -> tuple[Path, Path]:
    """Write report.json and report.md into `outdir`; returns both paths.

    `fingerprints` name what was evaluated (checkpoint, manifest, teacher shards,
    trial list, score file: name -> sha256), `seeds` every seed that drew
    something, `plots` name -> file name relative to `outdir`.

    Examples
    --------
    >>> import tempfile
    >>> outdir = Path(tempfile.mkdtemp()) / "run1"
    >>> json_path, md_path = write_report(outdir, task="speaker-verification", backend="cosine",
    ...                                   metrics={"eer": 0.05}, fingerprints={}, seeds={"seed": 0})
    >>> json_path.name, md_path.name, read_report(outdir)["metrics"]
    ('report.json', 'report.md', {'eer': 0.05})
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    report = {"xmd_version": __version__, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "title": title or outdir.name, "task": task, "backend": backend, "metrics": metrics,
              "protocol": protocol or {}, "fingerprints": fingerprints, "seeds": seeds, "plots": plots or {},
              "environment": environment()}  # git revision, command line, torch/CUDA, host
    json_path, md_path = outdir / REPORT_JSON, outdir / REPORT_MD
    write_json(json_path, _jsonable(report), allow_nan=False)
    write_text(md_path, render_markdown(report))
    return json_path, md_path


def _jsonable(value):
    """Plain JSON: numpy values become Python ones, and a non-finite float its name
    ("-inf": the accept-everything threshold), which strict JSON cannot hold as a number."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def report_rows(report: dict) -> list[tuple[str, str, str]]:
    """(metric, value [CI], chance) rows, for the rich table the CLI prints.

    Examples
    --------
    >>> report_rows({"metrics": {"n_trials": 8, "eer": {"value": 0.25, "ci_low": None, "chance": 0.5}}})
    [('n_trials', '8', ''), ('eer', '25.00 %', '50.00 %')]
    """
    rows = []
    for name, value in scalar_metrics(report["metrics"]).items():
        chance = format_value(name, value.get("chance")) if isinstance(value, dict) else ""
        rows.append((name, format_value(name, value), chance))
    return rows


def render_markdown(report: dict) -> str:
    """report.md's text: a title, the metrics table, tables of per-class values, then how it was made.

    Examples
    --------
    >>> report = {"title": "run1", "task": "speaker-verification", "backend": "cosine",
    ...           "xmd_version": "0.1", "created": "2025-01-01T00:00:00+00:00",
    ...           "metrics": {"eer": 0.05}, "seeds": {"seed": 0}}
    >>> print(render_markdown(report))
    # run1: speaker-verification
    <BLANKLINE>
    Scoring back-end: `cosine`. xmd 0.1, 2025-01-01T00:00:00+00:00.
    <BLANKLINE>
    | metric | value |
    |---|---|
    | eer | 5.00 % |
    <BLANKLINE>
    ## How these numbers were obtained
    <BLANKLINE>
    - seed `seed`: `0`
    <BLANKLINE>
    """
    with_ci = any(isinstance(v, dict) for v in scalar_metrics(report["metrics"]).values())
    lines = [f"# {report['title']}: {report['task']}", "",
             f"Scoring back-end: `{report['backend']}`. xmd {report['xmd_version']}, {report['created']}.", ""]
    if with_ci:
        confidence = report.get("protocol", {}).get("confidence", 0.95)
        lines += [f"| metric | value [{100 * confidence:g} % CI] | chance |", "|---|---|---|"]
        lines += [f"| {name} | {value} | {chance} |" for name, value, chance in report_rows(report)]
    else:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value, _ in report_rows(report)]
    for name, value in report["metrics"].items():
        if isinstance(value, dict) and "value" not in value and len(value) <= 200:
            lines += ["", f"## {name}", "", "| | value |", "|---|---|"]
            lines += [f"| {key} | {format_value(name, item)} |" for key, item in value.items()]
    lines += ["", "## How these numbers were obtained", ""]
    for section, label in (("protocol", "protocol"), ("fingerprints", "fingerprint"), ("seeds", "seed")):
        for key, value in report.get(section, {}).items():
            lines.append(f"- {label} `{key}`: `{value}`")
    for name, file in report.get("plots", {}).items():
        lines += ["", f"![{name}]({file})"]
    return "\n".join(lines) + "\n"


def read_report(path: Path) -> dict:
    """A report.json (or the directory holding one) as a dict; an XmdError when it is not a report.

    Examples
    --------
    >>> import tempfile
    >>> outdir = Path(tempfile.mkdtemp())
    >>> _ = write_report(outdir, task="classification", backend="argmax", metrics={"top1": 0.5},
    ...                  fingerprints={}, seeds={})
    >>> report = read_report(outdir / REPORT_JSON)
    >>> report["task"], report["metrics"]
    ('classification', {'top1': 0.5})
    """
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_JSON
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise XmdError(f"{path}: cannot read report ({e.strerror})",
                       hint="pass the report.json that `xmd evaluate` wrote") from None
    except json.JSONDecodeError as e:
        raise XmdError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(report, dict) or not isinstance(report.get("metrics"), dict):
        raise XmdError(f"{path}: not an xmd report (no `metrics` object)",
                       hint="pass the report.json that `xmd evaluate` wrote")
    return report


def compare_reports(paths: list[Path]) -> tuple[list[str], list[tuple[str, ...]]]:
    """(columns, rows) setting reports side by side: one row a metric, one column a report.

    Columns are named by each report's directory. The first rows give the task and
    back-end, so that numbers obtained differently are never read as comparable.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> for name, eer in (("a", 0.1), ("b", 0.05)):
    ...     _ = write_report(root / name, task="speaker-verification", backend="cosine",
    ...                      metrics={"eer": eer}, fingerprints={}, seeds={})
    >>> columns, rows = compare_reports([root / "a", root / "b"])
    >>> columns, rows[-1]
    (['metric', 'a', 'b'], ('eer', '10.00 %', '5.00 %'))
    """
    if len(paths) < 2:
        raise XmdError("--compare needs at least two reports")
    reports = [read_report(p) for p in paths]
    names = [Path(p).parent.name if Path(p).suffix else Path(p).name for p in paths]
    columns = ["metric", *names]
    rows: list[tuple[str, ...]] = [("task", *(r.get("task", "-") for r in reports)),
                                   ("backend", *(r.get("backend", "-") for r in reports))]
    order: list[str] = []
    for report in reports:
        order += [name for name in scalar_metrics(report["metrics"]) if name not in order]
    for name in order:
        rows.append((name, *(format_value(name, r["metrics"].get(name)) for r in reports)))
    return columns, rows
