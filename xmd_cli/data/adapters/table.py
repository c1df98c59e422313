"""table: a user's CSV, TSV or JSONL listing one sample a row.

`data.columns` maps manifest fields to column names (id, label, split, audio,
images, text, segment_start, segment_end); a field left unmapped reads the
column of its own name when there is one. `id` and `label` are required. Paths
are relative to `data.root`, or to the table's folder when root is not set.
`images` holds several paths separated by `;` in CSV/TSV, or a list in JSONL.
A row that does not parse is reported as a `bad-line` problem and skipped; the
others go on. Columns no field reads are kept in `Sample.info["columns"]` for
analysis (e.g. a gender column for a per-group report).
"""

from __future__ import annotations

import csv
import difflib
import json
import math
from pathlib import Path
from typing import Callable, Iterator

from xmd_cli.data.adapters import AdapterOutput, Problem
from xmd_cli.data.manifest import SPLITS, Sample, read_trials
from xmd_cli.data.splits import assign_splits, labels_in_trials
from xmd_cli.errors import XmdError
from xmd_cli.recipe import DataConfig

FIELDS = ("id", "label", "split", "audio", "images", "text", "segment_start", "segment_end")
REQUIRED = ("id", "label")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}


class BadRow(ValueError):
    """A row that cannot become a sample; its message is the problem's detail."""


def _rows_delimited(path: Path, delimiter: str) -> tuple[list[str], Iterator[tuple[int, dict | str]]]:
    """Header and (line, row dict or error text); a quoted field may span lines."""
    handle = path.open(encoding="utf-8-sig", newline="")
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = [name.strip() for name in next(reader, [])]
    except csv.Error as e:
        handle.close()
        raise XmdError(f"{path}:1: cannot read the header ({e})") from None
    except UnicodeDecodeError:
        handle.close()
        raise XmdError(f"{path}: the table is not UTF-8 text", hint="save it as UTF-8") from None
    if not header or not any(header):
        handle.close()
        raise XmdError(f"{path}: the table is empty; its first line must name the columns")

    def rows():
        with handle:
            line = reader.line_num
            while True:
                start = line + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    line = reader.line_num
                    yield start, f"not valid {path.suffix[1:].upper()} ({e})"
                    continue
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    yield start, f"{len(row)} fields, the header names {len(header)}"
                    continue
                yield start, dict(zip(header, row))
    return header, rows()


