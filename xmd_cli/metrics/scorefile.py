"""Score files written elsewhere, measured by xmd's scorer (`xmd evaluate --scores FILE`).

Accepted score-file lines (blank lines and lines starting with # are skipped; the
first data line fixes the layout and every line must follow it):
  `label score`               label 1/0 or target/nontarget
  `enroll test score`         Kaldi / WeSpeaker; labels come from the trial list
  `enroll test score label`   WeSpeaker's scoring output; the trial list, when
                              given, overrides the label column
Trial lists: VoxCeleb `1 enroll test` or Kaldi `enroll test target|nontarget`;
`label score` lines name no trial, so a trial list given with them is not used.
A score line must match a trial exactly (same enroll, test order), and every trial
must have a score: a scorer that silently drops trials measures a different list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.io import file_sha256
from xmd_cli.metrics.verification import verification_summary

_LABELS = {"1": True, "0": False, "target": True, "nontarget": False}


def _read_text(path: Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise XmdError(f"{path}: cannot read {what} ({e.strerror})") from None
    except UnicodeDecodeError:
        raise XmdError(f"{path}: {what} is not a UTF-8 text file") from None


def _columns(path: Path, what: str) -> tuple[np.ndarray, list[list[str]]]:
    """(1-based line numbers, columns of fields) of the data lines of a whitespace-separated file.

    Blank lines and lines starting with # are skipped; the first data line fixes the
    number of fields and a line with another number is an XmdError naming it.
    """
    text = _read_text(path, what)
    fast = _ascii_columns(path, text) if text.isascii() and "#" not in text else None
    return fast if fast is not None else _general_columns(path, text)


def _width_error(path: Path, number: int, fields: int, width: int) -> XmdError:
    return XmdError(f"{path}:{number}: {fields} fields, but the file's first line has {width}")


def _ascii_columns(path: Path, text: str):
    """The common case, 1M lines in well under a second: count each line's fields with numpy
    on the bytes (exactly as str.split would), then split the whole text once. Returns
    None for line endings other than \n, which the general reader handles."""
    raw = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    if raw.size == 0 or np.isin(raw, (11, 12, 13, 28, 29, 30, 31)).any():
        return None
    newline = raw == 10
    boundary = newline | (raw == 32) | (raw == 9)
    field_starts = np.flatnonzero(~boundary & np.concatenate(([True], boundary[:-1])))
    line_of_field = np.searchsorted(np.flatnonzero(newline), field_starts, side="right")
    fields_per_line = np.bincount(line_of_field, minlength=int(newline.sum()) + 1)
    data = np.flatnonzero(fields_per_line)
    if data.size == 0:
        return data, []
    width = int(fields_per_line[data[0]])
    wrong = np.flatnonzero(fields_per_line[data] != width)
    if wrong.size:
        line = data[wrong[0]]
        raise _width_error(path, int(line) + 1, int(fields_per_line[line]), width)
    tokens = text.split()
    return data + 1, [tokens[i::width] for i in range(width)]


def _general_columns(path: Path, text: str) -> tuple[np.ndarray, list[list[str]]]:
    numbers, rows = [], []
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if parts and not parts[0].startswith("#"):
            if rows and len(parts) != len(rows[0]):
                raise _width_error(path, number, len(parts), len(rows[0]))
            numbers.append(number)
            rows.append(parts)
    return np.array(numbers, dtype=np.int64), [list(column) for column in zip(*rows)]


def _labels(tokens: list[str], path: Path, numbers: np.ndarray) -> np.ndarray:
    # Look up each distinct token once; a million lines hold two or four of them.
    meaning = {token: _LABELS.get(token.lower()) for token in set(tokens)}
    if None in meaning.values():
        at = next(i for i, token in enumerate(tokens) if meaning[token] is None)
        raise XmdError(f"{path}:{numbers[at]}: label {tokens[at]!r} is not 1, 0, target or nontarget")
    targets = {token for token, is_target in meaning.items() if is_target}
    return np.fromiter((token in targets for token in tokens), dtype=bool, count=len(tokens))


def _scores(tokens: list[str], path: Path, numbers: np.ndarray) -> np.ndarray:
    try:
        values = np.array(tokens, dtype=np.float64)  # parses in C
    except ValueError:
        # Slow path, only to name the line that is not a number.
        for at, token in enumerate(tokens):
            try:
                float(token)
            except ValueError:
                raise XmdError(f"{path}:{numbers[at]}: score {token!r} is not a number") from None
        raise
    bad = ~np.isfinite(values)
    if bad.any():
        at = int(np.argmax(bad))
        raise XmdError(f"{path}:{numbers[at]}: score {tokens[at]!r} is not finite")
    return values


def _first_repeat(keys: list[tuple[str, str]]) -> tuple[int, int]:
    """Indices (first, second) of the first key that occurs twice."""
    seen: dict[tuple[str, str], int] = {}
    for at, key in enumerate(keys):
        if key in seen:
            return seen[key], at
        seen[key] = at
    raise AssertionError("no repeated key")


def read_trial_labels(path: Path) -> tuple[dict[tuple[str, str], int], np.ndarray, np.ndarray]:
    """({(enroll, test): index}, labels, line numbers) of a VoxCeleb or Kaldi trial list.

    The first line decides the format: a first field of 1 or 0 means VoxCeleb.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "trials.txt"
    >>> _ = path.write_text("# VoxCeleb layout\\n1 s1/a s1/b\\n0 s1/a s2/c\\n")
    >>> index, labels, lines = read_trial_labels(path)
    >>> index, labels.tolist(), lines.tolist()
    ({('s1/a', 's1/b'): 0, ('s1/a', 's2/c'): 1}, [True, False], [2, 3])
    """
    numbers, columns = _columns(path, "trial list")
    if not columns:
        raise XmdError(f"{path}: the trial list is empty")
    if len(columns) != 3:
        raise XmdError(f"{path}:{numbers[0]}: expected `1|0 enroll test` or `enroll test target|nontarget`, "
                       f"got {len(columns)} fields")
    if columns[0][0] in ("0", "1"):
        label_tokens, enroll, test = columns
    else:
        enroll, test, label_tokens = columns
    labels = _labels(label_tokens, path, numbers)
    keys = list(zip(enroll, test))
    index = {key: at for at, key in enumerate(keys)}
    if len(index) < len(keys):
        first, second = _first_repeat(keys)
        raise XmdError(f"{path}:{numbers[second]}: trial {keys[second][0]} {keys[second][1]} "
                       f"repeats line {numbers[first]}")
    return index, labels, numbers


def read_scores(scores_path: Path, trials_path: Path | None = None, *, with_names: bool = False) -> tuple:
    """(scores, labels, layout) of a score file, labels from `trials_path` where needed.

    `with_names` adds (enroll names, test names), None for `label score` lines, and
    puts the trials in the trial list's order when there is one (the bootstrap and
    `--compare` pair trials by position).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "trials.txt").write_text("s1/a s1/b target\\ns1/a s2/c nontarget\\n")
    >>> _ = (folder / "scores.txt").write_text("s1/a s2/c -0.25\\ns1/a s1/b 0.75\\n")
    >>> scores, labels, layout = read_scores(folder / "scores.txt", folder / "trials.txt")
    >>> scores.tolist(), labels.tolist(), layout
    ([-0.25, 0.75], [False, True], 'enroll test score')
    >>> read_scores(folder / "scores.txt", folder / "trials.txt", with_names=True)[0].tolist()  # list order
    [0.75, -0.25]
    """
    scores_path = Path(scores_path)
    numbers, columns = _columns(scores_path, "score file")
    if not columns:
        raise XmdError(f"{scores_path}: the score file is empty")
    width = len(columns)
    if width not in (2, 3, 4):
        first = " ".join(column[0] for column in columns)
        raise XmdError(f"{scores_path}:{numbers[0]}: expected `label score`, `enroll test score` or "
                       f"`enroll test score label`, got {first!r}")
    layout = {2: "label score", 3: "enroll test score", 4: "enroll test score label"}[width]
    if width == 2:
        found = (_scores(columns[1], scores_path, numbers), _labels(columns[0], scores_path, numbers), layout)
        return (*found, None, None) if with_names else found
    if width == 3 and trials_path is None:
        raise XmdError(f"{scores_path}: `enroll test score` lines carry no labels",
                       hint="pass the trial list the scores were made from")
    scores = _scores(columns[2], scores_path, numbers)
    keys = list(zip(columns[0], columns[1]))
    if trials_path is None:
        _no_repeats(keys, scores_path, numbers)
        found = scores, _labels(columns[3], scores_path, numbers), layout
        return (*found, columns[0], columns[1]) if with_names else found
    index, trial_labels, trial_numbers = read_trial_labels(Path(trials_path))
    try:
        positions = np.fromiter(map(index.get, keys), dtype=np.int64, count=len(keys))
    except TypeError:  # index.get gave None: a score line names no trial of the list
        at = next(i for i, key in enumerate(keys) if key not in index)
        raise XmdError(f"{scores_path}:{numbers[at]}: trial {keys[at][0]} {keys[at][1]} is not in the "
                       f"trial list {trials_path}",
                       hint="score files and trial lists must name utterances the same way "
                            "(check extensions and enroll/test order)") from None
    times_scored = np.bincount(positions, minlength=len(index))
    if (times_scored > 1).any():  # the same trial scored twice
        _no_repeats(keys, scores_path, numbers)
    if (times_scored == 0).any():
        at = int(np.argmax(times_scored == 0))
        enroll, test = next(k for k, i in index.items() if i == at)
        raise XmdError(f"{trials_path}:{trial_numbers[at]}: trial {enroll} {test} has no score in "
                       f"{scores_path} ({int((times_scored == 0).sum())} of {len(index)} trials are unscored)",
                       hint="score every trial of the list, or evaluate on the list that was scored")
    if with_names:
        in_list_order = np.empty_like(scores)
        in_list_order[positions] = scores
        return in_list_order, trial_labels, layout, [k[0] for k in index], [k[1] for k in index]
    return scores, trial_labels[positions], layout


def _no_repeats(keys: list[tuple[str, str]], path: Path, numbers: np.ndarray) -> None:
    if len(set(keys)) < len(keys):
        first, second = _first_repeat(keys)
        raise XmdError(f"{path}:{numbers[second]}: trial {keys[second][0]} {keys[second][1]} is scored "
                       f"twice (first at line {numbers[first]})")


def score_file(scores_path: Path, trials_path: Path | None = None, *, p_targets=(0.01, 0.05),
               c_miss: float = 1.0, c_fa: float = 1.0, det_png: Path | None = None,
               with_trials: bool = False) -> dict:
    """Verification metrics of an existing score file, JSON-ready for report.json.

    Returns the `verification_summary` keys plus task, backend ("score-file": the
    scores were made elsewhere), layout, the files and their sha256. With
    `det_png`, also draws the DET curve there. `with_trials` adds "per_trial":
    {scores, labels, enroll, test} (arrays, not JSON; see `read_scores(with_names=True)`).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "scores.txt"
    >>> _ = path.write_text("1 0.9\\n0 0.2\\n1 0.4\\n0 0.5\\n")
    >>> result = score_file(path, p_targets=(0.05,))
    >>> result["backend"], result["layout"], result["n_trials"], result["eer"]
    ('score-file', 'label score', 4, 0.5)
    """
    scores, labels, layout, enroll, test = read_scores(Path(scores_path), trials_path, with_names=True)
    summary = verification_summary(scores, labels, p_targets=p_targets, c_miss=c_miss, c_fa=c_fa,
                                   source=str(scores_path))
    result = {"task": "speaker-verification", "backend": "score-file", "layout": layout,
              "scores_file": str(scores_path), "scores_sha256": file_sha256(scores_path),
              "trials_file": str(trials_path) if trials_path is not None else None,
              "trials_sha256": file_sha256(trials_path) if trials_path is not None else None,
              **summary}
    if det_png is not None:
        from xmd_cli.metrics.plots import det_curve_png
        det_curve_png(Path(det_png), scores, labels, summary=summary, title=Path(scores_path).name)
        result["det_png"] = str(det_png)
    if with_trials:
        result["per_trial"] = {"scores": scores, "labels": labels, "enroll": enroll, "test": test}
    return result
