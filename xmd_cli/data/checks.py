"""Checks every adapter's output alike before `prepare` writes a manifest.

Adapters only list what a dataset names; here each listed file is opened (headers
only, see `xmd_cli.data.media`) and each problem becomes a `Problem` for
prepare-report.json. A problem that makes a sample unusable sets `sample_id`, and
`prepare` drops that sample (or, with --strict, stops).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from xmd_cli.data.adapters import Problem
from xmd_cli.data.manifest import Sample, Trial
from xmd_cli.data.media import audio_header, image_issue, segment_issue

EXAMPLES_PER_KIND = 10
CHUNK = 256  # files a thread checks per task

Progress = Callable[[str, int, int | None], None]


def _source(sample: Sample) -> str:
    """' (listed at wav.scp:12)' when the adapter recorded where the sample came from."""
    source = sample.info.get("source") if isinstance(sample.info, dict) else None
    return f" (listed at {source})" if source else ""


def _map_with_progress(function, items: list, pool: ThreadPoolExecutor, progress: Progress | None,
                       done: int, total: int) -> tuple[list, int]:
    """`[function(x) for x in items]` on the pool, in chunks: one future per file costs
    more than a header read on a local disk."""
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    results = []
    for chunk_results in pool.map(lambda chunk: [function(x) for x in chunk], chunks):
        results.extend(chunk_results)
        done += len(chunk_results)
        if progress:
            progress("check", done, total)
    return results, done


def duplicate_id_problems(samples: list[Sample]) -> list[Problem]:
    """An id listed twice is ambiguous (which file does a trial mean?): every copy is dropped."""
    counts = Counter(s.id for s in samples)
    sources: dict[str, list[str]] = defaultdict(list)
    for s in samples:
        if counts[s.id] > 1:
            sources[s.id].append(s.info.get("source") or s.audio or (s.images[0] if s.images else "?"))
    return [Problem("duplicate-id", sample_id,
                    f"sample id {sample_id!r} is listed {counts[sample_id]} times ({', '.join(where)}); "
                    "ids must be unique: rename or remove the copies", sample_id=sample_id)
            for sample_id, where in sources.items()]


def check_samples(samples: list[Sample], root: Path, progress: Progress | None = None, *,
                  workers: int = 8, rates: Counter | None = None) -> list[Problem]:
    """Duplicate ids, missing files, unreadable audio or images, segments past the end.

    Each distinct file is checked once (video frames shared by many utterances, a
    recording cut into many segments). Files are checked by a few threads, in
    chunks: on network storage each header read waits on the network, not the CPU.
    `progress("check", done, total)` is called after each chunk of files. `rates`,
    when given, counts the readable audio files by sample rate (for `sample_rate_warning`).
    """
    # Plain strings, not Path objects: pathlib's parsing was about a third of the
    # time of checking 6,500 local files.
    root = str(root)
    problems = duplicate_id_problems(samples)
    audio_paths = list(dict.fromkeys(os.path.join(root, s.audio) for s in samples if s.audio))
    image_paths = list(dict.fromkeys(os.path.join(root, i) for s in samples for i in s.images))
    total = len(audio_paths) + len(image_paths)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        headers, done = _map_with_progress(audio_header, audio_paths, pool, progress, 0, total)
        image_issues, _ = _map_with_progress(image_issue, image_paths, pool, progress, done, total)
    header_of = dict(zip(audio_paths, headers))
    if rates is not None:
        rates.update(info.samplerate for info, issue in headers if info is not None)
    image_issue_of = dict(zip(image_paths, image_issues))

    for s in samples:
        if not s.audio and not s.images and not s.text:
            problems.append(Problem("no-media", s.id, f"sample {s.id!r} names no audio, image or text"
                                    f"{_source(s)}", sample_id=s.id))
        if s.audio:
            path = os.path.join(root, s.audio)
            info, issue = header_of[path]
            if issue is None and s.segment is not None:
                issue = segment_issue(path, s.segment, info.frames / info.samplerate)
            if issue:
                problems.append(Problem(issue.kind, s.id, issue.reason + _source(s), sample_id=s.id))
        for image in s.images:
            issue = image_issue_of[os.path.join(root, image)]
            if issue:
                problems.append(Problem(issue.kind, s.id, issue.reason + _source(s), sample_id=s.id))
    return problems


def sample_rate_warning(rates: Counter) -> str | None:
    """Words for audio at several sample rates, or None. Not a problem: every reader resamples to
    the student's rate, but a corpus that mixes 8 kHz telephone and 16 kHz speech trains and scores
    the two apart (the 8 kHz files carry nothing above 4 kHz), which a user should know."""
    if len(rates) < 2:
        return None
    listed = ", ".join(f"{n} file(s) at {rate} Hz" for rate, n in sorted(rates.items(), key=lambda kv: -kv[1]))
    return (f"mixed sample rates: {listed}; each is resampled to the student's rate (student.sample_rate), "
            "but band-limited files stay band-limited: resample the corpus to one rate if that is not intended")


def unknown_trial_problems(trials: dict[str, list[Trial]], known_ids: set[str]) -> list[Problem]:
    """One problem per id a trial list names that the data does not hold (its trials are dropped)."""
    problems = []
    for name, trial_list in trials.items():
        unknown = Counter(i for t in trial_list for i in (t.enroll, t.test) if i not in known_ids)
        for sample_id, n in unknown.items():
            problems.append(Problem("unknown-trial-id", f"trial list {name}",
                                    f"trial list {name!r} names {sample_id!r} in {n} trial(s), but no sample "
                                    "of that id was listed (or it was left out: see the other problems); "
                                    "those trials are dropped"))
    return problems


def build_report(problems: Iterable[Problem], *, samples_in: int, samples_out: int,
                 dropped_trials: dict[str, int]) -> dict:
    """prepare-report.json: counts per kind and the first examples of each (JSON-serialisable)."""
    by_kind: dict[str, dict] = {}
    dropped_by_kind: dict[str, set[str]] = defaultdict(set)
    total = 0
    for p in problems:
        total += 1
        entry = by_kind.setdefault(p.kind, {"count": 0, "samples_affected": 0, "examples": []})
        entry["count"] += 1
        if p.sample_id is not None:
            dropped_by_kind[p.kind].add(p.sample_id)
        if len(entry["examples"]) < EXAMPLES_PER_KIND:
            entry["examples"].append({"where": p.where, "detail": p.detail, "sample_id": p.sample_id})
    for kind, ids in dropped_by_kind.items():
        by_kind[kind]["samples_affected"] = len(ids)
    return {
        "samples_in": samples_in,
        "samples_out": samples_out,
        "samples_dropped": samples_in - samples_out,
        "trials_dropped": dict(dropped_trials),
        "problems": total,
        "by_kind": dict(sorted(by_kind.items())),
    }
