"""Plain-language verdicts from the measurements, and the thresholds they use (docs/diagnose.md says why).

Each verdict is {"code": short name, "text": one sentence a user can act on}.
The thresholds are named constants here and nowhere else.
"""

from __future__ import annotations

# separability: lift over chance = (accuracy - chance) / (1 - chance), of the better of the two classifiers
SEPARATES = 0.8
PARTLY_SEPARATES = 0.3
# beyond the label
RESTATES_LABEL_SHARE = 0.10  # within-class share of teacher variance below this: one point per class, nearly
SIGNIFICANT_P = 0.05  # with 19 permutations: the observed value beats every permuted one
ATTRIBUTE_MARGIN = 0.05  # balanced accuracy (or R^2) above the null's mean
DIRECTIONS_RATIO = 1.5  # held-out variance explained, as a multiple of the null's
# CKA
CKA_MARGIN = 0.02  # above the null's mean
# quality vs reliability
QUALITY_RHO = 0.2


def separability_verdict(m: dict) -> dict:
    if "skipped" in m:
        return {"code": "skipped", "text": m["skipped"]}
    shown = f"linear probe {m['linear_probe_accuracy']:.0%}, nearest centroid {m['nearest_centroid_accuracy']:.0%}, " \
            f"chance {m['chance']:.0%}"
    if m["lift_over_chance"] >= SEPARATES:
        return {"code": "separates", "text": f"the teacher separates the classes ({shown})"}
    if m["lift_over_chance"] >= PARTLY_SEPARATES:
        return {"code": "partly", "text": f"the teacher separates the classes only in part ({shown}): "
                                          "its class targets are noisy"}
    return {"code": "does-not-separate", "text": f"the teacher barely separates the classes ({shown}): it says "
                                                 "little about the labels; expect little from classifier-level terms"}


def beats_null(a: dict) -> bool:
    """An attribute probe that found something: p <= SIGNIFICANT_P, ATTRIBUTE_MARGIN above its null's mean and,
    for R^2, also ATTRIBUTE_MARGIN above 0: a negative R^2 predicts worse than the mean, however bad the null."""
    floor = ATTRIBUTE_MARGIN if a.get("metric") == "r2" else float("-inf")
    return "score" in a and a["p"] <= SIGNIFICANT_P and a["score"] - a["null_mean"] >= ATTRIBUTE_MARGIN \
        and a["score"] >= floor


def structured_attributes(m: dict) -> list[str]:
    return [a["attribute"] for a in m.get("attributes", []) if beats_null(a)]


def directions_structured(m: dict) -> bool:
    d = m.get("shared_directions", {})
    return "explained" in d and d["p"] <= SIGNIFICANT_P and d["explained"] >= DIRECTIONS_RATIO * d["null_mean"]


def beyond_label_verdict(m: dict) -> dict:
    if "skipped" in m:
        return {"code": "skipped", "text": m["skipped"]}
    share = m["within_class_share"]
    if share < RESTATES_LABEL_SHARE:
        return {"code": "restates-label", "text": f"the teacher mostly restates the label ({share:.0%} of its variance "
                "is within classes): expect little gain from distillation beyond a label-embedding regulariser; "
                "compare with the random and class-mean controls"}
    attributes, directions = structured_attributes(m), directions_structured(m)
    if attributes:
        return {"code": "structured", "text": f"the teacher carries per-sample structure beyond the label "
                f"({share:.0%} of its variance is within classes; its within-class part predicts "
                f"{', '.join(attributes)}): distillation can add what the labels lack, where the student's "
                "modality shares it"}
    if directions:
        tested = "none of the recorded attributes explains them" if m.get("attributes") else \
            "the manifest records no attributes to explain them"
        return {"code": "unexplained", "text": f"{share:.0%} of the teacher's variance is within classes and its "
                f"directions recur across classes, but {tested}: it may be information about the sample or a "
                "recurring nuisance; the within-class CKA with a student-alone model (--checkpoint) tells which"}
    return {"code": "noise", "text": f"{share:.0%} of the teacher's variance is within classes, but it looks like "
            "noise (no attribute predictable, no recurring direction): per-sample terms can at best be ignored, "
            "and hard constraints will fit noise"}


def found_class_attributes(m: dict) -> list[str]:
    """Class-level attributes the class means predict: p <= SIGNIFICANT_P and ATTRIBUTE_MARGIN above the null."""
    return [a["attribute"] for a in m.get("attributes", []) if beats_null(a)]


def _group(name: str) -> str:
    """The attribute's kind: its prefix (shared, face_only, voice_only, ...) or "other" without one."""
    return name.split(".", 1)[0] if "." in name else "other"


