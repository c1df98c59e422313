"""Reading audio and images, and saying in words why a file cannot be read.

Every stage reads media through `read_audio` and `load_image`; m4a/mp4 audio
goes through PyAV (`xmd_cli.data.containers`). `prepare` asks
`audio_issue` / `image_issue` about every file first. The checks read headers
only (a `soundfile.SoundFile` open, `PIL.Image.verify`), so checking a million files costs
seconds to minutes, not hours; a file whose header is sound but whose body is
damaged is caught when a later stage decodes it. Two exceptions, because their
damage decodes without an error into silently wrong data: float audio (wav
subtype FLOAT/DOUBLE) is read whole for NaN/inf samples, which integer PCM
cannot hold, and `load_image` decodes with truncated data refused, never
padded with black.
"""

from __future__ import annotations

import codecs
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from xmd_cli.errors import XmdError

# Containers libsndfile cannot open (it reads wav, flac, ogg/opus, mp3, aiff, au, sphere):
# they are decoded with PyAV (`xmd_cli.data.containers`). VoxCeleb2 ships .m4a (AAC in MP4).
CONTAINER_AUDIO = {".m4a", ".aac", ".mp4", ".m4v", ".mov", ".webm", ".mkv", ".wma", ".3gp", ".amr"}
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au",
                    ".sph", ".nist"} | CONTAINER_AUDIO
VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

# Kaldi's extract-segments tolerates a segment end this far past the recording's end
# (--max-overshoot=0.5) and cuts it at the end; xmd does the same.
SEGMENT_OVERSHOOT = 0.5
FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}  # the only sample formats that can hold NaN or inf
SCAN_FRAMES = 1 << 16  # frames read at a time when scanning float audio (constant memory)


@dataclass(frozen=True)
class MediaIssue:
    """Why a file cannot be used: `kind` for counting, `reason` for the user."""

    kind: str  # missing-file, unreadable-audio, bad-segment, unreadable-image
    reason: str


def _is_container(path: Path) -> bool:
    return path.suffix.lower() in CONTAINER_AUDIO or _looks_like_mp4(path)


def _container_header(path: Path) -> tuple[AudioHeader | None, MediaIssue | None]:
    from xmd_cli.data.containers import ContainerError, audio_info

    try:
        return AudioHeader(*audio_info(path)), None
    except ContainerError as e:
        return None, MediaIssue("unreadable-audio", f"{path}: {e}; re-download or re-export the file")


def _looks_like_mp4(path: Path) -> bool:
    # An MP4/M4A file carries 'ftyp' at byte 4, whatever its name says.
    try:
        with open(path, "rb") as f:
            return f.read(12)[4:8] == b"ftyp"
    except OSError:
        return False


