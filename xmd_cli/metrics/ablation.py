"""Paired differences of ablation rows against a reference row, over seeds and identities at once.

An ablation trains every row with seeds 0..S-1 and evaluates each run on the
same trial list (or test samples). The difference of a row to the reference is
the mean over seeds of the paired per-seed difference,

    d = (1/S) * sum_s [ m(row, s) - m(reference, s) ],

and its interval comes from a two-way bootstrap. One resample draws
- the identities of the trial list with replacement, the same draw for every
  run (the identity bootstrap of `bootstrap_verification.py`; for
  classification, samples within each class), and
- S seeds out of 0..S-1 with replacement (a seed index drawn k times counts k
  times), the same draw for every row,
and computes d over the drawn seeds on the reweighted trials. Both sources of
variation, which speakers were tested and which seeds were trained, move every
resample; the interval is the 2.5 % and 97.5 % quantiles. With one seed it
reflects identities alone; with few seeds the seed draw understates the seed
variance by a factor (S-1)/S, as any bootstrap of S values does.
"""

from __future__ import annotations

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.metrics.bootstrap import is_lower_better, paired_difference, resample_counts
from xmd_cli.metrics.bootstrap_accuracy import resampled_accuracy
from xmd_cli.metrics.bootstrap_verification import metric_names, resampled_verification
from xmd_cli.metrics.evidence import classification_groups

SEED_STREAM = 1  # the seed draw's generator is default_rng([seed, SEED_STREAM]), apart from the identity draw's


def _check_same(evidence: dict[str, list[dict]], sources: dict[str, list[str]]) -> tuple[str, str]:
    """(kind, fingerprint) shared by every run, or an XmdError naming two runs that differ."""
    first_row = next(iter(evidence))
    kind, print_ = str(evidence[first_row][0]["kind"]), str(evidence[first_row][0]["fingerprint"])
    for row, runs in evidence.items():
        for s, run in enumerate(runs):
            if (str(run["kind"]), str(run["fingerprint"])) != (kind, print_):
                raise XmdError(f"{sources[row][s]} and {sources[first_row][0]} were evaluated on different trials "
                               f"or samples (fingerprint {str(run['fingerprint'])[:12]} vs {print_[:12]}); "
                               "rows cannot be paired", hint="re-run xmd ablate so every run is evaluated alike")
    return kind, print_


def _per_run(evidence: dict[str, list[dict]], kind: str, *, p_targets, resamples: int, seed: int):
    """(metric names, {row: (seeds x metrics) points}, {row: (seeds x resamples x metrics) values})."""
    rows = list(evidence)
    runs = [run for row in rows for run in evidence[row]]
    first = runs[0]
    if kind == "verification":
        points, values = resampled_verification(
            [run["scores"] for run in runs], first["labels"], first["enroll"], first["test"],
            p_targets=p_targets, resamples=resamples, seed=seed)
        names = metric_names(p_targets)
        point_array = np.array([[p[name] for name in names] for p in points])
        value_array = np.stack(values)
    else:
        corrects = [run["correct"] for run in runs]
        names, columns = ["top1"], [resampled_accuracy(corrects, first["classes"], resamples=resamples,
                                                       seed=seed)]
        for name, mask in classification_groups(first):  # top1@tail, ...: the same samples in every run
            names.append(name)
            columns.append(resampled_accuracy([c[mask] for c in corrects], first["classes"][mask],
                                              resamples=resamples, seed=seed))
        point_array = np.stack([point for point, _ in columns], axis=-1)  # (runs x metrics)
        value_array = np.stack([values for _, values in columns], axis=-1)  # (runs x resamples x metrics)
    by_point, by_value, at = {}, {}, 0
    for row in rows:
        n = len(evidence[row])
        by_point[row], by_value[row] = point_array[at:at + n], value_array[at:at + n]
        at += n
    return names, by_point, by_value


def seed_paired(evidence: dict[str, list[dict]], reference: str, *, sources: dict[str, list[str]],
                p_targets=(0.01, 0.05), resamples: int = 1000, confidence: float = 0.95,
                seed: int = 0) -> dict[str, dict[str, dict]]:
    """{row: {metric: {difference, ci_low, ci_high, verdict, seeds}}} of every row against `reference`.

    `evidence[row][s]` is the scores.npz content of the row's run with seed s; every row
    needs the reference's seeds. The reference itself gets no entry.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> classes = np.arange(300) % 3
    >>> run = lambda p: {"kind": "classification", "fingerprint": "f", "classes": classes,
    ...                  "correct": rng.random(300) < p}
    >>> result = seed_paired({"none": [run(0.5), run(0.5)], "full": [run(0.95), run(0.95)]}, "none",
    ...                      sources={"none": ["a", "b"], "full": ["c", "d"]}, resamples=200)
    >>> result["full"]["top1"]["verdict"], result["full"]["top1"]["seeds"]
    ('better', 2)
    """
    if reference not in evidence:
        raise XmdError(f"no row {reference!r} to compare the other rows with",
                       hint=f"the grid needs a {reference!r} row (every built-in grid has one)")
    seeds = len(evidence[reference])
    short = [row for row, runs in evidence.items() if len(runs) != seeds]
    if short:
        raise XmdError(f"row {short[0]!r} has {len(evidence[short[0]])} evaluated seed(s) and {reference!r} "
                       f"has {seeds}; rows are paired seed by seed", hint="re-run xmd ablate to finish every run")
    kind, _ = _check_same(evidence, sources)
    names, points, values = _per_run(evidence, kind, p_targets=p_targets, resamples=resamples, seed=seed)
    # The seed draw: (resamples x seeds) weights, each row a bootstrap of the seeds, shared by all rows.
    weights = resample_counts(seeds, resamples, [seed, SEED_STREAM]) / seeds
    result = {}
    for row in evidence:
        if row == reference:
            continue
        point = (points[row] - points[reference]).mean(axis=0)  # (metrics,)
        per_seed = values[row] - values[reference]  # (seeds x resamples x metrics)
        resampled = np.einsum("rs,srm->rm", weights, per_seed)
        result[row] = {name: {**paired_difference(point[c], resampled[:, c], confidence,
                                                   is_lower_better(name)), "seeds": seeds}
                       for c, name in enumerate(names)}
    return result
