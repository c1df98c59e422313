"""A Kaldi or WeSpeaker data directory, read as it is.

    wav.scp      `utt path` (or `recording path` with a segments file)
    utt2spk      `utt speaker`                       the label
    segments     `utt recording start end`           optional, seconds
    images.scp   `utt image [image ...]`             optional, xmd's own list (face frames)
    text         `utt words ...`                     optional, Kaldi's transcript file
    trials       `enroll test target|nontarget`      optional, Kaldi/WeSpeaker trial list

or, without wav.scp, WeSpeaker's `raw.list`: one JSON object a line,
`{"key": "utt", "wav": "path", "spk": "speaker"}` (its shard.list of tar files is not read).

`data.root` is the directory; `data.trials` may add trial lists (VoxCeleb or
Kaldi format, detected per file) naming utterance ids. A relative path in wav.scp means, as in Kaldi, relative to the
directory the tools run from: it is tried there first, then in the data directory.
Entries xmd cannot open (a pipe `cmd |`, an archive offset `x.ark:123`), lines that
do not parse and utterances without a speaker are reported, never fatal by
themselves (`--strict` makes them so).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from xmd_cli.data.adapters import AdapterOutput, Problem
from xmd_cli.data.adapters.voxceleb import (
    dataset_root,
    finish,
    read_trial_lists,
    relative_to_root,
)
from xmd_cli.data.manifest import Sample, Trial
from xmd_cli.errors import XmdError
from xmd_cli.recipe import DataConfig

ARK_OFFSET = re.compile(r"^(?P<file>.+):\d+(\[[^\]]*\])?$")  # foo.ark:1234 or foo.ark:1234[0:100]


def _lines(path: Path):
    """(line number, text) of each non-blank line of a Kaldi table file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise XmdError(f"{path}: not UTF-8 text", hint="Kaldi table files are plain text, one entry a line") from None
    except OSError as e:
        raise XmdError(f"{path}: cannot read ({e.strerror})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield number, line.strip()


def _bad_line(path: Path, number: int, line: str, expected: str, sample_id: str | None = None) -> Problem:
    return Problem("bad-line", f"{path.name}:{number}",
                   f"{path}:{number}: expected `{expected}`, got {line[:80]!r}; the line is skipped",
                   sample_id=sample_id)


def _resolve(entry: str, root: Path) -> Path:
    """A wav.scp path: absolute; else relative to the current directory (Kaldi's meaning), else to root."""
    path = Path(entry)
    if path.is_absolute() or path.exists() or not (root / path).exists():
        return Path(os.path.abspath(path))
    return root / path


def _unreadable_entry(entry: str, key: str) -> str | None:
    """Why a wav.scp entry is not a file xmd can open, or None."""
    # Kaldi's wav-copy takes any rxfilename (pipe, archive offset) and writes a plain wav.
    dump = (f"dump it once to a wav file, e.g. `wav-copy '{entry}' wavs/{key}.wav` (Kaldi; "
            f"or run the command into `sox -t wav - wavs/{key}.wav`), and list that file in wav.scp")
    if entry.endswith("|"):
        return "is a pipe command; xmd reads audio files only: " + dump
    if entry == "-":
        return "reads standard input; xmd reads audio files only: " + dump
    if ARK_OFFSET.match(entry) and not Path(entry).exists():
        return "is an offset into a Kaldi archive; xmd reads audio files only: " + dump
    return None


class _Table:
    """The first entry of each key, with duplicate keys reported (dropped if they disagree)."""

    def __init__(self, path: Path, problems: list[Problem]):
        self.path, self.problems = path, problems
        self.values: dict[str, object] = {}
        self.where: dict[str, str] = {}
        self.seen: set[str] = set()  # every key named, also on lines that were skipped

    def add(self, key: str, value, number: int, *, disqualify_on_conflict: bool = True) -> None:
        where = f"{self.path.name}:{number}"
        if key in self.values:
            conflict = self.values[key] != value
            self.problems.append(Problem(
                "duplicate-id", where,
                f"{self.path}:{number}: {key!r} is listed again (first at {self.where[key]})"
                + (" with a different value; the utterance is dropped" if conflict else "; the repeat is ignored"),
                sample_id=key if conflict and disqualify_on_conflict else None))
            return
        self.values[key], self.where[key] = value, where


def _read_wav_scp(path: Path, root: Path, problems: list[Problem], has_segments: bool) -> _Table:
    table = _Table(path, problems)
    for number, line in _lines(path):
        parts = line.split(maxsplit=1)
        table.seen.add(parts[0])
        if len(parts) != 2:
            problems.append(_bad_line(path, number, line, "key path", parts[0] if not has_segments else None))
            continue
        key, entry = parts[0], parts[1].strip()
        reason = _unreadable_entry(entry, key)
        if reason:
            problems.append(Problem("unreadable-audio", f"{path.name}:{number}", f"{path}:{number}: {key}: "
                                    f"`{entry}` {reason}",
                                    sample_id=None if has_segments else key))
            table.add(key, None, number)
            continue
        table.add(key, _resolve(entry, root), number)
    return table


def _read_segments(path: Path, recordings: _Table, problems: list[Problem]) -> _Table:
    table = _Table(path, problems)
    expected = "utt recording start end"
    for number, line in _lines(path):
        parts = line.split()
        table.seen.add(parts[0])
        if len(parts) != 4:
            problems.append(_bad_line(path, number, line, expected, parts[0]))
            continue
        utt, recording = parts[0], parts[1]
        try:
            start, end = float(parts[2]), float(parts[3])
        except ValueError:
            problems.append(_bad_line(path, number, line, expected + " (seconds)", utt))
            continue
        if end == -1:
            problems.append(Problem("bad-line", f"{path.name}:{number}", f"{path}:{number}: end -1 (to the end "
                                    "of the recording) is not supported; write the end time in seconds", utt))
            continue
        if not 0 <= start < end:
            problems.append(Problem("bad-segment", f"{path.name}:{number}", f"{path}:{number}: segment "
                                    f"[{start}, {end}] must satisfy 0 <= start < end", utt))
            continue
        if recording not in recordings.values:
            problems.append(Problem("missing-recording", f"{path.name}:{number}", f"{path}:{number}: {utt} "
                                    f"names recording {recording!r}, which wav.scp does not list", utt))
            continue
        audio = recordings.values[recording]
        if audio is None:  # an entry xmd cannot open, reported with wav.scp
            continue
        table.add(utt, (audio, (start, end)), number)
    return table


def _read_lists(path: Path, min_fields: int, expected: str, problems: list[Problem]) -> _Table:
    """A `key value...` file (utt2spk, images.scp, text): the value is the rest of the line."""
    table = _Table(path, problems)
    for number, line in _lines(path):
        parts = line.split(maxsplit=1)
        if len(parts) < min_fields:
            problems.append(_bad_line(path, number, line, expected))
            continue
        table.add(parts[0], parts[1].strip() if len(parts) > 1 else "", number)
    return table


def _read_kaldi_trials(path: Path, problems: list[Problem]) -> list[Trial]:
    """Kaldi/WeSpeaker `enroll test target|nontarget` lines."""
    trials = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 3 or parts[2] not in ("target", "nontarget"):
            problems.append(_bad_line(path, number, line, "enroll test target|nontarget"))
            continue
        trials.append(Trial(int(parts[2] == "target"), parts[0], parts[1]))
    return trials


def _required(root: Path, name: str, what: str) -> Path:
    path = root / name
    if not path.is_file():
        raise XmdError(f"{path}: not found; a Kaldi data directory needs {name} ({what})",
                       hint="set data.root to the data directory that holds wav.scp and utt2spk "
                            "(or WeSpeaker's raw.list)")
    return path


def _read_data_dir(root: Path, problems: list[Problem]) -> list[Sample]:
    """Samples of a Kaldi data directory: wav.scp, utt2spk and the optional tables."""
    wav_scp = _required(root, "wav.scp", "`utt path` lines")
    utt2spk_path = _required(root, "utt2spk", "`utt speaker` lines")
    has_segments = (root / "segments").is_file()

    recordings = _read_wav_scp(wav_scp, root, problems, has_segments)
    if has_segments:
        audio = _read_segments(root / "segments", recordings, problems)
    else:
        audio = _Table(wav_scp, problems)
        for key, path in recordings.values.items():
            if path is not None:
                audio.values[key], audio.where[key] = (path, None), recordings.where[key]
        audio.seen = recordings.seen
    speakers = _read_lists(utt2spk_path, 2, "utt speaker", problems)
    images = (_read_lists(root / "images.scp", 2, "utt image [image ...]", problems)
              if (root / "images.scp").is_file() else None)
    texts = _read_lists(root / "text", 1, "utt words ...", problems) if (root / "text").is_file() else None

    samples = []
    for utt, (path, segment) in audio.values.items():
        where = audio.where[utt]
        speaker = speakers.values.get(utt)
        if not speaker:
            problems.append(Problem("no-speaker", where, f"{root}/{where}: "
                                    f"{utt} has no speaker in utt2spk; it is left out", sample_id=utt))
            continue
        frames = [relative_to_root(_resolve(p, root), root) for p in images.values[utt].split()] \
            if images and utt in images.values else []
        text = (texts.values.get(utt) or None) if texts else None
        samples.append(Sample(id=utt, label=str(speaker), split="train", audio=relative_to_root(path, root),
                              segment=segment, images=frames, text=text, info={"source": where}))
    for table, name in ((speakers, "utt2spk"), (images, "images.scp"), (texts, "text")):
        for utt in (table.values if table else {}):
            if utt not in audio.seen:
                problems.append(Problem("unknown-utterance", table.where[utt],
                                        f"{root / name}: {utt!r} ({table.where[utt]}) has no audio in wav.scp"
                                        + (" / segments" if has_segments else "") + "; the line is ignored"))
    return samples


def _raw_list_entry(line: str) -> tuple[str, str, str]:
    """(key, wav, spk) of one raw.list line, or ValueError saying what is wrong."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    missing = [k for k in ("key", "wav", "spk") if not isinstance(record.get(k), str) or not record[k].strip()]
    if missing:
        raise ValueError(f"no {', '.join(missing)} (WeSpeaker raw.list lines are "
                         '{"key": "utt", "wav": "path", "spk": "speaker"})')
    return record["key"].strip(), record["wav"].strip(), record["spk"].strip()


def _read_raw_list(path: Path, root: Path, problems: list[Problem]) -> list[Sample]:
    """Samples of a WeSpeaker raw.list: one JSON object a line with key, wav and spk."""
    table = _Table(path, problems)
    for number, line in _lines(path):
        try:
            key, wav, speaker = _raw_list_entry(line)
        except ValueError as e:
            problems.append(Problem("bad-line", f"{path.name}:{number}", f"{path}:{number}: {e}; the line is skipped"))
            continue
        table.add(key, (_resolve(wav, root), speaker), number)
    return [Sample(id=key, label=speaker, split="train", audio=relative_to_root(wav, root),
                   info={"source": table.where[key]}) for key, (wav, speaker) in table.values.items()]


def read(config: DataConfig, workdir: Path, progress=None) -> AdapterOutput:
    root = dataset_root(config, "a Kaldi data directory (wav.scp, utt2spk) or a WeSpeaker one (raw.list)")
    problems: list[Problem] = []
    # WeSpeaker's raw format lists everything in raw.list; a directory with wav.scp is read the Kaldi way.
    if not (root / "wav.scp").is_file() and (root / "raw.list").is_file():
        samples = _read_raw_list(root / "raw.list", root, problems)
    else:
        samples = _read_data_dir(root, problems)
    if progress:
        progress("scan", len(samples), len(samples))

    trials: dict[str, list[Trial]] = {}
    if (root / "trials").is_file():
        kaldi_trials = _read_kaldi_trials(root / "trials", problems)
        if kaldi_trials:
            trials["trials"] = kaldi_trials
    for name, trial_list in read_trial_lists(config.trials, root, strip_extension=False).items():
        if name in trials:
            raise XmdError(f"data.trials: a list named {name!r} clashes with {root / 'trials'} "
                           "(trial lists are named by file stem)", hint="rename the file")
        trials[name] = trial_list
    return finish(samples, root, trials, problems, config)
