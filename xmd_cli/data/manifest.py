"""The manifest: one sample a line, the contract between `prepare` and every later stage.

A work directory prepared by `xmd prepare` holds
  manifest.jsonl   one JSON object a line (see `Sample`), paths relative to the dataset root
  labels.json      the label map, label -> class index (sorted labels, so it is stable)
  dataset.json     where the data lives (root), which adapter read it, counts, trial lists
  trials/NAME.txt  trial lists in VoxCeleb format, `1 enroll_id test_id`, by sample id
                   (written so; `read_trials` also reads Kaldi `enroll test target|nontarget`)

Later stages read it with `read_manifest(workdir)`; nothing else parses these files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xmd_cli import __version__
from xmd_cli.errors import XmdError
from xmd_cli.io import write_json, write_text

SPLITS = ("train", "validation", "test")
MANIFEST = "manifest.jsonl"
LABELS = "labels.json"
DATASET = "dataset.json"
TRIALS_DIR = "trials"


@dataclass
class Sample:
    """One sample: what a later stage may read about it.

    `info` carries analysis-only metadata (generator attributes, the degradation
    applied to a demo sample, the source line). No stage reads it as an input:
    only checks and reports that measure a stage do.
    """

    id: str
    label: str
    split: str
    audio: str | None = None
    segment: tuple[float, float] | None = None  # seconds within `audio`
    images: list[str] = field(default_factory=list)
    text: str | None = None
    info: dict = field(default_factory=dict)

    def to_json(self) -> str:
        record = {k: v for k, v in asdict(self).items() if v not in (None, [], {})}
        if self.segment is not None:
            record["segment"] = list(self.segment)
        return json.dumps(record, ensure_ascii=False, sort_keys=False)

    @classmethod
    def from_record(cls, record: dict, where: str) -> "Sample":
        missing = [k for k in ("id", "label", "split") if k not in record]
        if missing:
            raise XmdError(f"{where}: sample lacks {', '.join(missing)}",
                           hint="every manifest line needs id, label and split")
        unknown = set(record) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise XmdError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}",
                           hint="manifest fields: " + ", ".join(cls.__dataclass_fields__))
        if record["split"] not in SPLITS:
            raise XmdError(f"{where}: split {record['split']!r} is not one of {', '.join(SPLITS)}")
        segment = record.get("segment")
        if segment is not None:
            if not (isinstance(segment, list) and len(segment) == 2):
                raise XmdError(f"{where}: segment must be [start, end] in seconds, got {segment!r}")
            segment = (float(segment[0]), float(segment[1]))
        return cls(id=str(record["id"]), label=str(record["label"]), split=record["split"],
                   audio=record.get("audio"), segment=segment,
                   images=list(record.get("images", [])), text=record.get("text"),
                   info=dict(record.get("info", {})))


@dataclass(frozen=True)
class Trial:
    target: int  # 1 same identity, 0 different
    enroll: str  # sample id
    test: str  # sample id


@dataclass
class Manifest:
    workdir: Path
    root: Path
    samples: list[Sample]
    labels: dict[str, int]
    trials: dict[str, list[Trial]]
    dataset: dict

    def path(self, relative: str) -> Path:
        """Absolute path of a file named in the manifest."""
        return self.root / relative

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def by_id(self) -> dict[str, Sample]:
        return {s.id: s for s in self.samples}

    @property
    def fingerprint(self) -> str:
        return manifest_hash(self.workdir)


def write_trials(path: Path, trials: list[Trial]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, "".join(f"{t.target} {t.enroll} {t.test}\n" for t in trials))


KALDI_TRIAL_LABELS = {"target": 1, "nontarget": 0}


def _trial_fields(parts: list[str]) -> tuple[int, str, str] | None:
    """(target, enroll, test) of one line in either format, or None when it fits neither."""
    if len(parts) != 3:
        return None
    if parts[0] in ("0", "1"):
        return int(parts[0]), parts[1], parts[2]
    if parts[2] in KALDI_TRIAL_LABELS:
        return KALDI_TRIAL_LABELS[parts[2]], parts[0], parts[1]
    return None


def read_trials(path: Path, known_ids: set[str] | None = None,
                strip_extension: bool = False) -> list[Trial]:
    """Read a trial list in VoxCeleb format (`1 id10270/a.wav id10300/b.wav`) or in
    Kaldi/WeSpeaker format (`enroll test target|nontarget`), detected per file.

    With `strip_extension`, `id10270/x/00001.wav` becomes the sample id
    `id10270/x/00001`. Unknown ids are an error naming the line.
    """
    trials = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise XmdError(f"{path}: cannot read trial list ({e.strerror})") from None
    except UnicodeDecodeError:
        raise XmdError(f"{path}: the trial list is not UTF-8 text", hint="a trial list is plain text") from None
    file_format = None  # set by the first line; a file mixing the two formats is a mistake
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        fields = _trial_fields(parts)
        line_format = None if fields is None else ("voxceleb" if parts[0] in ("0", "1") else "kaldi")
        if fields is None or (file_format and line_format != file_format):
            expected = {"voxceleb": "`1|0 enroll test`", "kaldi": "`enroll test target|nontarget`"}
            raise XmdError(f"{path}:{number}: expected " + (expected[file_format] if file_format else
                           f"{expected['voxceleb']} or {expected['kaldi']}") + f", got {line.strip()!r}",
                           hint="fix or remove the line; one file holds one format")
        file_format = line_format
        target, enroll, test = fields
        if strip_extension:
            enroll, test = os.path.splitext(enroll)[0], os.path.splitext(test)[0]
        if known_ids is not None:
            for name in (enroll, test):
                if name not in known_ids:
                    raise XmdError(f"{path}:{number}: trial names {name!r}, which is not in the manifest",
                                   hint="the trial list must name samples of the prepared dataset")
        trials.append(Trial(target, enroll, test))
    if not trials:
        raise XmdError(f"{path}: the trial list is empty")
    return trials


def label_map(samples: list[Sample]) -> dict[str, int]:
    return {label: index for index, label in enumerate(sorted({s.label for s in samples}))}


def write_manifest(workdir: Path, samples: list[Sample], *, root: Path, adapter: str,
                   trials: dict[str, list[Trial]] | None = None, extra: dict | None = None) -> Path:
    """Write manifest.jsonl, labels.json, dataset.json and trials/ into `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_text(workdir / MANIFEST, "".join(s.to_json() + "\n" for s in samples))
    labels = label_map(samples)
    write_json(workdir / LABELS, labels)
    trial_files = {}
    for name, trial_list in (trials or {}).items():
        relative = f"{TRIALS_DIR}/{name}.txt"
        write_trials(workdir / relative, trial_list)
        trial_files[name] = relative
    counts = {split: sum(s.split == split for s in samples) for split in SPLITS}
    dataset = {"root": str(Path(root).resolve()), "adapter": adapter, "samples": len(samples),
               "classes": len(labels), "splits": counts, "trials": trial_files,
               "xmd_version": __version__, **(extra or {})}
    write_json(workdir / DATASET, dataset)
    return workdir / MANIFEST


def read_manifest(workdir: Path) -> Manifest:
    workdir = Path(workdir)
    path = workdir / MANIFEST
    if not path.exists():
        raise XmdError(f"{path}: no manifest here",
                       hint=f"run `xmd prepare ... --workdir {workdir}` first")
    samples = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise XmdError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise XmdError(f"{where}: expected a JSON object a line")
            sample = Sample.from_record(record, where)
            if sample.id in seen:
                raise XmdError(f"{where}: duplicate sample id {sample.id!r}")
            seen.add(sample.id)
            samples.append(sample)
    dataset = json.loads((workdir / DATASET).read_text()) if (workdir / DATASET).exists() else {}
    root = Path(dataset.get("root", workdir))
    labels = (json.loads((workdir / LABELS).read_text()) if (workdir / LABELS).exists()
              else label_map(samples))
    trials = {name: read_trials(workdir / relative, seen)
              for name, relative in dataset.get("trials", {}).items()}
    return Manifest(workdir, root, samples, labels, trials, dataset)


def manifest_hash(workdir: Path) -> str:
    """sha256 of manifest.jsonl: later stages put it in their fingerprints."""
    digest = hashlib.sha256()
    with (Path(workdir) / MANIFEST).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
