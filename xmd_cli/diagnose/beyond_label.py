"""Information beyond the label: how much teacher variance is left within classes, and is it structured?

A teacher that gives one embedding per class restates the label: distillation can
then add little. What it could add lives in the within-class part of its
embeddings (the residual after subtracting each class's mean), and only if that
part is structure, not noise. Two tests of structure:

- attributes: can the residual predict analysis-only metadata of the sample
  (`Sample.info["attributes"]`: colour, pose, ...; and a table's extra columns,
  `Sample.info["columns"]`: gender, age, ...)? Cross-validated, against the
  same score with the attribute permuted within each class (a null that keeps the
  class's distribution of the attribute).
- recurring directions: do the main directions of within-class variation of half
  of the classes explain the residuals of the other half? Against a null where the
  residuals are turned by a random rotation and each coordinate is then permuted
  independently across samples: the total variance stays, every direction the
  samples shared is gone (about k/d explained, as for isotropic noise). Variation
  of the same kind in every class (a colour axis, a pose axis) explains far more.
  This needs no metadata, but it cannot tell information about the sample from a
  nuisance that recurs (a shuffled-control teacher passes it too); only the
  attribute test, or the CKA against the student, ties structure to the sample.
"""

from __future__ import annotations

from numbers import Number

import numpy as np

from xmd_cli.diagnose.common import (
    encode,
    folds_for,
    permutation_p,
    residuals,
    unit_rows,
    with_min_count,
)

MAX_VALUES = 12  # an attribute with more distinct values than this and numeric values is treated as a number


def within_class_share(rows: np.ndarray, codes: np.ndarray) -> float:
    """Share of the (unit-normalised) teacher variance that lies within classes: 0 = one point per class."""
    x = unit_rows(rows)
    total = np.sum((x - x.mean(axis=0)) ** 2)
    return float(np.sum(residuals(x, codes) ** 2) / total) if total > 0 else 0.0


def flatten_attributes(infos: list[dict]) -> dict[str, list]:
    """The analysis-only metadata of each sample, by name; None where a sample lacks it. Scalars only.

    Two sources: `info["attributes"]` (generated data; nested keys joined with dots) and
    `info["columns"]` (the table adapter's columns that no manifest field reads, e.g. gender,
    age). A column named like an attribute is kept as `columns.NAME`. Columns come from text
    files, so a column whose every value reads as a finite number is taken as numbers.
    """
    flat: list[dict] = []
    for info in infos:
        values: dict = {}

        def walk(node, prefix):
            for key, value in node.items():
                name = f"{prefix}{key}"
                if isinstance(value, dict):
                    walk(value, name + ".")
                elif isinstance(value, (str, bool, Number)) and value is not None:
                    values[name] = value
        walk((info or {}).get("attributes") or {}, "")
        flat.append(values)
    attributes = {k for f in flat for k in f}
    for name, values in _table_columns(infos).items():
        for sample, value in zip(flat, values):
            if value is not None:
                sample[f"columns.{name}" if name in attributes else name] = value
    names = sorted({k for f in flat for k in f})
    return {name: [f.get(name) for f in flat] for name in names}


def _table_columns(infos: list[dict]) -> dict[str, list]:
    """`info["columns"]` by column name (scalars only, None where absent), numeric columns as floats."""
    rows = [{k: v for k, v in ((info or {}).get("columns") or {}).items() if isinstance(v, (str, bool, Number))}
            for info in infos]
    names = sorted({k for row in rows for k in row})
    return {name: _numbers_if_all([row.get(name) for row in rows]) for name in names}


def _numbers_if_all(values: list) -> list:
    """Text values that all read as finite numbers ("34", "1.5e2") become floats; anything else stays."""
    given = [v for v in values if v is not None]
    if not given or not all(isinstance(v, str) for v in given):
        return values
    try:
        numbers = [float(v) for v in given]
    except ValueError:
        return values
    if not all(np.isfinite(numbers)):
        return values
    return [None if v is None else float(v) for v in values]


def _reduce(resid: np.ndarray, seed: int, components: int = 32) -> np.ndarray:
    """The residuals' main directions (unsupervised PCA), so that each probe is cheap and cannot overfit d."""
    from sklearn.decomposition import PCA

    n = min(components, resid.shape[0] - 1, resid.shape[1])
    return PCA(n_components=max(1, n), random_state=seed).fit_transform(resid)


def _folds(target: np.ndarray, numeric: bool, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (KFold(n_splits=folds, shuffle=True, random_state=seed) if numeric
                else StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed))
    return list(splitter.split(np.zeros(len(target)), target if not numeric else None))


def _probe_score(z: np.ndarray, target: np.ndarray, numeric: bool, folds, alpha: float = 1.0) -> float:
    """Cross-validated ridge probe: R^2 (numeric) or balanced accuracy of one-vs-rest ridge (categorical).

    Closed-form ridge rather than an iterative classifier: the permutation null refits it
    (folds x permutations) times per attribute, and a linear probe is all the question needs.
    """
    scores = []
    for train, test in folds:
        a = np.column_stack([z[train], np.ones(len(train))])
        if numeric:
            y = target[train][:, None]
        else:
            y = np.eye(int(target.max()) + 1)[target[train]]
        w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ y)
        predicted = np.column_stack([z[test], np.ones(len(test))]) @ w
        truth = target[test]
        if numeric:
            total = np.sum((truth - truth.mean()) ** 2)
            scores.append(1 - np.sum((truth - predicted[:, 0]) ** 2) / total if total > 0 else 0.0)
        else:
            guess = predicted.argmax(axis=1)
            scores.append(np.mean([np.mean(guess[truth == c] == c) for c in np.unique(truth)]))
    return float(np.mean(scores))