def _rows_jsonl(path: Path) -> tuple[list[str], list[tuple[int, dict | str]]]:
    rows: list[tuple[int, dict | str]] = []
    columns: dict[str, None] = {}  # ordered union of keys
    with path.open(encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                rows.append((number, f"not valid JSON ({e.msg} at column {e.colno})"))
                continue
            if not isinstance(record, dict):
                rows.append((number, f"expected a JSON object, got {type(record).__name__}"))
                continue
            columns.update(dict.fromkeys(record))
            rows.append((number, record))
    return list(columns), rows


def resolve_columns(path: Path, columns: list[str], mapping: dict[str, str]) -> dict[str, str]:
    """Manifest field -> column, or an XmdError naming what is missing and what exists."""
    for field in mapping:
        if field not in FIELDS:
            close = difflib.get_close_matches(field, FIELDS, n=1)
            raise XmdError(f"data.columns.{field}: {field!r} is not a manifest field",
                           hint=(f"did you mean '{close[0]}'? " if close else "") + "fields: " + ", ".join(FIELDS))
    resolved = {}
    for field in FIELDS:
        column = mapping.get(field, field)
        if column in columns:
            resolved[field] = column
        elif field in mapping or field in REQUIRED:
            by_case = [c for c in columns if c.lower() == column.lower()]
            close = by_case or difflib.get_close_matches(column, columns, n=1, cutoff=0.5)
            how = (f"data.columns.{field} names it" if field in mapping
                   else f"map one with --set data.columns.{field}=COLUMN")
            raise XmdError(f"{path}: no column {column!r} for the sample {field} ({how}); "
                           f"columns: {', '.join(columns) or '(none)'}",
                           hint=f"did you mean {close[0]!r}?" if close else None)
    return resolved


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise BadRow(f"expected a single value, got {json.dumps(value)[:60]}")
    return str(value).strip()


def _images(value) -> list[str]:
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise BadRow("images must be a list of paths")
        return [v.strip() for v in value if v.strip()]
    return [part.strip() for part in _text(value).split(";") if part.strip()]


def _seconds(value, name: str) -> float:
    try:
        number = float(_text(value))
    except ValueError:
        raise BadRow(f"{name} {value!r} is not a number of seconds") from None
    if not math.isfinite(number) or number < 0:
        raise BadRow(f"{name} {value!r} must be a finite number of seconds >= 0")
    return number


def row_to_sample(row: dict, fields: dict[str, str]) -> Sample:
    """One row -> one sample, or BadRow saying what is wrong with it."""
    get = lambda field: row.get(fields[field]) if field in fields else None  # noqa: E731
    sample_id, label = _text(get("id")), _text(get("label"))
    if not sample_id or not label:
        raise BadRow(f"empty {'id' if not sample_id else 'label'}")
    split = _text(get("split")) or None
    if "split" in fields and split not in SPLITS:
        raise BadRow(f"split {split or ''!r} is not one of {', '.join(SPLITS)}")
    audio, text = _text(get("audio")) or None, _text(get("text")) or None
    images = _images(get("images"))
    start, end = _text(get("segment_start")), _text(get("segment_end"))
    segment = None
    if start or end:
        if not (start and end):
            raise BadRow("segment_start and segment_end go together; one of them is empty")
        segment = (_seconds(start, "segment_start"), _seconds(end, "segment_end"))
        if segment[1] <= segment[0]:
            raise BadRow(f"segment_end {segment[1]} is not after segment_start {segment[0]}")
        if audio is None:
            raise BadRow("a segment needs an audio file")
    if audio is None and not images and text is None:
        raise BadRow("the row names no audio, images or text")
    used = set(fields.values())
    extra = {k: v for k, v in row.items() if k not in used and v not in (None, "")}
    return Sample(id=sample_id, label=label, split=split or "train", audio=audio, segment=segment,
                  images=images, text=text, info={"columns": extra} if extra else {})


def read(config: DataConfig, workdir: Path, progress: Callable[[str, int, int], None] | None = None) -> AdapterOutput:
    if not config.table:
        raise XmdError("data.table: the table adapter needs a CSV, TSV or JSONL file",
                       hint="--set data.table=path/to/samples.csv")
    path = Path(config.table)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise XmdError(f"data.table: {path} is not .csv, .tsv or .jsonl",
                       hint="rename the file to say its format")
    if not path.is_file():
        raise XmdError(f"data.table: {path} does not exist",
                       hint="data.table is taken relative to the directory xmd runs from")
    try:
        columns, rows = _rows_jsonl(path) if kind == "jsonl" else \
            _rows_delimited(path, "\t" if kind == "tsv" else ",")
        fields = resolve_columns(path, columns, config.columns)
        samples, problems, line_of = [], [], {}
        for number, row in rows:
            where = f"{path}:{number}"
            try:
                if isinstance(row, str):
                    raise BadRow(row)
                sample = row_to_sample(row, fields)
            except BadRow as e:
                problems.append(Problem("bad-line", where, str(e)))
                continue
            if sample.id in line_of:
                problems.append(Problem("duplicate-id", where,
                                        f"id {sample.id!r} is already on line {line_of[sample.id]}; keeping that one"))
                continue
            line_of[sample.id] = number
            samples.append(sample)
    except UnicodeDecodeError:
        raise XmdError(f"{path}: the table is not UTF-8 text", hint="save it as UTF-8") from None
    if progress:
        progress("scan", len(samples), len(samples))
    if not samples:
        first = "; ".join(f"{p.where}: {p.detail}" for p in problems[:3])
        raise XmdError(f"{path}: no usable row" + (f" ({len(problems)} bad: {first})" if problems else ""),
                       hint="each row needs an id, a label and at least one of audio, images or text")
    trials = {}
    for number, name in enumerate(config.trials):
        key = Path(name).stem if Path(name).stem not in trials else f"{Path(name).stem}-{number}"
        trials[key] = read_trials(Path(name), set(line_of))
    if config.split or "split" not in fields:
        test_labels = labels_in_trials(trials, {s.id: s.label for s in samples})
        assign_splits(samples, validation_fraction=config.validation_fraction, seed=config.seed,
                      forced=config.split, test_labels=test_labels,
                      test_fraction=config.test_fraction)
    root = Path(config.root) if config.root else path.parent
    return AdapterOutput(samples=samples, root=root, trials=trials, problems=problems)
