"""The VoxCeleb1/2 layout: `<speaker>/<video>/<utt>.<ext>` audio, face frames in a parallel tree.

    ROOT/wav/id10270/5r0dWxy17C8/00001.wav        audio (`data.audio_dir`, default wav)
    ROOT/faces/id10270/5r0dWxy17C8/00001/*.jpg    frames of one utterance, or
    ROOT/faces/id10270/5r0dWxy17C8/*.jpg          frames of the whole video, shared by its utterances
                                                  (`data.images_dir`, optional), or
    ROOT/mp4/id00012/21Uxsk56VDQ/00001.mp4        each utterance's video (VoxCeleb2 as distributed,
                                                  `data.video_dir`): `data.video_frames` frames are taken
    veri_test2.txt                                `1 id10270/5r0dWxy17C8/00001.wav id10300/...` (`data.trials`)

Sample id `<speaker>/<video>/<utt>`, label the speaker. Every audio file is listed,
whatever its format: VoxCeleb2's .m4a is decoded with PyAV. When an utterance
exists in several formats (a .wav converted next to its .m4a), the one soundfile
reads wins, as the faster to read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from xmd_cli.data.adapters import AdapterOutput, Problem
from xmd_cli.data.checks import unknown_trial_problems
from xmd_cli.data.containers import ContainerError, video_frames
from xmd_cli.data.manifest import Sample, Trial, read_trials
from xmd_cli.data.media import AUDIO_EXTENSIONS, CONTAINER_AUDIO, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from xmd_cli.data.splits import assign_splits, labels_in_trials
from xmd_cli.errors import XmdError
from xmd_cli.io import write_json
from xmd_cli.recipe import DataConfig

SCAN_PROGRESS_EVERY = 1000


def dataset_root(config: DataConfig, what: str) -> Path:
    if not config.root:
        raise XmdError("data.root is not set", hint=f"set it to {what}, e.g. --set data.root=PATH")
    root = Path(config.root)
    if not root.is_dir():
        raise XmdError(f"data.root: {root} is not a directory", hint=f"set data.root to {what}")
    return root


def relative_to_root(path: Path, root: Path) -> str:
    """`path` relative to `root` (posix) when it lies under it, else absolute: the manifest's rule."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return absolute.as_posix()


def read_trial_lists(paths: list[str], root: Path, *, strip_extension: bool) -> dict[str, list[Trial]]:
    """`data.trials` files, each named by its file stem. A path is taken as given
    (relative to the current directory) or, if not found there, relative to `root`."""
    trials: dict[str, list[Trial]] = {}
    for index, given in enumerate(paths):
        path = Path(given)
        if not path.is_file() and not path.is_absolute() and (root / given).is_file():
            path = root / given
        if not path.is_file():
            raise XmdError(f"data.trials[{index}]: trial list {given!r} not found "
                           f"(looked for {Path(given).absolute()} and {(root / given).absolute()})",
                           hint="give the path relative to the current directory or to data.root")
        name = path.stem
        if name in trials:
            raise XmdError(f"data.trials[{index}]: a second trial list named {name!r} ({path}); "
                           "trial lists are named by their file stem", hint="rename one of the files")
        trials[name] = read_trials(path, strip_extension=strip_extension)
    return trials


def finish(samples: list[Sample], root: Path, trials: dict[str, list[Trial]], problems: list[Problem],
           config: DataConfig) -> AdapterOutput:
    """What the file-based adapters share at the end: trial checks and split assignment."""
    if config.test_fraction:
        # Verification tests identities unseen in training; a per-class share would leak them.
        raise XmdError(f"data.test_fraction={config.test_fraction}: {config.adapter} data takes its test split "
                       "from the identities its trial lists name", hint="unset data.test_fraction and pass --trials")
    label_of = {s.id: s.label for s in samples}
    problems.extend(unknown_trial_problems(trials, set(label_of)))
    assign_splits(samples, validation_fraction=config.validation_fraction, seed=config.seed,
                  forced=config.split, test_labels=labels_in_trials(trials, label_of))
    return AdapterOutput(samples=samples, root=root, trials=trials, problems=problems)


