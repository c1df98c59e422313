"""Media reading and the reasons given for files that cannot be read."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from xmd_cli.data.media import audio_problem, image_problem, load_image, read_audio
from xmd_cli.errors import XmdError

RATE = 16000


def write_wav(path, seconds=1.0, rate=RATE, channels=1, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).uniform(-0.5, 0.5, (int(seconds * rate), channels)).astype(np.float32)
    sf.write(path, data, rate, subtype="FLOAT")
    return data


def write_m4a_like(path):
    # The first bytes of an MP4/M4A container: enough for format detection.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00M4A mp42isom" + bytes(200))


def test_read_audio_mono_average_segment_and_resample(tmp_path):
    stereo = write_wav(tmp_path / "s.wav", seconds=1.0, channels=2)
    samples, rate = read_audio(tmp_path / "s.wav")
    assert rate == RATE and samples.dtype == np.float32 and samples.shape == (RATE,)
    np.testing.assert_allclose(samples, stereo.mean(axis=1), atol=1e-7)

    part, _ = read_audio(tmp_path / "s.wav", segment=(0.25, 0.5))
    np.testing.assert_allclose(part, stereo[4000:8000].mean(axis=1), atol=1e-7)

    low, low_rate = read_audio(tmp_path / "s.wav", target_rate=8000)
    assert low_rate == 8000 and low.shape == (8000,) and low.dtype == np.float32


def test_segment_within_overshoot_is_cut_at_the_end(tmp_path):
    write_wav(tmp_path / "a.wav", seconds=1.0)
    assert audio_problem(tmp_path / "a.wav", segment=(0.5, 1.2)) is None
    samples, _ = read_audio(tmp_path / "a.wav", segment=(0.5, 1.2))
    assert samples.shape == (8000,)
    reason = audio_problem(tmp_path / "a.wav", segment=(0.5, 3.0))
    assert "beyond the end" in reason and "1.000 s" in reason
    assert "start < end" in audio_problem(tmp_path / "a.wav", segment=(0.6, 0.5))


def test_audio_problems_name_the_file_and_what_to_do(tmp_path):
    write_wav(tmp_path / "good.wav")
    assert audio_problem(tmp_path / "good.wav") is None

    assert "not found" in audio_problem(tmp_path / "missing.wav")

    (tmp_path / "empty.wav").write_bytes(b"")
    assert "zero-length" in audio_problem(tmp_path / "empty.wav")

    sf.write(tmp_path / "header.wav", np.zeros(0, dtype=np.float32), RATE)
    assert "no audio frames" in audio_problem(tmp_path / "header.wav")

    (tmp_path / "corrupt.wav").write_bytes(np.random.default_rng(1).bytes(600))
    reason = audio_problem(tmp_path / "corrupt.wav")
    assert "corrupt.wav" in reason and "corrupt" in reason and "re-export" in reason

    # m4a is decoded with PyAV (tests/test_formats.py reads real ones); a damaged one says so.
    write_m4a_like(tmp_path / "vox2.m4a")
    reason = audio_problem(tmp_path / "vox2.m4a")
    assert "vox2.m4a" in reason and "PyAV" in reason and "re-download" in reason

    # An MP4 container misnamed .wav goes to PyAV too, not to "corrupt wav".
    write_m4a_like(tmp_path / "misnamed.wav")
    assert "PyAV" in audio_problem(tmp_path / "misnamed.wav")

    (tmp_path / "folder.wav").mkdir()
    assert "not a file" in audio_problem(tmp_path / "folder.wav")


@pytest.mark.parametrize("name", ["missing.wav", "empty.wav", "corrupt.wav", "vox2.m4a"])
def test_read_audio_raises_xmd_error_with_the_reason(tmp_path, name):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 20)
    write_m4a_like(tmp_path / "vox2.m4a")
    with pytest.raises(XmdError) as error:
        read_audio(tmp_path / name)
    assert name in str(error.value)


def test_images(tmp_path):
    Image.fromarray(np.full((20, 16), 128, np.uint8), mode="L").save(tmp_path / "gray.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "face.jpg")
    assert image_problem(tmp_path / "face.jpg") is None
    image = load_image(tmp_path / "gray.png")
    assert image.mode == "RGB" and image.size == (16, 20)

    (tmp_path / "notes.jpg").write_text("this is a text file, not a face\n")
    reason = image_problem(tmp_path / "notes.jpg")
    assert "text file" in reason and "this is a text file" in reason and "notes.jpg" in reason
    with pytest.raises(XmdError, match="text file"):
        load_image(tmp_path / "notes.jpg")

    (tmp_path / "noise.png").write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(2).bytes(300))
    assert "not readable as an image" in image_problem(tmp_path / "noise.png")
    assert "not found" in image_problem(tmp_path / "gone.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "zero-length" in image_problem(tmp_path / "empty.jpg")
