"""The diagnose report: report.json (every number), report.md (the verdicts first), PNG plots, the table rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xmd_cli.io import write_json, write_text
from xmd_cli.plotting import pyplot, save_figure


def plain(value):
    """JSON-safe copy: numpy scalars to Python, NaN to None, arrays dropped (they live in the plots)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not isinstance(v, (np.ndarray, tuple))}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _number(value) -> float:
    """A measurement for display: NaN where report.json holds None (a NaN, e.g. no residual at all)."""
    return float("nan") if value is None else value


def summary_rows(report: dict) -> list[tuple[str, str, str]]:
    """(diagnostic, what was measured, verdict) for the rich table and report.md."""
    sep, beyond = report["separability"], report["beyond_label"]
    cka, quality, verdicts = report.get("cka"), report.get("quality_reliability"), report["verdicts"]
    rows = []
    if "skipped" not in sep:
        rows.append(("separability", f"probe {sep['linear_probe_accuracy']:.3f}, centroid "
                     f"{sep['nearest_centroid_accuracy']:.3f}, chance {sep['chance']:.3f}; cosine within "
                     f"{sep['within_cosine']:.3f} / between {sep['between_cosine']:.3f}",
                     verdicts["separability"]["code"]))
    if "skipped" not in beyond:
        found = [f"{a['attribute']} {a['score']:.2f} (null {a['null_mean']:.2f}, p {a['p']:.2f})"
                 for a in beyond["attributes"] if "score" in a]
        directions = beyond["shared_directions"]
        rows.append(("beyond the label", f"within-class share {beyond['within_class_share']:.3f}; recurring "
                     f"directions {_number(directions.get('explained')):.3f} vs null "
                     f"{_number(directions.get('null_mean')):.3f}" + ("; " + ", ".join(found) if found else ""),
                     verdicts["beyond_label"]["code"]))
    rows.append(_class_level_row(report.get("class_attributes"), verdicts.get("class_attributes")))
    if cka:
        rows.append(("shared structure (CKA)", f"overall {cka['overall']['cka']:.3f} (null "
                     f"{cka['overall']['null_mean']:.3f}), within classes {cka['within_class']['cka']:.3f} "
                     f"(null {cka['within_class']['null_mean']:.3f}, p {cka['within_class']['p']:.3f})",
                     verdicts["cka"]["code"]))
    else:
        rows.append(("shared structure (CKA)", "not measured", verdicts["cka"]["code"]))
    if quality and "spearman_rho" in quality:
        rows.append(("quality vs reliability", f"Spearman rho {quality['spearman_rho']:+.3f} (p {quality['p']:.3g}); "
                     f"distance to centroid, worst quarter {quality['distance_low_quality']:.3f} / best "
                     f"{quality['distance_high_quality']:.3f}", verdicts["quality_reliability"]["code"]))
    else:
        rows.append(("quality vs reliability", "not measured", verdicts["quality_reliability"]["code"]))
    qaw = report.get("qaw_effective") or {}
    if "effective_size" in qaw:
        rows.append(("QAW effective sample size", f"{qaw['effective_size']:.1f} of {qaw['samples']} training "
                     f"samples ({100 * qaw['effective_share']:.0f} %; warns below "
                     f"{100 * qaw['min_effective_share']:.0f} %)", verdicts["qaw_effective"]["code"]))
    elif "qaw_effective" in verdicts:
        rows.append(("QAW effective sample size", "not measured", verdicts["qaw_effective"]["code"]))
    return rows


def _class_level_row(m: dict | None, verdict: dict | None) -> tuple[str, str, str]:
    """The console/report.md row of the class-level attribute probe."""
    code = (verdict or {}).get("code", "no-attributes")
    if not m or "skipped" in m:
        return ("class-level attributes", (m or {}).get("skipped", "not measured"), code)
    scored = [f"{a['attribute']} {a['score']:.2f} (null {a['null_mean']:.2f}, p {a['p']:.2f})"
              for a in m["attributes"] if "score" in a]
    return ("class-level attributes", f"{m['classes']} class means; " + (", ".join(scored) if scored else
            "none measurable (report.md says why)"), code)


