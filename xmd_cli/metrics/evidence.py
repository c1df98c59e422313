"""Intervals in reports, the per-trial file a paired comparison needs, and paired `--compare`.

Each report directory gets `scores.npz` beside report.json when the per-trial
identities are known: kind ("verification" or "classification"), the scores
(or per-sample correctness), labels, identity (or class) indices and the
fingerprint of the trial list (sample list) in the order stored. A trial list's
fingerprint is the sha256 of its trials written canonically as
`label enroll test\\n` lines, so the same trials give the same fingerprint
whichever file format they came from. `--compare` pairs reports only when the
fingerprints, and the data fingerprints (manifest_sha256), agree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.metrics.bootstrap_accuracy import accuracy_interval, paired_accuracy
from xmd_cli.metrics.bootstrap_verification import paired_verification, verification_intervals
from xmd_cli.metrics.classification import group_order, group_top1
from xmd_cli.metrics.report import format_value

SCORES_NPZ = "scores.npz"
CHANCE = {"eer": 0.5, "min_dcf": 1.0, "top1": None}  # normalised minDCF 1.0: deciding by the prior alone


def trials_fingerprint(labels, enroll_names, test_names) -> str:
    """sha256 of the trials as canonical `label enroll test` lines, in the given order.

    Examples
    --------
    >>> a = trials_fingerprint([True, False], ["s1/a", "s1/a"], ["s1/b", "s2/c"])
    >>> a == trials_fingerprint([1, 0], ["s1/a", "s1/a"], ["s1/b", "s2/c"]), len(a)
    (True, 64)
    """
    text = "".join(f"{label} {enroll} {test}\n"
                   for label, enroll, test in zip(np.asarray(labels, dtype=int).tolist(), enroll_names, test_names))
    return hashlib.sha256(text.encode()).hexdigest()


def samples_fingerprint(sample_ids) -> str:
    """sha256 of the sample ids as `id\\n` lines, in the given order (a classification's sample list).

    Examples
    --------
    >>> a = samples_fingerprint(["cat/1.png", "dog/2.png"])
    >>> a == samples_fingerprint(iter(["cat/1.png", "dog/2.png"])), a == samples_fingerprint(["dog/2.png"]), len(a)
    (True, False, 64)
    """
    return hashlib.sha256("".join(f"{name}\n" for name in sample_ids).encode()).hexdigest()


def _chance(name: str):
    return next((value for prefix, value in CHANCE.items() if name.startswith(prefix)), None)


def add_verification_intervals(metrics: dict, protocol: dict, scores, labels, enroll_ids, test_ids, *,
                               p_targets, resamples: int, seed: int, source: str) -> None:
    """Replace eer and min_dcf@p in `metrics` by {value, ci_low, ci_high, chance, n} (identity bootstrap).

    Examples
    --------
    >>> metrics, protocol = {"eer": 0.25}, {}
    >>> speakers = np.repeat(np.arange(4), 2)
    >>> labels = np.arange(8) % 2 == 0
    >>> scores = np.where(labels, 0.8, 0.2) + np.linspace(-0.3, 0.3, 8)
    >>> tests = np.where(labels, speakers, 3 - speakers)
    >>> add_verification_intervals(metrics, protocol, scores, labels, speakers, tests, p_targets=(), resamples=50,
    ...                            seed=0, source="demo")
    >>> sorted(metrics["eer"]), metrics["eer"]["chance"], protocol["bootstrap_unit"]
    (['chance', 'ci_high', 'ci_low', 'n', 'value'], 0.5, 'identity')
    >>> add_verification_intervals({}, protocol, scores, labels, speakers, speakers, p_targets=(), resamples=0,
    ...                            seed=0, source="demo")
    >>> protocol["intervals"]
    'off (evaluation.bootstrap = 0)'
    """
    if resamples == 0:
        protocol["intervals"] = "off (evaluation.bootstrap = 0)"
        return
    result = verification_intervals(scores, labels, enroll_ids, test_ids, p_targets=p_targets,
                                    resamples=resamples, seed=seed, source=source)
    for name, entry in result["metrics"].items():
        metrics[name] = {**entry, "chance": _chance(name), "n": int(np.size(scores))}
    protocol.update(result["protocol"])
    protocol["intervals"] = "percentile bootstrap over speaker identities (docs/evaluation.md, Intervals)"


def add_accuracy_interval(metrics: dict, protocol: dict, correct, classes, *, resamples: int, seed: int) -> None:
    """Replace top1 in `metrics` by {value, ci_low, ci_high, chance, n} (class-stratified sample bootstrap).

    Examples
    --------
    >>> metrics, protocol = {"top1": 0.75}, {}
    >>> correct, classes = np.array([1, 1, 1, 0] * 5, dtype=bool), np.arange(20) % 2
    >>> add_accuracy_interval(metrics, protocol, correct, classes, resamples=50, seed=0)
    >>> metrics["top1"]["value"], metrics["top1"]["chance"], metrics["top1"]["n"], protocol["bootstrap"]
    (0.75, 0.5, 20, 50)
    """
    if resamples == 0 or "top1" not in metrics:  # no top1 with a single class
        protocol["intervals"] = "off (evaluation.bootstrap = 0)" if resamples == 0 else "absent: no top1"
        return
    entry = accuracy_interval(correct, classes, resamples=resamples, seed=seed)
    metrics["top1"] = {**entry, "chance": 1 / len(np.unique(classes)), "n": int(np.size(classes))}
    protocol.update({"bootstrap": resamples, "confidence": 0.95, "bootstrap_unit": "sample, within class",
                     "bootstrap_seed": seed})


def add_group_accuracies(metrics: dict, protocol: dict, correct, classes, groups, *, resamples: int,
                         seed: int) -> None:
    """Add `top1@<group>` for each group of the samples: {value, ci_low, ci_high, chance, n}.

    Each group's interval is the class-stratified sample bootstrap of its own samples
    (a group is a set of classes, so this is the overall bootstrap seen on those
    classes); chance is that of the overall top1 (guessing among all evaluated classes).
    Without intervals (`resamples` 0) the values are plain numbers.

    Examples
    --------
    >>> metrics, protocol = {}, {}
    >>> correct = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)
    >>> classes, groups = np.array([0, 0, 1, 1, 2, 2, 3, 3]), ["head"] * 4 + ["tail"] * 4
    >>> add_group_accuracies(metrics, protocol, correct, classes, groups, resamples=50, seed=0)
    >>> metrics["top1@head"]["value"], metrics["top1@tail"]["value"], metrics["top1@tail"]["n"]
    (0.75, 0.25, 4)
    >>> metrics["top1@tail"]["chance"], protocol["groups"]
    (0.25, {'head': 4, 'tail': 4})
    """
    correct = np.asarray(correct, dtype=bool).reshape(-1)
    classes, groups = np.asarray(classes).reshape(-1), np.asarray(groups, dtype=str).reshape(-1)
    values = group_top1(correct, groups)
    chance = 1 / len(np.unique(classes))
    protocol["groups"] = {g: int((groups == g).sum()) for g in group_order(groups)}
    for g in group_order(groups):
        name, mask = f"top1@{g}", groups == g
        if resamples == 0:
            metrics[name] = values[name]
            continue
        entry = accuracy_interval(correct[mask], classes[mask], resamples=resamples, seed=seed)
        metrics[name] = {**entry, "chance": chance, "n": int(mask.sum())}


def save_verification(outdir: Path, scores, labels, enroll_ids, test_ids, trials_sha256: str) -> Path:
    """Write scores.npz: what a paired bootstrap of this run against another needs.

    Examples
    --------
    >>> import tempfile
    >>> outdir = Path(tempfile.mkdtemp())
    >>> save_verification(outdir, [0.9, 0.1], [1, 0], ["s1", "s1"], ["s1", "s2"], "ab" * 32).name
    'scores.npz'
    >>> evidence = load_evidence(outdir)
    >>> str(evidence["kind"]), evidence["enroll"].tolist(), evidence["test"].tolist(), evidence["identities"].tolist()
    ('verification', [0, 0], [0, 1], ['s1', 's2'])
    """
    names, codes = np.unique(np.concatenate((np.asarray(enroll_ids), np.asarray(test_ids))),
                             return_inverse=True)
    n = np.size(scores)
    path = Path(outdir) / SCORES_NPZ
    with open(path, "wb") as f:
        np.savez(f, kind="verification", scores=np.asarray(scores, dtype=np.float64),
                 labels=np.asarray(labels, dtype=bool), enroll=codes[:n].astype(np.int32),
                 test=codes[n:].astype(np.int32), identities=names.astype(str), fingerprint=trials_sha256)
    return path


def save_classification(outdir: Path, correct, classes, samples_sha256: str, groups=None) -> Path:
    """Write scores.npz of a classification run: per-sample correctness, class and (optionally) group.

    `groups` (each sample's group, see `classification.group_names`) lets a paired
    comparison give `top1@<group>` differences too.

    Examples
    --------
    >>> import tempfile
    >>> outdir = Path(tempfile.mkdtemp())
    >>> _ = save_classification(outdir, [True, False, True], [0, 1, 1], samples_fingerprint(["a", "b", "c"]))
    >>> evidence = load_evidence(outdir)
    >>> str(evidence["kind"]), evidence["correct"].tolist(), evidence["classes"].tolist()
    ('classification', [True, False, True], [0, 1, 1])
    >>> _ = save_classification(outdir, [True, False], [0, 1], "ab" * 32, groups=["head", "tail"])
    >>> load_evidence(outdir)["groups"].tolist()
    ['head', 'tail']
    """
    path = Path(outdir) / SCORES_NPZ
    extra = {} if groups is None else {"groups": np.asarray(groups, dtype=str)}
    with open(path, "wb") as f:
        np.savez(f, kind="classification", correct=np.asarray(correct, dtype=bool),
                 classes=np.asarray(classes, dtype=np.int32), fingerprint=samples_sha256, **extra)
    return path


def classification_groups(evidence: dict) -> list[tuple[str, np.ndarray]]:
    """(`top1@<group>`, sample mask) of each group a classification's scores.npz records; [] without groups.

    Examples
    --------
    >>> [(name, mask.tolist()) for name, mask in classification_groups({"groups": np.array(["tail", "head"])})]
    [('top1@head', [False, True]), ('top1@tail', [True, False])]
    >>> classification_groups({"correct": np.ones(2, bool)})
    []
    """
    if "groups" not in evidence:
        return []
    groups = np.asarray(evidence["groups"], dtype=str)
    return [(f"top1@{g}", groups == g) for g in group_order(groups)]


def _report_dir(path: Path) -> Path:
    path = Path(path)
    return path if path.is_dir() else path.parent


def load_evidence(report_path: Path) -> dict | None:
    """The scores.npz beside a report, or None when the report has none.

    Examples
    --------
    >>> import tempfile
    >>> outdir = Path(tempfile.mkdtemp())
    >>> load_evidence(outdir / "report.json") is None
    True
    >>> _ = save_classification(outdir, [True], [0], "ab" * 32)
    >>> sorted(load_evidence(outdir / "report.json"))
    ['classes', 'correct', 'fingerprint', 'kind']
    """
    path = _report_dir(report_path) / SCORES_NPZ
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as e:
        raise XmdError(f"{path}: cannot read the per-trial scores ({e})",
                       hint="re-run `xmd evaluate` to rewrite it") from None


def _refuse_different(paths, reports, evidence) -> None:
    first = Path(paths[0])
    for path, report, other in zip(paths[1:], reports[1:], evidence[1:]):
        data = [r.get("fingerprints", {}).get("manifest_sha256") for r in (reports[0], report)]
        if None not in data and data[0] != data[1]:
            raise XmdError(f"{first} and {path} were evaluated on different data (manifest_sha256 "
                           f"{data[0][:12]} vs {data[1][:12]}); their numbers are not comparable",
                           hint="evaluate both runs on the same prepared data set")
        if evidence[0] is not None and other is not None:
            kinds = (str(evidence[0]["kind"]), str(other["kind"]))
            prints = (str(evidence[0]["fingerprint"]), str(other["fingerprint"]))
            if kinds[0] != kinds[1] or prints[0] != prints[1]:
                raise XmdError(f"{first} and {path} were made on different trial lists (trials fingerprint "
                               f"{prints[0][:12]} vs {prints[1][:12]}); a paired comparison needs the same trials",
                               hint="evaluate both runs with the same --trials")
        trials = [r.get("fingerprints", {}).get("trials_sha256") for r in (reports[0], report)]
        if (evidence[0] is None or other is None) and None not in trials and trials[0] != trials[1]:
            raise XmdError(f"{first} and {path} were made on different trial lists (trials_sha256 "
                           f"{trials[0][:12]} vs {trials[1][:12]})", hint="evaluate both runs with the same --trials")


def _settings(reports) -> tuple[int, float, int]:
    protocol, seeds = reports[0].get("protocol", {}), reports[0].get("seeds", {})
    resamples = max((r.get("protocol", {}).get("bootstrap") or 0) for r in reports) or 1000
    return int(resamples), float(protocol.get("confidence", 0.95)), int(seeds.get("seed", 0))


def _p_targets(metrics: dict) -> list[float]:
    return [float(name.split("@", 1)[1]) for name in metrics if name.startswith("min_dcf@")]


def paired_comparison(paths: list[Path], reports: list[dict]) -> dict:
    """{metric: [difference entry or None per report after the first]} of paired bootstraps against the first.

    Reports on different data or trial lists are an XmdError naming both files.
    A report without scores.npz gets None (no paired interval can be formed).

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> classes = np.arange(60) % 3
    >>> for name, correct in (("a", np.arange(60) % 2 == 0), ("b", np.ones(60, bool))):
    ...     (root / name).mkdir()
    ...     _ = save_classification(root / name, correct, classes, "ab" * 32)
    >>> reports = [{"metrics": {"top1": 0.5}, "protocol": {"bootstrap": 200}}, {"metrics": {"top1": 1.0}}]
    >>> paired = paired_comparison([root / "a", root / "b"], reports)
    >>> paired["bootstrap"], paired["metrics"]["top1"][0]["difference"], paired["metrics"]["top1"][0]["verdict"]
    (200, 0.5, 'better')
    """
    evidence = [load_evidence(p) for p in paths]
    _refuse_different(paths, reports, evidence)
    if evidence[0] is None:
        return {}
    paired = [k for k in range(1, len(paths)) if evidence[k] is not None]
    if not paired:
        return {}
    resamples, confidence, seed = _settings(reports)
    first = evidence[0]
    if str(first["kind"]) == "verification":
        protocol = reports[0].get("protocol", {})
        differences = paired_verification(
            [first["scores"], *(evidence[k]["scores"] for k in paired)], first["labels"], first["enroll"],
            first["test"], p_targets=_p_targets(reports[0]["metrics"]), resamples=resamples,
            confidence=confidence, seed=seed, c_miss=protocol.get("c_miss", 1.0), c_fa=protocol.get("c_fa", 1.0),
            sources=[str(paths[0]), *(str(paths[k]) for k in paired)])
    else:
        corrects = [first["correct"], *(evidence[k]["correct"] for k in paired)]
        differences = {"top1": paired_accuracy(corrects, first["classes"], resamples=resamples,
                                               confidence=confidence, seed=seed)}
        for name, mask in classification_groups(first):  # the same samples in every run (fingerprint)
            differences[name] = paired_accuracy([c[mask] for c in corrects], first["classes"][mask],
                                                resamples=resamples, confidence=confidence, seed=seed)
    result = {}
    for name, entries in differences.items():
        column = [None] * (len(paths) - 1)
        for k, entry in zip(paired, entries):
            column[k - 1] = entry
        result[name] = column
    return {"metrics": result, "bootstrap": resamples, "confidence": confidence, "seed": seed,
            "against": str(paths[0])}


def format_difference(name: str, entry: dict | None) -> str:
    """`+1.20 % [0.31 %, 2.05 %] worse`: the difference, its interval and the verdict.

    Examples
    --------
    >>> format_difference("eer", {"difference": 0.012, "ci_low": 0.0031, "ci_high": 0.0205, "verdict": "worse"})
    '+1.20 % [0.31 %, 2.05 %] worse'
    """
    if entry is None:
        return "- (no scores.npz)"
    sign = "+" if entry["difference"] > 0 else ""
    text = sign + format_value(name, entry["difference"])
    if entry["ci_low"] is not None:
        text += f" [{format_value(name, entry['ci_low'])}, {format_value(name, entry['ci_high'])}]"
    return f"{text} {entry['verdict']}"


def paired_rows(paired: dict, first_name: str) -> list[tuple[str, ...]]:
    """Table rows `<metric> - <first report>`: one cell a report, the first's cell empty.

    Examples
    --------
    >>> entry = {"difference": -0.01, "ci_low": -0.02, "ci_high": -0.005, "verdict": "better"}
    >>> paired_rows({"metrics": {"eer": [entry, None]}}, "base")
    [('eer - base', '', '-1.00 % [-2.00 %, -0.50 %] better', '- (no scores.npz)')]
    """
    return [(f"{name} - {first_name}", "", *(format_difference(name, entry) for entry in entries))
            for name, entries in paired.get("metrics", {}).items()]

