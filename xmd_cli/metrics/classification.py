"""Classification and identification metrics: top-k, per-class accuracy, confusion matrix.

Ties are counted against the model: a sample is correct at k when fewer than k
other classes score *at least as high* as its true class. A model that gives
every class the same score is then right at k only when k covers every class,
instead of being credited by whatever order the sort left the ties in.
"""

from __future__ import annotations

import numpy as np

from xmd_cli.errors import XmdError

HEAD = "head"  # the group of a test sample that carries no `info.group` mark


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise XmdError(f"class scores must be a (samples x classes) matrix, got shape {scores.shape}")
    if scores.shape[0] == 0:
        raise XmdError("no samples to evaluate")
    if labels.shape != (scores.shape[0],):
        raise XmdError(f"{scores.shape[0]} score rows but {labels.size} labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise XmdError(f"labels must be class indices 0..{scores.shape[1] - 1}")
    if not np.isfinite(scores).all():
        raise XmdError("class scores contain NaN or infinite values")
    return scores, labels.astype(np.int64)


def true_class_rank(scores, labels) -> np.ndarray:
    """0-based rank of each sample's true class: how many other classes score >= it.

    Examples
    --------
    >>> true_class_rank([[0.1, 0.9], [0.5, 0.5]], [1, 0]).tolist()  # a tie counts against
    [0, 1]
    """
    scores, labels = _check(scores, labels)
    true_score = scores[np.arange(labels.size), labels][:, None]
    return (scores >= true_score).sum(axis=1) - 1


def top_k_accuracy(scores, labels, k: int = 1) -> float:
    """Share of samples whose true class is among the k best (ties count against).

    Examples
    --------
    >>> scores = [[0.1, 0.9], [0.5, 0.5]]
    >>> top_k_accuracy(scores, [1, 0]), top_k_accuracy(scores, [1, 0], k=2)
    (0.5, 1.0)
    """
    if k < 1:
        raise XmdError(f"top-k needs k >= 1, got {k}")
    return float((true_class_rank(scores, labels) < k).mean())


def predictions(scores) -> np.ndarray:
    """The best class of each row (the lowest index among tied maxima).

    Examples
    --------
    >>> predictions([[0.1, 0.9], [0.5, 0.5]]).tolist()
    [1, 0]
    """
    return np.asarray(scores).argmax(axis=1)


def confusion_matrix(labels, predicted, n_classes: int) -> np.ndarray:
    """counts[true, predicted], n_classes x n_classes.

    Examples
    --------
    >>> confusion_matrix([0, 1, 1], [0, 1, 0], n_classes=2).tolist()
    [[1, 0], [1, 1]]
    """
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    return np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes) \
        .reshape(n_classes, n_classes)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix; NaN for a class with no samples.

    Examples
    --------
    >>> per_class_accuracy(np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])).tolist()
    [1.0, 0.5, nan]
    """
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / totals, np.nan)


def classification_summary(scores, labels, class_names: list[str] | None = None, *,
                           ks=(1, 5)) -> dict:
    """Every classification number, JSON-ready.

    Keys: n_samples, n_classes, top1, top5 (each k in `ks` that is below the class
    count; top-k with k >= classes is always 1), mean_per_class_accuracy (balanced
    accuracy over classes that have samples), per_class {name: accuracy or None},
    confusion [[...]] (rows true, columns the argmax prediction), class_names.

    Examples
    --------
    >>> scores = [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]]
    >>> summary = classification_summary(scores, [0, 1, 1], ["cat", "dog", "owl"], ks=(1, 2))
    >>> round(summary["top1"], 4), summary["top2"], summary["mean_per_class_accuracy"]
    (0.6667, 1.0, 0.75)
    >>> summary["per_class"], summary["confusion"]
    ({'cat': 1.0, 'dog': 0.5, 'owl': None}, [[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    """
    scores, labels = _check(scores, labels)
    n_classes = scores.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    if len(names) != n_classes:
        raise XmdError(f"{len(names)} class names for {n_classes} score columns")
    rank = true_class_rank(scores, labels)
    matrix = confusion_matrix(labels, predictions(scores), n_classes)
    per_class = per_class_accuracy(matrix)
    summary = {"n_samples": int(labels.size), "n_classes": n_classes}
    for k in ks:
        if k < n_classes:
            summary[f"top{k}"] = float((rank < k).mean())
    summary["mean_per_class_accuracy"] = float(np.nanmean(per_class))
    summary["per_class"] = {name: (None if np.isnan(a) else float(a)) for name, a in zip(names, per_class)}
    summary["confusion"] = matrix.tolist()
    summary["class_names"] = names
    return summary


def group_names(groups) -> np.ndarray:
    """Each sample's group as a string: its `info.group` mark, or "head" where it has none.

    Examples
    --------
    >>> group_names([None, "tail", "", "head", "held-out"]).tolist()
    ['head', 'tail', 'head', 'head', 'held-out']
    """
    return np.array([str(g) if g else HEAD for g in groups], dtype=str).reshape(-1)


def group_order(groups) -> list[str]:
    """The groups present, "head" first, then the others in alphabetical order.

    Examples
    --------
    >>> group_order(["tail", "head", "tail", "held-out"])
    ['head', 'held-out', 'tail']
    """
    present = set(np.asarray(groups, dtype=str).tolist())
    return ([HEAD] if HEAD in present else []) + sorted(present - {HEAD})


def group_top1(correct, groups) -> dict[str, float]:
    """{`top1@<group>`: share of the group's samples that are right}, groups in `group_order`.

    Parameters
    ----------
    correct : array_like of bool
        Whether each sample is right at top-1 (e.g. ``true_class_rank(scores, labels) < 1``).
    groups : array_like of str
        Each sample's group (see `group_names`).

    Examples
    --------
    >>> group_top1([True, False, True, True], ["head", "tail", "tail", "head"])
    {'top1@head': 1.0, 'top1@tail': 0.5}
    """
    correct = np.asarray(correct, dtype=bool).reshape(-1)
    groups = np.asarray(groups, dtype=str).reshape(-1)
    if correct.size != groups.size:
        raise XmdError(f"{correct.size} per-sample outcomes for {groups.size} group marks")
    return {f"top1@{g}": float(correct[groups == g].mean()) for g in group_order(groups)}


def cosine_scores(embeddings, prototypes) -> np.ndarray:
    """(samples x classes) cosines between each embedding and each class prototype.

    Examples
    --------
    >>> cosine_scores([[2.0, 0.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 3.0]]).round(4).tolist()
    [[1.0, 0.0], [0.7071, 0.7071]]
    """
    a = np.asarray(embeddings, dtype=np.float64)
    b = np.asarray(prototypes, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def class_means(rows, row_classes, n_classes: int) -> np.ndarray:
    """(n_classes x dim) mean of the rows of each class; an XmdError naming a class without rows.

    Examples
    --------
    >>> class_means([[1.0, 0.0], [3.0, 2.0], [0.0, 1.0]], [0, 0, 1], 2).tolist()
    [[2.0, 1.0], [0.0, 1.0]]
    """
    rows = np.asarray(rows, dtype=np.float64)
    row_classes = np.asarray(row_classes, dtype=np.int64).reshape(-1)
    counts = np.bincount(row_classes, minlength=n_classes)
    if (counts == 0).any():
        raise XmdError(f"class {int(np.argmin(counts))} has no rows to average")
    sums = np.zeros((n_classes, rows.shape[1]))
    np.add.at(sums, row_classes, rows)
    return sums / counts[:, None]