def class_attributes_verdict(m: dict | None) -> dict:
    """shared-found / shared-absent / no-attributes, by whether `shared.*` attributes beat their null."""
    if m is None or "skipped" in m:
        reason = m["skipped"] if m else "not computed"
        return {"code": "no-attributes", "text": f"class-level attributes not measured: {reason}"}
    measured = [a for a in m.get("attributes", []) if "score" in a]
    found = set(found_class_attributes(m))
    groups: dict[str, list[dict]] = {}
    for a in measured:
        groups.setdefault(_group(a["attribute"]), []).append(a)
    carried, chance = [], []
    for group, entries in sorted(groups.items(), key=lambda g: (g[0] != "shared", g[0])):
        shown = group.replace("_", "-")
        hits = [f"{a['attribute'].split('.', 1)[-1]} {a['score']:.2f} (null {a['null_mean']:.2f})"
                for a in entries if a["attribute"] in found]
        if hits:
            carried.append(f"the {shown} attributes ({', '.join(hits)})")
        else:
            chance.append(shown)
    if carried:
        summary = "the teacher's class means carry " + " and ".join(carried) + \
            (f"; {', '.join(chance)} at chance" if chance else "")
    else:
        summary = f"the teacher's class means carry no class-level attribute ({', '.join(chance)} at chance)" \
            if chance else ""
    shared = groups.get("shared", [])
    if not shared:
        tested = f" ({summary})" if summary else ""
        return {"code": "no-attributes", "text": "no shared attribute (shared.*) constant within classes could be "
                f"measured{tested}: whether the teacher's class geometry holds what the student's modality also "
                "expresses is not known"}
    if any(a["attribute"] in found for a in shared):
        return {"code": "shared-found", "text": f"{summary}: the teacher places classes by what the student's "
                "modality can also express, which is what it can pass on about unseen classes"}
    return {"code": "shared-absent", "text": f"{summary}: the teacher's class geometry does not encode the shared "
            "attributes; expect its class-level terms to act as a label embedding at most"}


def cka_verdict(m: dict | None) -> dict:
    if m is None:
        return {"code": "not-measured", "text": "no student-alone checkpoint given (--checkpoint): shared structure "
                                                "across modalities not measured"}
    within, overall = m["within_class"], m["overall"]
    if within["p"] <= SIGNIFICANT_P and within["cka"] - within["null_mean"] >= CKA_MARGIN:
        return {"code": "shared-per-sample", "text": f"teacher and student share per-sample structure beyond the "
                f"label (within-class CKA {within['cka']:.2f} vs {within['null_mean']:.2f} shuffled): per-sample "
                "distillation terms have something the student's modality can learn"}
    if overall["p"] <= SIGNIFICANT_P and overall["cka"] - overall["null_mean"] >= CKA_MARGIN:
        return {"code": "shared-classes-only", "text": f"teacher and student share the class structure only "
                f"(CKA {overall['cka']:.2f} overall, within classes {within['cka']:.2f} vs {within['null_mean']:.2f} "
                "shuffled): expect gains from classifier-level terms at most"}
    return {"code": "none", "text": f"no shared structure measurable (CKA {overall['cka']:.2f} vs "
            f"{overall['null_mean']:.2f} shuffled): expect little from distillation"}


def quality_verdict(m: dict | None) -> dict:
    if m is None or "skipped" in m:
        reason = m["skipped"] if m else "no quality store"
        return {"code": "not-measured", "text": f"quality vs teacher reliability not measured: {reason}"}
    rho, p = m["spearman_rho"], m["p"]
    shown = f"Spearman rho {rho:+.2f}, p {p:.3g}"
    if rho <= -QUALITY_RHO and p < SIGNIFICANT_P:
        return {"code": "informative", "text": f"low-quality samples sit far from their class in teacher space "
                f"({shown}): QAW's down-weighting targets unreliable teacher rows"}
    if rho >= QUALITY_RHO and p < SIGNIFICANT_P:
        return {"code": "inverted", "text": f"higher-quality samples sit farther from their class ({shown}): the "
                "quality score does not measure teacher reliability; check quality.teacher before using QAW"}
    if p < SIGNIFICANT_P and rho < 0:
        return {"code": "weak", "text": f"low quality goes with distance from the class in teacher space, but "
                f"weakly ({shown}): expect QAW to matter a little"}
    return {"code": "uninformative", "text": f"quality does not track teacher reliability here ({shown}): "
            "expect QAW to matter little"}


def qaw_effective_verdict(m: dict | None) -> dict:
    if m is None or "skipped" in m:
        reason = m["skipped"] if m else "not computed"
        return {"code": "not-measured", "text": f"QAW effective sample size not measured: {reason}"}
    shown = (f"effective sample size {m['effective_size']:.1f} of {m['samples']} training samples "
             f"({100 * m['effective_share']:.0f} %)")
    if m["below"]:
        return {"code": "concentrated", "text": f"the QAW weights concentrate on few samples ({shown}, below "
                f"method.qaw.min_effective_share {m['min_effective_share']:g}): the teacher terms rest on them; "
                "lower method.qaw.gamma or raise method.qaw.tau"}
    return {"code": "spread", "text": f"the QAW weights keep most samples in play ({shown})"}


def headline(verdicts: dict) -> str:
    """One sentence for the whole report: the most decisive of the verdicts."""
    sep, beyond, cka = (verdicts[k]["code"] for k in ("separability", "beyond_label", "cka"))
    if sep == "does-not-separate":
        return "The teacher says little about the labels: check that it sees the right input before distilling."
    if beyond == "restates-label":
        return "The teacher mostly restates the label: expect little gain from distillation."
    if beyond == "noise":
        return "The teacher's information beyond the label looks like noise: expect little gain from distillation."
    if cka == "shared-per-sample":
        return "The teacher knows more than the label and the student's modality shares it: distillation can help."
    if cka == "not-measured":
        return ("The teacher varies beyond the label; pass a student-alone checkpoint (--checkpoint) to see "
                "whether the student's modality shares that variation.")
    return ("The teacher varies beyond the label, but no per-sample structure is shared with the student's "
            "modality: expect little from per-sample terms.")
