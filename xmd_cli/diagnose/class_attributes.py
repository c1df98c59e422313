"""Class-level knowledge: do the teacher's class means predict attributes that are constant within each class?

An attribute of the identity (gender, age group, build, ...) is the same on every
sample of its class, so the within-class residual (`beyond_label`) cannot show it.
It is exactly what a teacher trained on *other* people can pass on, though: it
places an unseen class by what it is like. Here each class is one point, the
normalised mean of its unit-normalised teacher rows, and a linear probe predicts
the attribute from those points, cross-validated over classes (stratified folds,
seeded), against the same score with the attribute shuffled over the classes.
"""

from __future__ import annotations

import warnings
from numbers import Number

import numpy as np

from xmd_cli.diagnose.beyond_label import MAX_VALUES, flatten_attributes
from xmd_cli.diagnose.common import class_means, encode, permutation_p, unit_rows

MIN_CLASSES_PER_VALUE = 3  # a value held by fewer classes is left out: a fold could not learn and test it
COMPONENTS = 32  # the class means' principal directions the probe reads (as the residual probe does)


def class_mean_rows(rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """The teacher's class means: unit rows averaged per class, then unit-normalised again.

    Parameters
    ----------
    rows : ndarray of shape (n, d)
        Teacher rows, any norm.
    codes : ndarray of shape (n,)
        Integer class codes 0..K-1.

    Returns
    -------
    ndarray of shape (K, d)
        One unit row per class code.
    """
    return unit_rows(class_means(unit_rows(rows), codes))


def class_values(values: list, codes: np.ndarray) -> dict[int, object] | None:
    """Each class's single value of an attribute, or None when it varies within some class.

    Parameters
    ----------
    values : list
        The attribute of each sample; None where a sample lacks it.
    codes : ndarray of shape (n,)
        Integer class codes of the same samples.

    Returns
    -------
    dict or None
        class code -> value, for the classes where at least one sample has it; None when
        any class holds two or more values (then the within-class probe measures it).
    """
    seen: dict[int, set] = {}
    for value, code in zip(values, codes):
        if value is not None:
            seen.setdefault(int(code), set()).add(value)
    if any(len(v) > 1 for v in seen.values()):
        return None
    return {code: next(iter(v)) for code, v in seen.items()}


def class_attribute_probe(means: np.ndarray, values: list, *, seed: int = 0, permutations: int = 19,
                          folds: int = 5) -> dict:
    """How well a linear probe predicts one class-level attribute from the class means, against a shuffle null.

    Parameters
    ----------
    means : ndarray of shape (K, d)
        One row per class (e.g. `class_mean_rows`).
    values : list of length K
        The attribute's value of each class; None where a class has none.
    seed : int
        Seeds the folds and the permutations.
    permutations : int
        Draws of the null: the values shuffled over the classes, the same cross-validation.
    folds : int
        At most this many folds; fewer when the rarest value has fewer classes.

    Returns
    -------
    dict
        `metric` (balanced_accuracy; r2 for a number with more than 12 distinct values), `score`,
        `null_mean`, `null_max`, `p` (one-sided, `permutation_p`), `classes`, `folds`,
        `values` (classes per value); or `skipped` with the reason.
    """
    present = np.array([v is not None for v in values])
    raw = [v for v in values if v is not None]
    numeric = all(isinstance(v, Number) and not isinstance(v, bool) for v in raw) and len(set(raw)) > MAX_VALUES
    entry = {"kind": "numeric" if numeric else "categorical", "classes": int(present.sum())}
    x = np.asarray(means, dtype=np.float64)[present]
    if numeric:
        target = np.asarray(raw, dtype=np.float64)
        k = min(folds, len(target) // MIN_CLASSES_PER_VALUE)
        if k < 2:
            return {**entry, "skipped": f"{len(target)} classes: too few to cross-validate over classes"}
    else:
        names, counts = np.unique(np.asarray(raw, dtype=str), return_counts=True)
        kept = names[counts >= MIN_CLASSES_PER_VALUE]
        shown = ", ".join(f"{n} {c}" for n, c in zip(names, counts))
        if len(names) < 2:
            return {**entry, "skipped": f"a single value over the classes ({shown})"}
        if len(kept) < 2:
            return {**entry, "skipped": f"fewer than two values held by {MIN_CLASSES_PER_VALUE} or more classes "
                                        f"(classes per value: {shown})"}
        keep = np.isin(np.asarray(raw, dtype=str), kept)
        x, target = x[keep], encode(np.asarray(raw, dtype=str)[keep])[0]
        entry.update(classes=int(keep.sum()), values={str(n): int(c) for n, c in zip(names, counts)})
        if not keep.all():
            entry["left_out_classes"] = int((~keep).sum())
        k = int(min(folds, np.bincount(target).min()))
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    with threadpool_limits(1):  # (classes x 32) fits: extra BLAS threads only contend, up to 15x slower
        z = _reduce(x, seed)
        observed = _cv_score(z, target, numeric, k, seed)
        null = np.array([_cv_score(z, rng.permutation(target), numeric, k, seed) for _ in range(permutations)])
    return {**entry, "metric": "r2" if numeric else "balanced_accuracy", "score": observed,
            "null_mean": float(null.mean()), "null_max": float(null.max()), "p": permutation_p(observed, null),
            "folds": k}


def _reduce(x: np.ndarray, seed: int) -> np.ndarray:
    """The class means' main directions (unsupervised PCA): cheap probes that cannot overfit d."""
    from sklearn.decomposition import PCA

    n = max(1, min(COMPONENTS, x.shape[0] - 1, x.shape[1]))
    return PCA(n_components=n, random_state=seed).fit_transform(x)


def _cv_score(z: np.ndarray, target: np.ndarray, numeric: bool, k: int, seed: int) -> float:
    """Cross-validated linear probe over classes: logistic regression (balanced accuracy) or ridge (R^2)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if numeric:
        probe, cv, scoring = Ridge(alpha=1.0), KFold(n_splits=k, shuffle=True, random_state=seed), "r2"
    else:  # stratified on the (possibly shuffled) target: every fold learns and tests every value
        probe = LogisticRegression(C=1.0, max_iter=2000)
        cv, scoring = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed), "balanced_accuracy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny folds says nothing a user can act on
        return float(cross_val_score(make_pipeline(StandardScaler(), probe), z, target, cv=cv,
                                     scoring=scoring).mean())


def class_attributes(rows: np.ndarray, labels, infos: list[dict] | None, *, seed: int = 0,
                     permutations: int = 19, folds: int = 5) -> dict:
    """Per attribute constant within every class: how well the teacher's class means predict it.

    Parameters
    ----------
    rows : ndarray of shape (n, d)
        Teacher rows of the samples.
    labels : sequence of str
        The class of each sample.
    infos : list of dict or None
        Each sample's `Sample.info` (its `attributes` and `columns`, as `flatten_attributes` reads them).
    seed, permutations, folds
        As in `class_attribute_probe`.

    Returns
    -------
    dict
        `classes` and `attributes`: one entry per attribute (`attribute` plus what
        `class_attribute_probe` returns), or `skipped` with the reason; `skipped` at the top
        when there are fewer than two classes.
    """
    codes, names = encode(labels)
    if len(names) < 2:
        return {"skipped": "fewer than two classes"}
    means = class_mean_rows(rows, codes)
    attributes = flatten_attributes(list(infos) if infos is not None else [{}] * len(codes))
    results = []
    for name, values in attributes.items():
        per_class = class_values(values, codes)
        if per_class is None:
            results.append({"attribute": name, "skipped": "varies within a class: the residual probe measures it"})
            continue
        column = [per_class.get(c) for c in range(len(names))]
        results.append({"attribute": name, **class_attribute_probe(means, column, seed=seed,
                                                                   permutations=permutations, folds=folds)})
    return {"classes": len(names), "attributes": results}