def _file_issue(path: Path, what: str) -> MediaIssue | None:
    """Missing, not a file, or empty: the same for audio and images."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return MediaIssue("missing-file", f"{what} file not found: {path}")
    except OSError as e:
        return MediaIssue("missing-file", f"{what} file cannot be opened: {path} ({e.strerror})")
    if not stat.S_ISREG(status.st_mode):
        return MediaIssue("missing-file", f"{what} path is not a file: {path}")
    if status.st_size == 0:
        return MediaIssue(f"unreadable-{what}", f"zero-length file (0 bytes): {path}; "
                          "it was never written completely: re-export or re-download it")
    return None


class AudioHeader(NamedTuple):
    frames: int
    samplerate: int
    channels: int


def audio_header(path: Path | str) -> tuple[AudioHeader | None, MediaIssue | None]:
    """(header, None) for a readable audio file, else (None, why not). Reads the header only."""
    path = Path(path)
    issue = _file_issue(path, "audio")
    if issue:
        return None, issue
    try:
        # Opening a SoundFile parses the header only; it costs about half of
        # soundfile.info, which also formats descriptions nobody reads here.
        with sf.SoundFile(str(path)) as f:
            info = AudioHeader(f.frames, f.samplerate, f.channels)
            bad_frame = _first_nonfinite_frame(f) if f.subtype in FLOAT_SUBTYPES else None
    except (sf.SoundFileError, RuntimeError, OSError):
        if _is_container(path):
            info, issue = _container_header(path)
            if issue:
                return None, issue
            return _nonempty(path, info)
        # libsndfile's own text is often misleading here ("File does not exist ..."
        # for a file that exists but is garbage), so it is not quoted.
        return None, MediaIssue("unreadable-audio", f"{path}: not readable as audio: the file is corrupt "
                                "or not in a format libsndfile reads (wav, flac, ogg, mp3); re-export it as wav")
    header, issue = _nonempty(path, info)
    if issue is None and bad_frame is not None:
        return None, MediaIssue("unreadable-audio", _nonfinite_reason(path, bad_frame, info.samplerate))
    return header, issue


def _nonempty(path: Path, info: AudioHeader) -> tuple[AudioHeader | None, MediaIssue | None]:
    if info.frames <= 0 or info.samplerate <= 0:
        return None, MediaIssue("unreadable-audio", f"{path}: holds no audio frames (a header only); "
                                "re-export or remove it")
    return info, None


def _first_nonfinite_frame(handle: sf.SoundFile) -> int | None:
    """The first frame holding a NaN or inf sample, scanning a float file in blocks; None when all are finite."""
    start = 0
    for block in handle.blocks(blocksize=SCAN_FRAMES, dtype="float32", always_2d=True):
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            return start + int(np.argmin(finite))
        start += len(block)
    return None


def _nonfinite_reason(path, frame: int, rate: int) -> str:
    # Damage a decoder passes on without complaint; left in, it turns a whole batch's loss into NaN.
    return (f"{path}: holds NaN or infinite samples (first at {frame / rate:.3f} s); the file is damaged: "
            "re-export it or remove it")


def segment_issue(path: Path | str, segment: tuple[float, float], duration: float) -> MediaIssue | None:
    """Whether [start, end] seconds lies within a recording of `duration` seconds."""
    start, end = segment
    if not (0 <= start < end):
        return MediaIssue("bad-segment", f"{path}: segment [{start}, {end}] must satisfy 0 <= start < end")
    if start >= duration or end > duration + SEGMENT_OVERSHOOT:
        return MediaIssue("bad-segment", f"{path}: segment [{start}, {end}] s lies beyond the end of the "
                          f"recording ({duration:.3f} s); fix the segments file")
    return None


def audio_issue(path: Path | str, segment: tuple[float, float] | None = None) -> MediaIssue | None:
    info, issue = audio_header(path)
    if issue or segment is None:
        return issue
    return segment_issue(path, segment, info.frames / info.samplerate)


def audio_problem(path: Path | str, segment: tuple[float, float] | None = None) -> str | None:
    """Why `path` (and `segment` within it) cannot be read as audio, or None when it can."""
    issue = audio_issue(path, segment)
    return issue.reason if issue else None


def read_audio(path: Path | str, *, segment: tuple[float, float] | None = None,
               target_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples of `path` (or of `segment`, in seconds) and their sample rate.

    Channels are averaged. With `target_rate`, the audio is resampled (torchaudio's
    band-limited sinc resampler). Unreadable input raises `XmdError` with the reason.
    """
    try:
        handle = sf.SoundFile(str(path))
    except (sf.SoundFileError, RuntimeError, OSError):
        if _is_container(Path(path)) and Path(path).is_file():
            samples, rate = _read_container(Path(path), segment)
            return _resampled(samples, rate, target_rate)
        # Ask the checks for the reason in words (missing, empty, corrupt).
        issue = audio_issue(path)
        raise XmdError(issue.reason if issue else f"{path}: cannot open audio") from None
    with handle:
        rate, frames = handle.samplerate, handle.frames
        if frames <= 0:
            raise XmdError(f"{path}: holds no audio frames (a header only); re-export or remove it")
        start, stop = 0, frames
        if segment is not None:
            issue = segment_issue(path, segment, frames / rate)
            if issue:
                raise XmdError(issue.reason)
            start = int(round(segment[0] * rate))
            stop = min(int(round(segment[1] * rate)), frames)
        try:
            handle.seek(start)
            data = handle.read(stop - start, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, OSError) as e:
            raise XmdError(f"{path}: cannot decode audio ({e}); the file is damaged: re-export it") from None
    samples = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if samples.size == 0:
        raise XmdError(f"{path}: no audio samples in {segment or 'the file'}")
    finite = np.isfinite(samples)
    if not finite.all():
        raise XmdError(_nonfinite_reason(path, start + int(np.argmin(finite)), rate))
    return _resampled(samples, rate, target_rate)


