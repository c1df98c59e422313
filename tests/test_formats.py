"""Users' formats through the real CLI: Kaldi trial lists, WeSpeaker raw.list, test fractions,
mixed sample rates, and VoxCeleb2 as distributed (m4a audio, mp4 video, decoded with PyAV)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from xmd_cli.data.manifest import Trial, read_manifest, read_trials
from xmd_cli.errors import XmdError


def xmd(*args: str, cwd: Path | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "xmd_cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def write_wav(path: Path, seconds=0.5, rate=16000, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * rate)).astype(np.float32), rate)


def write_image(path: Path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)


def voxceleb_tree(root: Path, *, rates=(16000,)) -> None:
    """Three speakers, three utterances each; utterance n is written at rates[n % len(rates)]."""
    for speaker in ("id1", "id2", "id3"):
        for n in range(3):
            write_wav(root / f"wav/{speaker}/v/0000{n}.wav", rate=rates[n % len(rates)], seed=n)


# ---------------------------------------------------------------- trial lists
@pytest.mark.slow
def test_kaldi_trial_list_in_prepare_and_mixed_rates_warned(tmp_path):
    root, work = tmp_path / "vox", tmp_path / "work"
    voxceleb_tree(root, rates=(16000, 8000))
    (root / "kaldi.trials").write_text("id3/v/00000.wav id3/v/00001.wav target\n"
                                       "id3/v/00000.wav id2/v/00000.wav nontarget\n")
    done = xmd("prepare", "voxceleb", "--root", str(root), "--trials", str(root / "kaldi.trials"),
               "--workdir", str(work), "--json")
    summary = json.loads(done.stdout)
    assert summary["trials"] == {"kaldi": 2}
    manifest = read_manifest(work)
    assert manifest.trials["kaldi"] == [Trial(1, "id3/v/00000", "id3/v/00001"), Trial(0, "id3/v/00000", "id2/v/00000")]
    assert {s.label for s in manifest.split("test")} == {"id2", "id3"}
    # 6 files at 16 kHz, 3 at 8 kHz: said on the console, in the result and in the report.
    assert "warning: mixed sample rates: 6 file(s) at 16000 Hz, 3 file(s) at 8000 Hz" in " ".join(done.stderr.split())
    assert summary["warnings"] and "mixed sample rates" in summary["warnings"][0]
    report = json.loads((work / "prepare-report.json").read_text())
    assert report["sample_rates"] == {"8000": 3, "16000": 6} and report["warnings"] == summary["warnings"]
    # One rate: no warning.
    voxceleb_tree(root, rates=(16000,))
    assert json.loads(xmd("prepare", "voxceleb", "--root", str(root), "--workdir", str(work),
                          "--json").stdout)["warnings"] == []


def test_trial_format_is_detected_per_file_and_mixing_is_an_error(tmp_path):
    voxceleb = tmp_path / "a.txt"
    voxceleb.write_text("1 x y\n0 x z\n")
    kaldi = tmp_path / "b.txt"
    kaldi.write_text("# comment\nx y target\nx z nontarget\n")
    assert read_trials(voxceleb) == read_trials(kaldi) == [Trial(1, "x", "y"), Trial(0, "x", "z")]
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("x y target\n1 x z\n")
    with pytest.raises(XmdError, match=r"mixed.txt:2: expected `enroll test target\|nontarget`"):
        read_trials(mixed)
    neither = tmp_path / "neither.txt"
    neither.write_text("x y maybe\n")
    with pytest.raises(XmdError, match=r"neither.txt:1: expected `1\|0 enroll test` or `enroll test"):
        read_trials(neither)


# ---------------------------------------------------------------- WeSpeaker raw.list
def test_wespeaker_raw_list_through_the_kaldi_adapter(tmp_path):
    data, work = tmp_path / "vox2_dev", tmp_path / "work"
    lines = []
    for speaker in ("spkA", "spkB", "spkC"):
        for n in range(3):
            write_wav(data / f"wav/{speaker}-{n}.wav", seed=n)
            lines.append(json.dumps({"key": f"{speaker}-{n}", "wav": f"wav/{speaker}-{n}.wav", "spk": speaker}))
    lines += ['{"key": "broken", "wav": ', json.dumps({"key": "nospk", "wav": "wav/spkA-0.wav"})]
    (data / "raw.list").write_text("\n".join(lines) + "\n")
    (data / "trials").write_text("spkC-0 spkC-1 target\nspkC-0 spkB-0 nontarget\n")
    summary = json.loads(xmd("prepare", "kaldi", "--root", str(data), "--workdir", str(work), "--json").stdout)
    assert summary["samples"] == 9 and summary["classes"] == 3 and summary["trials"] == {"trials": 2}
    assert summary["problems"] == {"bad-line": 2}
    manifest = read_manifest(work)
    assert manifest.by_id()["spkA-1"].audio == "wav/spkA-1.wav" and manifest.by_id()["spkA-1"].label == "spkA"
    report = json.loads((work / "prepare-report.json").read_text())
    details = [e["detail"] for e in report["by_kind"]["bad-line"]["examples"]]
    assert any("raw.list:10: not valid JSON" in d for d in details)
    assert any("raw.list:11: no spk" in d for d in details)


# ---------------------------------------------------------------- test fraction
def imagefolder(root: Path, classes=("cat", "dog"), per_class=10) -> None:
    for label in classes:
        for n in range(per_class):
            write_image(root / label / f"{n:02d}.png", value=n)


def split_counts(work: Path) -> Counter:
    return Counter((s.label, s.split) for s in read_manifest(work).samples)


@pytest.mark.slow
def test_test_fraction_for_imagefolder_and_table(tmp_path):
    root = tmp_path / "images"
    imagefolder(root)
    args = ["--set", "data.test_fraction=0.2", "--set", "data.validation_fraction=0.1"]
    xmd("prepare", "imagefolder", "--root", str(root), "--workdir", str(tmp_path / "w1"), *args)
    counts = split_counts(tmp_path / "w1")
    for label in ("cat", "dog"):
        assert (counts[(label, "test")], counts[(label, "validation")], counts[(label, "train")]) == (2, 1, 7)
    # Seeded: the same seed picks the same samples, another seed others.
    xmd("prepare", "imagefolder", "--root", str(root), "--workdir", str(tmp_path / "w2"), *args)
    xmd("prepare", "imagefolder", "--root", str(root), "--workdir", str(tmp_path / "w3"), *args, "--seed", "7")
    test_ids = [{s.id for s in read_manifest(tmp_path / w).split("test")} for w in ("w1", "w2", "w3")]
    assert test_ids[0] == test_ids[1] != test_ids[2]

    table = tmp_path / "samples.csv"
    table.write_text("id,label,images\n" + "".join(f"{s.id},{s.label},{s.images[0]}\n"
                                                  for s in read_manifest(tmp_path / "w1").samples))
    xmd("prepare", "table", "--table", str(table), "--root", str(root), "--workdir", str(tmp_path / "w4"),
        "--set", "data.test_fraction=0.5", "--set", "data.validation_fraction=0")
    assert split_counts(tmp_path / "w4")[("cat", "test")] == 5


@pytest.mark.slow
def test_test_fraction_errors_name_the_key(tmp_path):
    root = tmp_path / "images"
    imagefolder(root, per_class=3)
    done = xmd("prepare", "imagefolder", "--root", str(root), "--workdir", str(tmp_path / "w"),
               "--set", "data.test_fraction=0.6", "--set", "data.validation_fraction=0.5", ok=False)
    assert done.returncode != 0 and "validation_fraction 0.5 + test_fraction 0.6" in done.stderr
    voxceleb_tree(tmp_path / "vox")
    done = xmd("prepare", "voxceleb", "--root", str(tmp_path / "vox"), "--workdir", str(tmp_path / "w"),
               "--set", "data.test_fraction=0.2", ok=False)
    assert done.returncode != 0 and "data.test_fraction=0.2" in done.stderr and "trial lists" in done.stderr


# ---------------------------------------------------------------- VoxCeleb2 as distributed
def encode_m4a(path: Path, seconds: float, rate: int = 16000, frequency: float = 440.0) -> np.ndarray:
    """AAC audio in an MP4 (.m4a) container, written by PyAV's own FFmpeg; returns the samples."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    samples = (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    with av.open(str(path), "w", format="ipod") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        size = stream.codec_context.frame_size or 1024
        padded = np.pad(samples, (0, -len(samples) % size))
        for start in range(0, len(padded), size):
            frame = av.AudioFrame.from_ndarray(padded[None, start:start + size], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return samples


def encode_mp4(path: Path, frames: int, side: int = 32) -> None:
    """An mpeg4 video whose frame i is uniformly grey at level 20 * i."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = side, side, "yuv420p"
        for i in range(frames):
            image = np.full((side, side, 3), 20 * i, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


@pytest.mark.slow
def test_voxceleb2_m4a_and_mp4_as_distributed(tmp_path):
    pytest.importorskip("av")
    from xmd_cli.data.media import read_audio

    root, work = tmp_path / "vox2", tmp_path / "work"
    for speaker in ("id00012", "id00015"):
        for n in (1, 2):
            encode_m4a(root / f"dev/aac/{speaker}/vid/0000{n}.m4a", seconds=1.0)
            encode_mp4(root / f"dev/mp4/{speaker}/vid/0000{n}.mp4", frames=10)
    (root / "dev/aac/id00015/vid/00003.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))  # damaged
    summary = json.loads(xmd("prepare", "voxceleb", "--root", str(root), "--video-dir", "dev/mp4",
                             "--set", "data.audio_dir=dev/aac", "--set", "data.video_frames=3",
                             "--workdir", str(work), "--json").stdout)
    assert summary["samples"] == 4 and summary["problems"] == {"unreadable-audio": 1, "no-images": 1}
    report = json.loads((work / "prepare-report.json").read_text())
    assert "00003.m4a: FFmpeg (PyAV) cannot open it" in report["by_kind"]["unreadable-audio"]["examples"][0]["detail"]

    manifest = read_manifest(work)
    sample = manifest.by_id()["id00012/vid/00001"]
    assert len(sample.images) == 3
    # Frames 1, 5 and 8 of 10 (evenly spaced), grey levels 20, 100 and 160 up to the codec's loss.
    levels = [np.asarray(Image.open(manifest.path(p))).mean() for p in sample.images]
    assert np.allclose(levels, [20, 100, 160], atol=8), levels
    audio, rate = read_audio(manifest.path(sample.audio))
    assert rate == 16000 and abs(len(audio) - 16000) <= 2048  # AAC adds priming/padding samples
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * rate / len(audio) - 440) < 5

    # A rerun reuses the frames it took (the marker records the video and the count).
    before = (work / "frames/id00012/vid/00001/0000.jpg").stat().st_mtime_ns
    xmd("prepare", "voxceleb", "--root", str(root), "--video-dir", "dev/mp4", "--set", "data.audio_dir=dev/aac",
        "--set", "data.video_frames=3", "--workdir", str(work))
    assert (work / "frames/id00012/vid/00001/0000.jpg").stat().st_mtime_ns == before
