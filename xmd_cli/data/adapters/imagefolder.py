"""imagefolder: `root/<class>/<images>`, or `root/{train,val,test}/<class>/<images>`.

The class is the folder name; images may sit in sub-folders of a class folder.
The sample id is the image's path below root without its extension. An optional
captions file (`data.captions`, TSV `relative/path<TAB>caption`, path relative to
the directory xmd runs from) gives each image its text. The files themselves are
not opened here: `xmd_cli.data.checks` verifies them for every adapter.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Callable

from xmd_cli.data.adapters import AdapterOutput, Problem
from xmd_cli.data.manifest import Sample, read_trials
from xmd_cli.data.splits import assign_splits, labels_in_trials
from xmd_cli.errors import XmdError
from xmd_cli.recipe import DataConfig

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
SPLIT_FOLDERS = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _class_folders(root: Path) -> list[tuple[str | None, Path]]:
    """(split or None, class folder) for each class folder, per the layout found."""
    top = _visible_dirs(root)
    split_named = [d for d in top if d.name.lower() in SPLIT_FOLDERS]
    if top and len(split_named) == len(top):
        return [(SPLIT_FOLDERS[d.name.lower()], c) for d in top for c in _visible_dirs(d)]
    if any(_visible_dirs(d) for d in split_named):
        others = ", ".join(d.name for d in top if d not in split_named)
        raise XmdError(
            f"{root}: mixes split folders ({', '.join(d.name for d in split_named)}) with other folders ({others})",
            hint="use either root/<class>/<images> or root/{train,val,test}/<class>/<images>")
    return [(None, d) for d in top]


def _scan(root: Path, problems: list[Problem]) -> tuple[list[Sample], bool]:
    """Samples found under root, and whether the layout named their splits."""
    folders = _class_folders(root)
    if not folders:
        raise XmdError(f"{root}: no class folders here",
                       hint="imagefolder expects root/<class>/<images> (or root/train/<class>/...)")
    by_layout = folders[0][0] is not None
    containers = [root] + sorted({folder.parent for _, folder in folders} - {root})
    for container in containers:
        for stray in sorted(p for p in container.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS):
            problems.append(Problem("not-in-class", str(stray),
                                    "image outside any class folder; move it into a class folder or it is ignored"))
    samples: list[Sample] = []
    seen: dict[str, str] = {}
    for split, folder in folders:
        images = _images_below(folder)
        if not images:
            problems.append(Problem("empty-class", str(folder),
                                    f"class folder {folder.name!r} holds no image "
                                    f"({', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove it"))
        for image in images:
            relative = image.relative_to(root).as_posix()
            sample_id = str(PurePosixPath(relative).with_suffix(""))
            if sample_id in seen:
                problems.append(Problem("duplicate-id", relative,
                                        f"same id {sample_id!r} as {seen[sample_id]}; keeping that one, "
                                        "rename one of the two files"))
                continue
            seen[sample_id] = relative
            samples.append(Sample(id=sample_id, label=folder.name, split=split or "train", images=[relative]))
    return samples, by_layout


def _normalise(path: str) -> str:
    path = path.strip().replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path


def read_captions(path: Path, samples: list[Sample], problems: list[Problem]) -> None:
    """Set `text` on the samples a TSV captions file names; report lines that do not fit."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as e:
        raise XmdError(f"{path}: cannot read the captions file ({e.strerror})",
                       hint="data.captions is taken relative to the directory xmd runs from") from None
    except UnicodeDecodeError:
        raise XmdError(f"{path}: the captions file is not UTF-8 text") from None
    by_path = {s.images[0]: s for s in samples}
    by_id = {s.id: s for s in samples}
    captioned: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        where = f"{path}:{number}"
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            problems.append(Problem("bad-line", where, "expected `relative/path<TAB>caption`, found no tab"))
            continue
        name, text = line.split("\t", 1)
        name, text = _normalise(name), text.strip()
        if not name or not text:
            problems.append(Problem("bad-line", where, "the path or the caption is empty"))
            continue
        sample = by_path.get(name) or by_id.get(name)
        if sample is None:
            problems.append(Problem("missing-file", where,
                                    f"caption for {name!r}, which is not an image under the dataset root"))
            continue
        if sample.id in captioned:
            problems.append(Problem("duplicate-caption", where,
                                    f"{name!r} already has a caption on line {captioned[sample.id]}; keeping that one"))
            continue
        captioned[sample.id] = number
        sample.text = text
    uncaptioned = [s.images[0] for s in samples if s.text is None]
    if uncaptioned:
        shown = ", ".join(uncaptioned[:3]) + (", ..." if len(uncaptioned) > 3 else "")
        problems.append(Problem("missing-caption", str(path),
                                f"{len(uncaptioned)} image(s) have no caption ({shown}); "
                                "a text teacher gives them no embedding"))


def read(config: DataConfig, workdir: Path, progress: Callable[[str, int, int], None] | None = None) -> AdapterOutput:
    if not config.root:
        raise XmdError("data.root: the imagefolder adapter needs the dataset folder",
                       hint="--set data.root=path/to/images (one sub-folder a class)")
    root = Path(config.root)
    if not root.is_dir():
        raise XmdError(f"data.root: {root} is not a folder",
                       hint="point data.root at the folder that holds one sub-folder a class")
    problems: list[Problem] = []
    samples, split_by_layout = _scan(root, problems)
    if progress:
        progress("scan", len(samples), len(samples))
    if config.captions:
        read_captions(Path(config.captions), samples, problems)
    trials = {}
    for number, name in enumerate(config.trials):
        key = Path(name).stem if Path(name).stem not in trials else f"{Path(name).stem}-{number}"
        trials[key] = read_trials(Path(name), {s.id for s in samples}, strip_extension=True)
    if config.split or not split_by_layout:
        test_labels = labels_in_trials(trials, {s.id: s.label for s in samples})
        assign_splits(samples, validation_fraction=config.validation_fraction, seed=config.seed,
                      forced=config.split, test_labels=test_labels,
                      test_fraction=config.test_fraction)
    return AdapterOutput(samples=samples, root=root, trials=trials, problems=problems)