def _format_rank(name: str) -> int:
    # A format soundfile reads beats one decoded through PyAV (VoxCeleb2 .m4a with a converted .wav): faster to read.
    return 1 if os.path.splitext(name)[1].lower() in CONTAINER_AUDIO else 0


def _is_utf8(parts) -> bool:
    # os.walk hands undecodable bytes of a file name back as surrogates, which
    # json (the manifest) cannot write as UTF-8.
    try:
        "/".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scan_audio(audio_root: Path, progress=None) -> tuple[dict[str, Path], list[str], list[Problem]]:
    """{sample id: audio file}, the speaker folders, and files outside the 3-level layout."""
    found: dict[str, Path] = {}
    speakers: list[str] = []
    problems: list[Problem] = []
    seen = 0
    # followlinks: speaker folders are often symlinks; the walk never goes below
    # video folders, so a link cycle cannot make it loop.
    for dirpath, dirnames, filenames in os.walk(audio_root, followlinks=True):
        dirnames.sort()
        parts = Path(dirpath).relative_to(audio_root).parts
        if len(parts) == 1:
            speakers.append(parts[0])
        if len(parts) >= 2:
            dirnames.clear()
        for name in sorted(filenames):
            if os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
                continue
            if not _is_utf8((*parts, name)):
                problems.append(Problem("bad-name", repr(os.path.join(dirpath, name)),
                                        f"{os.path.join(dirpath, name)!r}: the path is not valid UTF-8, which "
                                        "the manifest needs; rename the file or folder"))
                continue
            if len(parts) != 2:
                where = "/".join((*parts, name))
                problems.append(Problem("bad-layout", f"{audio_root.name}/{where}",
                                        f"{audio_root / where}: audio outside the layout "
                                        "<speaker>/<video>/<utt>.wav; it is not used"))
                continue
            sample_id = f"{parts[0]}/{parts[1]}/{os.path.splitext(name)[0]}"
            path = Path(dirpath) / name
            if sample_id not in found or _format_rank(name) < _format_rank(found[sample_id].name):
                found[sample_id] = path
            seen += 1
            if progress and seen % SCAN_PROGRESS_EVERY == 0:
                progress("scan", seen, None)
    if progress:
        progress("scan", seen, seen)
    return found, speakers, problems


class FaceFrames:
    """Frames of an utterance: its own folder if it has one, else its video's frames."""

    def __init__(self, images_root: Path, root: Path):
        self.images_root, self.root = images_root, root
        self._videos: dict[tuple[str, str], tuple[list[str], set[str]]] = {}

    def _images_in(self, folder: Path) -> list[str]:
        try:
            names = [e.name for e in os.scandir(folder) if e.is_file() and _is_utf8((e.name,))
                     and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS]
        except OSError:
            return []
        return [relative_to_root(folder / n, self.root) for n in sorted(names)]

    def _video(self, speaker: str, video: str) -> tuple[list[str], set[str]]:
        key = (speaker, video)
        if key not in self._videos:
            folder = self.images_root / speaker / video
            try:
                subfolders = {e.name for e in os.scandir(folder) if e.is_dir()}
            except OSError:
                subfolders = set()
            self._videos[key] = (self._images_in(folder), subfolders)
        return self._videos[key]

    def of(self, speaker: str, video: str, utterance: str) -> list[str]:
        video_frames, subfolders = self._video(speaker, video)
        if utterance in subfolders:
            return self._images_in(self.images_root / speaker / video / utterance)
        return video_frames