def _read_container(path: Path, segment: tuple[float, float] | None) -> tuple[np.ndarray, int]:
    """An m4a/mp4's mono samples (or `segment` of them), decoded whole: VoxCeleb2 utterances are seconds long."""
    from xmd_cli.data.containers import ContainerError, read_container_audio

    try:
        samples, rate = read_container_audio(path)
    except ContainerError as e:
        raise XmdError(f"{path}: {e}") from None
    if samples.size == 0:
        raise XmdError(f"{path}: holds no audio frames; re-download or remove it")
    if segment is not None:
        issue = segment_issue(path, segment, samples.size / rate)
        if issue:
            raise XmdError(issue.reason)
        samples = samples[int(round(segment[0] * rate)):int(round(segment[1] * rate))]
        if samples.size == 0:
            raise XmdError(f"{path}: no audio samples in {segment}")
    return samples, rate


def _resampled(samples: np.ndarray, rate: int, target_rate: int | None) -> tuple[np.ndarray, int]:
    if target_rate and target_rate != rate:
        import torch  # lazily: importing torch takes seconds
        import torchaudio.functional as F

        samples = F.resample(torch.from_numpy(np.ascontiguousarray(samples)), rate, int(target_rate)).numpy()
        rate = int(target_rate)
    return np.ascontiguousarray(samples, dtype=np.float32), rate


def _looks_like_text(path: Path) -> str | None:
    """The first line of a file that is text rather than binary, for the error message."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return None
    try:
        # Incremental decoding: the 256-byte cut may split a multi-byte character.
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if all(c.isprintable() or c in "\r\n\t" for c in text):
        return text.strip().splitlines()[0][:60] if text.strip() else ""
    return None


def image_issue(path: Path | str) -> MediaIssue | None:
    """Why `path` cannot be read as an image, or None. Reads the header and verifies the structure."""
    from PIL import Image

    path = Path(path)
    issue = _file_issue(path, "image")
    if issue:
        return issue
    try:
        with Image.open(path) as image:
            image.verify()
    # PIL's format plugins raise many types on damaged input (OSError, SyntaxError,
    # ValueError, struct.error, DecompressionBombError...): any of them means "unreadable".
    except Exception as e:  # noqa: BLE001
        text = _looks_like_text(path)
        if text is not None:
            return MediaIssue("unreadable-image", f"{path}: is a text file, not an image "
                              f"(it begins {text!r}); replace it with the real image or remove it")
        return MediaIssue("unreadable-image", f"{path}: not readable as an image ({type(e).__name__}: {e}); "
                          "the file is corrupt or not a jpg/png: re-export it")
    return None


def image_problem(path: Path | str) -> str | None:
    """Why `path` cannot be read as an image, or None when it can."""
    issue = image_issue(path)
    return issue.reason if issue else None


def load_image(path: Path | str):
    """The image at `path` as an RGB `PIL.Image.Image`; unreadable input raises `XmdError`.

    Truncated data is an error: with PIL's LOAD_TRUNCATED_IMAGES (a process-wide
    switch any library may turn on) the missing rows would decode as black.
    """
    from PIL import Image, ImageFile

    try:
        with Image.open(path) as image:
            _decode_whole(image, ImageFile)
            return image.convert("RGB")
    # PIL raises many types on bad data (see image_issue); the checks say why in words.
    except Exception as e:  # noqa: BLE001
        issue = image_issue(path)
        raise XmdError(issue.reason if issue else f"{path}: cannot decode image ({type(e).__name__}: {e}); "
                       "the file is damaged: re-export it") from None


_STRICT_DECODE = threading.Lock()


def _decode_whole(image, image_file) -> None:
    """Decode every pixel of `image`, raising OSError on truncated data whatever the global switch says."""
    if not image_file.LOAD_TRUNCATED_IMAGES:  # PIL's default: load() already refuses truncated data
        image.load()
        return
    # Someone turned the switch on for the whole process: off for this decode, one thread at a time
    # so that two decodes never restore each other's value.
    with _STRICT_DECODE:
        allowed, image_file.LOAD_TRUNCATED_IMAGES = image_file.LOAD_TRUNCATED_IMAGES, False
        try:
            image.load()
        finally:
            image_file.LOAD_TRUNCATED_IMAGES = allowed


def has_extension(name: str, extensions: set[str]) -> bool:
    return os.path.splitext(name)[1].lower() in extensions