def _attribute_table(title: str, attributes: list[dict], classes: bool) -> list[str]:
    """A markdown table of attribute probes: scored rows, and skipped ones with why in the note column."""
    head = "| attribute | metric | score | null mean | p |" + (" classes |" if classes else "") + " note |"
    lines = ["", f"## {title}", "", head, "|---" * (head.count("|") - 1) + "|"]
    for a in attributes:
        extra = f" {a.get('classes', '')} |" if classes else ""
        if "score" in a:
            note = f"{a['left_out_classes']} classes of rare values left out" if a.get("left_out_classes") else ""
            lines.append(f"| {a['attribute']} | {a['metric']} | {a['score']:.3f} | {a['null_mean']:.3f} | "
                         f"{a['p']:.3f} |{extra} {note} |")
        else:
            lines.append(f"| {a['attribute']} | | | | |{extra} {a['skipped']} |")
    return lines


def render_markdown(report: dict) -> str:
    lines = ["# xmd diagnose", "", f"**{report['headline']}**", "",
             f"Teacher store `{report['teacher_store']}` ({report['teacher_kind']}, {report['samples']} samples, "
             f"{report['classes']} classes); {report['how']}", "", "## Verdicts", ""]
    names = {"separability": "Teacher separability", "beyond_label": "Information beyond the label",
             "class_attributes": "Class-level attributes",
             "cka": "Shared structure across modalities", "quality_reliability": "Quality vs teacher reliability",
             "qaw_effective": "QAW effective sample size"}
    lines += [f"- **{names[key]}** ({v['code']}): {v['text']}" for key, v in report["verdicts"].items()]
    lines += ["", "## Measurements", "", "| diagnostic | measured | verdict |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in summary_rows(report)]
    attributes = [a for a in report["beyond_label"].get("attributes", [])]
    if attributes:
        lines += _attribute_table("Attributes predicted from the within-class residual", attributes, False)
    class_level = (report.get("class_attributes") or {}).get("attributes", [])
    if class_level:
        lines += _attribute_table("Attributes predicted from the class means", class_level, True)
    if report.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in report["plots"]]
    return "\n".join(lines) + "\n"


def plot_cosines(path: Path, within: np.ndarray, between: np.ndarray) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    bins = np.linspace(-1, 1, 61)
    ax.hist(between, bins=bins, alpha=0.6, density=True, label=f"different class ({len(between)} pairs)")
    ax.hist(within, bins=bins, alpha=0.6, density=True, label=f"same class ({len(within)} pairs)")
    ax.set(xlabel="cosine of teacher embeddings", ylabel="density", title="Teacher separability")
    ax.legend()
    return save_figure(fig, path)


def plot_cka(path: Path, cka: dict) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    for ax, key, title in ((axes[0], "overall", "overall"), (axes[1], "within_class", "within classes")):
        part = cka[key]
        ax.hist(part["null"], bins=30, color="grey", alpha=0.7, label="rows shuffled")
        ax.axvline(part["cka"], color="crimson", lw=2, label=f"observed {part['cka']:.3f}")
        ax.set(xlabel="linear CKA", title=f"Teacher vs student, {title}")
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_quality(path: Path, quality: np.ndarray, distance: np.ndarray) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=110)
    ax.scatter(quality, distance, s=8, alpha=0.6)
    ax.set(xlabel="teacher-side quality score", ylabel="cosine distance to class centroid (leave-one-out)",
           title="Quality vs teacher reliability")
    return save_figure(fig, path)


def write_diagnose_report(out_dir: Path, report: dict) -> dict:
    """Write report.json and report.md into `out_dir`; returns the JSON-safe report."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = plain(report)
    write_json(out_dir / "report.json", clean)
    write_text(out_dir / "report.md", render_markdown(clean))
    return clean