def attribute_structure(rows: np.ndarray, codes: np.ndarray, attributes: dict[str, list], *, seed: int = 0,
                        permutations: int = 19, folds: int = 5) -> list[dict]:
    """Per attribute: how well the within-class residual predicts it, against a within-class permutation null.

    Score: balanced accuracy (categorical) or R^2 (numeric), cross-validated. An attribute
    that never varies within a class cannot be seen in a residual and is reported as such.
    """
    resid = residuals(unit_rows(rows), codes)
    z_all = _reduce(resid, seed)
    rng = np.random.default_rng(seed)
    results = []
    for name, values in attributes.items():
        present = np.array([v is not None for v in values])
        raw = np.array([v for v in values if v is not None], dtype=object)
        numeric = all(isinstance(v, Number) and not isinstance(v, bool) for v in raw) and \
            len(set(raw.tolist())) > MAX_VALUES
        target = raw.astype(np.float64) if numeric else encode(raw.astype(str))[0]
        cls = codes[present]
        entry = {"attribute": name, "kind": "numeric" if numeric else "categorical", "samples": int(present.sum())}
        if not _varies_within_classes(target, cls):
            results.append({**entry, "skipped": "constant within every class: a residual cannot show it"})
            continue
        if not numeric:  # values too rare to appear in every fold are dropped
            keep = np.bincount(target)[target] >= 2
            present[np.flatnonzero(present)[~keep]] = False
            target, cls = encode(target[keep])[0], cls[keep]
            if len(np.unique(target)) < 2:
                results.append({**entry, "skipped": "fewer than two values with two or more samples"})
                continue
        k = min(folds, folds_for(target, folds)) if not numeric else min(folds, int(present.sum()) // 2)
        if k < 2:
            results.append({**entry, "skipped": "too few samples to cross-validate"})
            continue
        z, split = z_all[present], _folds(target, numeric, k, seed)
        observed = _probe_score(z, target, numeric, split)
        null = np.array([_probe_score(z, _permute_within(target, cls, rng), numeric, split)
                         for _ in range(permutations)])
        p = permutation_p(observed, null)
        results.append({**entry, "samples": int(present.sum()), "score": observed,
                        "metric": "r2" if numeric else "balanced_accuracy", "null_mean": float(null.mean()),
                        "null_max": float(null.max()), "p": p, "folds": k})
    return results


def _varies_within_classes(target: np.ndarray, cls: np.ndarray) -> bool:
    return any(len(np.unique(target[cls == c])) > 1 for c in np.unique(cls))


def _permute_within(values: np.ndarray, cls: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = values.copy()
    for c in np.unique(cls):
        members = np.flatnonzero(cls == c)
        out[members] = values[rng.permutation(members)]
    return out


def shared_directions(rows: np.ndarray, codes: np.ndarray, *, k: int = 5, seed: int = 0,
                      permutations: int = 19, splits: int = 4) -> dict:
    """Share of held-out classes' residual variance that the top-k residual directions of the other classes explain.

    Averaged over `splits` random halvings of the classes; the null rotates the residuals
    at random and permutes each coordinate independently across samples.
    """
    resid = residuals(unit_rows(rows), codes)
    classes = np.unique(codes)
    if len(classes) < 2:
        return {"skipped": "needs two or more classes"}
    k = int(max(1, min(k, resid.shape[1] - 1)))
    rng = np.random.default_rng(seed)
    halvings = [rng.permutation(classes) for _ in range(splits)]

    def explained(r: np.ndarray) -> float:
        shares = []
        for order in halvings:
            fit = np.isin(codes, order[:len(order) // 2])
            a, b = r[fit], r[~fit]
            if len(a) < 2 or not np.any(b):
                continue
            _, _, vt = np.linalg.svd(a - a.mean(axis=0), full_matrices=False)
            basis = vt[:k]
            shares.append(np.sum((b @ basis.T) ** 2) / np.sum(b ** 2))
        return float(np.mean(shares)) if shares else float("nan")

    def scrambled() -> np.ndarray:
        rotation, _ = np.linalg.qr(rng.standard_normal((resid.shape[1], resid.shape[1])))
        turned = resid @ rotation
        return np.column_stack([rng.permutation(col) for col in turned.T])

    observed = explained(resid)
    null = np.array([explained(scrambled()) for _ in range(permutations)])
    return {"k": k, "explained": observed, "null_mean": float(np.nanmean(null)), "null_max": float(np.nanmax(null)),
            "isotropic": k / resid.shape[1], "p": permutation_p(observed, null)}


def beyond_label(rows: np.ndarray, labels, infos: list[dict] | None = None, *, seed: int = 0,
                 permutations: int = 19) -> dict:
    """Within-class share of variance, attribute structure and shared directions of the residuals."""
    codes, _ = encode(labels)
    keep = with_min_count(codes, 2)  # a class of one has no within-class part
    rows, labels = np.asarray(rows)[keep], np.asarray(labels, dtype=str)[keep]
    codes = encode(labels)[0]
    if len(np.unique(codes)) < 2:
        return {"skipped": "fewer than two classes with two or more samples"}
    infos = [infos[i] for i in np.flatnonzero(keep)] if infos is not None else [{}] * len(rows)
    attributes = attribute_structure(rows, codes, flatten_attributes(infos), seed=seed, permutations=permutations)
    return {"samples": int(len(rows)), "within_class_share": within_class_share(rows, codes),
            "attributes": attributes,
            "shared_directions": shared_directions(rows, codes, seed=seed, permutations=permutations)}