class VideoFrames:
    """Face frames taken from each utterance's own video (VoxCeleb2's dev/mp4/<speaker>/<video>/<utt>.mp4).

    `n` evenly spaced frames are decoded with PyAV into WORKDIR/frames/<speaker>/<video>/<utt>/ once;
    a rerun with the same video and `n` reuses them (a marker file records both).
    """

    def __init__(self, video_root: Path, out_root: Path, n: int, root: Path):
        self.video_root, self.out_root, self.n, self.root = video_root, out_root, n, root

    def _video(self, speaker: str, video: str, utterance: str) -> Path | None:
        folder = self.video_root / speaker / video
        for extension in sorted(VIDEO_EXTENSIONS):
            if (folder / f"{utterance}{extension}").is_file():
                return folder / f"{utterance}{extension}"
        return None

    def of(self, sample_id: str) -> tuple[list[str], Problem | None]:
        """(frame paths for the manifest, the problem when there are none)."""
        source = self._video(*sample_id.split("/"))
        if source is None:
            return [], Problem("no-images", sample_id, f"no video for {sample_id} at "
                               f"{self.video_root / sample_id}.mp4; the sample is kept without images")
        out = self.out_root / sample_id
        marker, stamp = out / ".frames.json", {"source": str(source), "mtime_ns": source.stat().st_mtime_ns,
                                                "frames": self.n}
        if not (marker.is_file() and json.loads(marker.read_text()) == stamp):
            try:
                images = video_frames(source, self.n)
            except ContainerError as e:
                return [], Problem("unreadable-video", sample_id, f"{source}: {e}; the sample is kept "
                                   "without images")
            out.mkdir(parents=True, exist_ok=True)
            for old in out.glob("*.jpg"):
                old.unlink()
            for index, image in enumerate(images):
                image.save(out / f"{index:04d}.jpg", quality=95)
            write_json(marker, stamp)
        return [relative_to_root(p, self.root) for p in sorted(out.glob("*.jpg"))], None


def _frame_source(config: DataConfig, root: Path, workdir: Path) -> FaceFrames | VideoFrames | None:
    """Where face frames come from: a frame tree (images_dir), the videos (video_dir), or nowhere."""
    if config.images_dir and config.video_dir:
        raise XmdError("data.images_dir and data.video_dir are both set",
                       hint="set images_dir for extracted frames, or video_dir to take frames from the mp4s")
    key, folder = ("images_dir", config.images_dir) if config.images_dir else ("video_dir", config.video_dir)
    if not folder:
        return None
    if not (root / folder).is_dir():
        raise XmdError(f"data.{key}: {root / folder} is not a directory",
                       hint=f"set data.{key} to a folder below data.root laid out like the audio, or leave it unset")
    if key == "images_dir":
        return FaceFrames(root / folder, root)
    return VideoFrames(root / folder, Path(workdir) / "frames", config.video_frames, root)


def _images_of(frames, sample_id: str, problems: list[Problem]) -> list[str]:
    if isinstance(frames, VideoFrames):
        images, problem = frames.of(sample_id)
        if problem:
            problems.append(problem)
        return images
    speaker, video, utterance = sample_id.split("/")
    images = frames.of(speaker, video, utterance)
    if not images:
        problems.append(Problem("no-images", sample_id,
                                f"no face frames for {sample_id} in {frames.images_root / speaker / video}/ "
                                f"or its {utterance}/ folder; the sample is kept without images"))
    return images


def read(config: DataConfig, workdir: Path, progress=None) -> AdapterOutput:
    root = dataset_root(config, "the VoxCeleb root, the folder that holds wav/")
    audio_root = root / config.audio_dir
    if not audio_root.is_dir():
        raise XmdError(f"data.audio_dir: {audio_root} is not a directory",
                       hint="set data.audio_dir to the audio tree below data.root "
                            "(<speaker>/<video>/<utt>.wav), e.g. wav or dev/aac")
    frames = _frame_source(config, root, workdir)

    found, speakers, problems = scan_audio(audio_root, progress)
    samples = []
    for done, sample_id in enumerate(sorted(found), 1):
        images = _images_of(frames, sample_id, problems) if frames else []
        samples.append(Sample(id=sample_id, label=sample_id.split("/")[0], split="train",
                              audio=relative_to_root(found[sample_id], root), images=images))
        if progress and isinstance(frames, VideoFrames) and (done % 100 == 0 or done == len(found)):
            progress("frames", done, len(found))
    labelled = {s.label for s in samples}
    for speaker in speakers:
        if speaker not in labelled:
            problems.append(Problem("empty-class", f"{config.audio_dir}/{speaker}",
                                    f"speaker folder {audio_root / speaker} holds no audio at "
                                    "<video>/<utt>.wav; the speaker is left out"))
    trials = read_trial_lists(config.trials, root, strip_extension=True)
    return finish(samples, root, trials, problems, config)
