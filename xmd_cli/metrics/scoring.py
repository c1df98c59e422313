"""Score a trial list from embeddings: cosine, mean subtraction, AS-norm.

Back-ends (the name goes into every report, so a number always says how it was made):
- "cosine": cos(e, t) of the enrolment and test embeddings.
- "cosine+mean": both embeddings minus a mean vector (usually the mean of the
  training-set embeddings) before the cosine; it removes a direction every
  embedding shares, which otherwise inflates all scores alike.
- "cosine+asnorm(top=N)" (adaptive symmetric normalisation, Matejka et al. 2017):
  with S_e the cosines of e against every cohort embedding and mu_e, sigma_e the
  mean and population standard deviation of its N highest values (likewise for t),
      s' = ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t) / 2.
  The cohort is a matrix of training-set embeddings (usually one mean per speaker).
  With mean subtraction as well ("cosine+mean+asnorm(top=N)"), the cohort is
  shifted by the same mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmd_cli.data.manifest import Trial
from xmd_cli.errors import XmdError

NORMS = ("none", "mean", "asnorm")
_CHUNK = 65536  # trials or embeddings scored at once: bounds memory at any list size


@dataclass
class ScoredTrials:
    """The scores of a trial list, its labels, and the back-end that made them.

    Examples
    --------
    >>> scored = ScoredTrials(np.array([0.8, 0.1]), np.array([True, False]), "cosine")
    >>> scored.backend, scored.labels.tolist()
    ('cosine', [True, False])
    """

    scores: np.ndarray  # float64, one per trial, in trial order
    labels: np.ndarray  # bool, True for a target trial
    backend: str


def backend_name(norm: str = "none", *, mean: bool = False, top_n: int | None = None) -> str:
    """The back-end name a report carries, e.g. "cosine", "cosine+mean", "cosine+asnorm(top=300)".

    Examples
    --------
    >>> backend_name(), backend_name("mean"), backend_name("asnorm", mean=True, top_n=300)
    ('cosine', 'cosine+mean', 'cosine+mean+asnorm(top=300)')
    """
    if norm not in NORMS:
        raise XmdError(f"unknown score normalisation {norm!r}", hint="use one of " + ", ".join(NORMS))
    parts = ["cosine"]
    if mean or norm == "mean":
        parts.append("mean")
    if norm == "asnorm":
        parts.append(f"asnorm(top={top_n})")
    return "+".join(parts)


def trial_line_number(path: Path, index: int) -> int:
    """1-based line of the `index`-th trial in `path` (blank and # lines skipped, as read_trials does).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "trials.txt"
    >>> _ = path.write_text("# enroll test\\n1 a b\\n\\n0 a c\\n")
    >>> trial_line_number(path, 0), trial_line_number(path, 1)
    (2, 4)
    """
    seen = -1
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            seen += 1
            if seen == index:
                return number
    return seen + 1


def _embedding_matrix(embeddings: Mapping[str, np.ndarray], needed: list[str]) -> np.ndarray:
    rows = [np.asarray(embeddings[name], dtype=np.float64).reshape(-1) for name in needed]
    dims = {row.size for row in rows}
    if len(dims) != 1:
        raise XmdError(f"embeddings have different sizes ({', '.join(map(str, sorted(dims)))})",
                       hint="all embeddings of one evaluation must come from the same model")
    return np.stack(rows)


def _unit_rows(matrix: np.ndarray, what: str, names: list[str] | None = None) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        name = names[zero[0]] if names else f"row {zero[0]}"
        raise XmdError(f"{what}: embedding of {name!r} has zero length, so its cosine is undefined",
                       hint="after mean subtraction this means it equals the mean; check the extraction")
    return matrix / norms


def _index_trials(trials: list[Trial], known: Mapping[str, np.ndarray],
                  trials_path: Path | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    if not trials:
        raise XmdError(f"{trials_path or 'trial list'}: the trial list is empty",
                       hint="a verification needs at least one target and one non-target trial")
    position: dict[str, int] = {}
    enroll = np.empty(len(trials), dtype=np.int64)
    test = np.empty(len(trials), dtype=np.int64)
    for i, trial in enumerate(trials):
        for name, out in ((trial.enroll, enroll), (trial.test, test)):
            if name not in position:
                if name not in known:
                    where = f"{trials_path}:{trial_line_number(trials_path, i)}" if trials_path \
                        else f"trial {i + 1}"
                    raise XmdError(f"{where}: utterance {name!r} has no embedding",
                                   hint="the trial list must name samples of the evaluated data set")
                position[name] = len(position)
            out[i] = position[name]
    return list(position), enroll, test


def _rowwise_cosine(unit: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    scores = np.empty(left.size)
    for start in range(0, left.size, _CHUNK):
        a, b = left[start:start + _CHUNK], right[start:start + _CHUNK]
        scores[start:start + _CHUNK] = np.einsum("ij,ij->i", unit[a], unit[b])
    return scores


def cohort_statistics(unit: np.ndarray, cohort_unit: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std of each row's `top_n` highest cosines against the cohort.

    Both `unit` and `cohort_unit` hold unit-length rows.

    Examples
    --------
    >>> cohort = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    >>> means, stds = cohort_statistics(np.eye(2), cohort, top_n=2)
    >>> means.round(4).tolist(), stds.round(4).tolist()
    ([0.8, 0.9], [0.2, 0.1])
    """
    means = np.empty(unit.shape[0])
    stds = np.empty(unit.shape[0])
    for start in range(0, unit.shape[0], _CHUNK // 16):
        block = unit[start:start + _CHUNK // 16] @ cohort_unit.T
        # np.partition finds the top N without sorting the whole row.
        top = np.partition(block, block.shape[1] - top_n, axis=1)[:, -top_n:]
        means[start:start + top.shape[0]] = top.mean(axis=1)
        stds[start:start + top.shape[0]] = top.std(axis=1)
    return means, stds


def score_trials(embeddings: Mapping[str, np.ndarray], trials: list[Trial], *, norm: str = "none",
                 mean: np.ndarray | None = None, cohort: np.ndarray | None = None, top_n: int = 100,
                 trials_path: Path | None = None) -> ScoredTrials:
    """Score `trials` with the back-end `norm` ("none", "mean" or "asnorm").

    `embeddings` maps every utterance id a trial names to its embedding. `mean`
    (required for "mean", optional for "asnorm") is subtracted from every
    embedding; `cohort` (n_cohort x dim, required for "asnorm") supplies the
    normalisation statistics. `trials_path` lets an unknown utterance be named by
    its line in the trial file.

    Examples
    --------
    >>> embeddings = {"a": np.array([1.0, 0.0]), "b": np.array([1.0, 1.0]), "c": np.array([0.0, 1.0])}
    >>> trials = [Trial(1, "a", "b"), Trial(0, "a", "c")]
    >>> scored = score_trials(embeddings, trials)
    >>> scored.scores.round(4).tolist(), scored.labels.tolist(), scored.backend
    ([0.7071, 0.0], [True, False], 'cosine')
    >>> score_trials(embeddings, trials, norm="mean", mean=np.array([0.5, 0.5])).scores.round(4).tolist()
    [0.0, -1.0]
    """
    backend = backend_name(norm, mean=mean is not None, top_n=top_n)
    names, enroll, test = _index_trials(trials, embeddings, trials_path)
    matrix = _embedding_matrix(embeddings, names)
    if norm == "mean" and mean is None:
        raise XmdError("score normalisation 'mean' needs a mean embedding (of the training set)")
    if mean is not None:
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        if mean.size != matrix.shape[1]:
            raise XmdError(f"the mean embedding has {mean.size} values, the embeddings {matrix.shape[1]}")
        matrix = matrix - mean
    unit = _unit_rows(matrix, "scoring", names)
    scores = _rowwise_cosine(unit, enroll, test)
    if norm == "asnorm":
        if cohort is None:
            raise XmdError("score normalisation 'asnorm' needs a cohort of training-set embeddings")
        cohort = np.asarray(cohort, dtype=np.float64)
        if cohort.ndim != 2 or cohort.shape[1] != matrix.shape[1]:
            raise XmdError(f"the AS-norm cohort must be a matrix of {matrix.shape[1]}-dimensional "
                           f"embeddings, got shape {cohort.shape}")
        if not 2 <= top_n <= cohort.shape[0]:
            raise XmdError(f"evaluation.asnorm_top_n = {top_n}, but the cohort has {cohort.shape[0]} "
                           "embeddings", hint=f"set evaluation.asnorm_top_n between 2 and {cohort.shape[0]}")
        if mean is not None:
            cohort = cohort - mean
        mu, sigma = cohort_statistics(unit, _unit_rows(cohort, "AS-norm cohort"), top_n)
        # A zero spread (a cohort of identical embeddings) cannot normalise anything.
        if (sigma == 0).any():
            raise XmdError("AS-norm: the top cohort scores of an utterance are all equal, so they "
                           "cannot normalise its scores", hint="use a larger, more varied cohort")
        scores = 0.5 * ((scores - mu[enroll]) / sigma[enroll] + (scores - mu[test]) / sigma[test])
    labels = np.fromiter((t.target == 1 for t in trials), dtype=bool, count=len(trials))
    return ScoredTrials(scores=scores, labels=labels, backend=backend)
