"""What `xmd embed` embeds: a prepared work directory, a Kaldi wav.scp, a file list or a folder.

Every source becomes a manifest and its samples, so that embedding goes through
`inference.embed_samples` (the dataset, reading, resampling and transforms
evaluate uses) whatever the source:
  work directory   it holds manifest.jsonl: its samples (optionally some splits only), ids as prepared
  NAME.scp         Kaldi wav.scp, `utt-id path` a line; ids as written
  other file       one path a line; id = the path as written, extension removed
  folder           every audio file (speech students) or image (image students) below it,
                   id = the path relative to the folder, extension removed (`id10270/x/00001`)
A relative path in a list or wav.scp is looked up from the current directory (as
Kaldi does), then from the list's own folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from xmd_cli.data.manifest import MANIFEST, SPLITS, Manifest, Sample, read_manifest
from xmd_cli.data.media import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS
from xmd_cli.errors import XmdError
from xmd_cli.vocab import is_speech_arch

UNLABELLED = "-"  # the one label of a source that names none; nothing reads it


def resolve_inputs(source: Path, config, splits: list[str] | None = None) -> tuple[Manifest, list[Sample], str]:
    """(manifest, samples in order, kind of source) for the student `config`."""
    source = Path(source).expanduser()
    speech = is_speech_arch(config.arch)
    if splits and not (source / MANIFEST).is_file():
        raise XmdError(f"--split applies to a prepared work directory, and {source} is not one",
                       hint="drop --split, or pass the work directory of `xmd prepare`")
    if source.is_dir() and (source / MANIFEST).is_file():
        return _workdir(source, splits)
    if source.is_dir():
        pairs, kind = _folder(source, speech), "folder"
    elif source.is_file():
        kind = "wav.scp" if source.suffix.lower() == ".scp" else "list"
        pairs = _scp(source) if kind == "wav.scp" else _list(source)
    else:
        raise XmdError(f"{source}: no such file or folder",
                       hint="pass a work directory, a wav.scp, a file list or a folder of media")
    _no_repeats(pairs, source)
    samples = [Sample(id=i, label=UNLABELLED, split="test", audio=str(p) if speech else None,
                      images=[] if speech else [str(p)]) for i, p in pairs]
    # Paths are absolute, so the root is never joined to them; labels only satisfy the dataset.
    manifest = Manifest(workdir=source if source.is_dir() else source.parent, root=Path("/"), samples=samples,
                        labels={UNLABELLED: 0}, trials={}, dataset={})
    return manifest, samples, kind


def _workdir(workdir: Path, splits: list[str] | None) -> tuple[Manifest, list[Sample], str]:
    manifest = read_manifest(workdir)
    unknown = sorted(set(splits or []) - set(SPLITS))
    if unknown:
        raise XmdError(f"--split {unknown[0]!r} is not one of {', '.join(SPLITS)}")
    samples = [s for s in manifest.samples if not splits or s.split in splits]
    if not samples:
        raise XmdError(f"{workdir}/{MANIFEST}: no samples in split(s) {', '.join(splits or SPLITS)}")
    return manifest, samples, "workdir"


def _folder(folder: Path, speech: bool) -> list[tuple[str, Path]]:
    extensions = AUDIO_EXTENSIONS if speech else IMAGE_EXTENSIONS
    found = []
    for directory, subdirs, names in os.walk(folder):
        subdirs.sort()  # a stable order whatever the file system lists first
        for name in sorted(names):
            if os.path.splitext(name)[1].lower() in extensions and not name.startswith("."):
                path = Path(directory) / name
                found.append((os.path.splitext(path.relative_to(folder).as_posix())[0], path))
    if not found:
        raise XmdError(f"{folder}: no {'audio' if speech else 'image'} files below it "
                       f"({', '.join(sorted(extensions))})",
                       hint="pass the folder that holds the media, or a list of files")
    return found


def _data_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise XmdError(f"{path}: not a UTF-8 text file", hint="pass a wav.scp or a list of paths, one a line") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]
    lines = [(n, line) for n, line in lines if line and not line.startswith("#")]
    if not lines:
        raise XmdError(f"{path}: lists no files")
    return lines


def _existing(path_text: str, listing: Path, number: int) -> Path:
    """The file a line names: from the current directory, then from the list's folder."""
    path = Path(path_text).expanduser()
    for candidate in (path, listing.parent / path) if not path.is_absolute() else (path,):
        if candidate.is_file():
            return candidate.resolve()
    raise XmdError(f"{listing}:{number}: {path_text}: no such file",
                   hint="relative paths are taken from the current directory, then from the list's folder")


def _scp(path: Path) -> list[tuple[str, Path]]:
    pairs = []
    for number, line in _data_lines(path):
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise XmdError(f"{path}:{number}: expected `utterance-id path`, got {line!r}")
        key, target = parts
        if target.endswith("|"):
            raise XmdError(f"{path}:{number}: {key} is a command (`... |`), and xmd reads audio files",
                           hint="write the audio to files first (e.g. `sox ... out.wav`) and list those")
        if re.search(r"\.ark:\d+$", target):
            raise XmdError(f"{path}:{number}: {key} points into a Kaldi ark ({target}), and xmd reads audio files",
                           hint="write the audio out with `wav-copy scp:wav.scp ark,t:...` or list the original files")
        pairs.append((key, _existing(target, path, number)))
    return pairs


def _list(path: Path) -> list[tuple[str, Path]]:
    return [(os.path.splitext(line)[0], _existing(line, path, number)) for number, line in _data_lines(path)]


def _no_repeats(pairs: list[tuple[str, Path]], source: Path) -> None:
    seen: dict[str, Path] = {}
    for key, path in pairs:
        if key in seen:
            raise XmdError(f"{source}: id {key!r} names two files ({seen[key]} and {path})",
                           hint="an id must be unique: rename one file or list only one of them")
        seen[key] = path
