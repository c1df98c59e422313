"""Audio and video in containers libsndfile cannot open (m4a, mp4, ...), decoded with PyAV.

VoxCeleb2 ships AAC audio in .m4a files and H.264 video in .mp4 files. PyAV's
wheel carries its own FFmpeg, so these are read as distributed: no conversion
step, no ffmpeg binary on the PATH. `xmd_cli.data.media` calls in here for the
extensions in `media.CONTAINER_AUDIO` and for any file whose first bytes say MP4.
Errors are `ContainerError` with the reason in words; callers turn it into a
`MediaIssue` or an `XmdError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ContainerError(Exception):
    """PyAV could not read the file: the message says why, for the user."""


def _open(path: Path | str):
    try:
        import av  # lazily: only datasets with m4a/mp4 pay for loading FFmpeg
    except ImportError:
        raise ContainerError("PyAV is not installed, so m4a/mp4 cannot be decoded; `pip install av`") from None
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as e:
        raise ContainerError(f"FFmpeg (PyAV) cannot open it ({e.__class__.__name__}: {e})") from None


def _audio_stream(container, path):
    if not container.streams.audio:
        raise ContainerError("holds no audio stream")
    return container.streams.audio[0]


def audio_info(path: Path | str) -> tuple[int, int, int]:
    """(frames, sample rate, channels) from the container's header; decodes only when it states no duration."""
    with _open(path) as container:
        stream = _audio_stream(container, path)
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / 1_000_000  # av.time_base: microseconds
        else:
            return len(_decode_audio(container, stream, path)), rate, channels
    return int(round(seconds * rate)), rate, channels


def _decode_audio(container, stream, path) -> np.ndarray:
    import av

    # Resample to packed float mono at the stream's own rate: channels averaged, like soundfile reads.
    resampler = av.AudioResampler(format="flt", layout="mono", rate=stream.codec_context.sample_rate)
    chunks = []
    try:
        for frame in container.decode(stream):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except av.FFmpegError as e:
        raise ContainerError(f"cannot decode audio ({e}); the file is damaged: re-download it") from None
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def read_container_audio(path: Path | str) -> tuple[np.ndarray, int]:
    """Mono float32 samples of the first audio stream and its sample rate."""
    with _open(path) as container:
        stream = _audio_stream(container, path)
        return _decode_audio(container, stream, path), stream.codec_context.sample_rate


def _frame_count(container, stream) -> int:
    if stream.frames:
        return int(stream.frames)
    # Some muxers leave the count out of the header: count by demuxing (no decoding).
    count = sum(1 for packet in container.demux(stream) if packet.size)
    container.seek(0)
    return count


def evenly_spaced(total: int, n: int) -> list[int]:
    """Indices of `n` frames spread over `total`, each at the middle of its share.

    >>> evenly_spaced(10, 3), evenly_spaced(2, 5)
    ([1, 5, 8], [0, 1])
    """
    return sorted({min(total - 1, int((i + 0.5) * total / n)) for i in range(n)}) if total > 0 else []


def video_frames(path: Path | str, n: int) -> list:
    """`n` evenly spaced frames of the first video stream as RGB PIL images (fewer for a shorter video)."""
    import av

    with _open(path) as container:
        if not container.streams.video:
            raise ContainerError("holds no video stream")
        stream = container.streams.video[0]
        wanted = set(evenly_spaced(_frame_count(container, stream), n))
        images = []
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index in wanted:
                    images.append(frame.to_image())
                if len(images) == len(wanted):
                    break
        except av.FFmpegError as e:
            raise ContainerError(f"cannot decode video ({e}); the file is damaged: re-download it") from None
    if not images:
        raise ContainerError("the video holds no frames")
    return images
