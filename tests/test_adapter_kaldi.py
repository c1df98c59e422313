"""The kaldi adapter on small Kaldi/WeSpeaker data directories the test builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from xmd_cli.data.adapters import get_adapter
from xmd_cli.data.manifest import Trial
from xmd_cli.errors import XmdError
from xmd_cli.recipe import DataConfig

read = get_adapter("kaldi")


def write_wav(path: Path, seconds=0.5, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * 16000)).astype(np.float32), 16000)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_plain_data_directory(tmp_path, monkeypatch):
    data = tmp_path / "data/train"
    elsewhere = tmp_path / "corpus"
    cwd = tmp_path / "recipe_dir"
    for name in ("a1", "a2", "a3", "b1", "b2", "c1", "orphan"):
        write_wav(data / "wavs" / f"{name}.wav")
    write_wav(elsewhere / "c2.wav")
    for name in ("a1_0.jpg", "a1_1.jpg"):  # adapters do not open images: any bytes do here
        write(data / "faces" / name, "jpg")
    write_wav(cwd / "shadow/b2.wav")  # relative paths mean cwd first, as in Kaldi
    monkeypatch.chdir(cwd)
    write(data / "wav.scp",
          "spkA-a1 wavs/a1.wav\n"
          "spkA-a2 wavs/a2.wav\n"
          "spkA-a3 wavs/a3.wav\n"
          "spkB-b1 wavs/b1.wav\n"
          f"spkB-b2 shadow/b2.wav\n"
          f"spkC-c1 {data / 'wavs/c1.wav'}\n"
          f"spkC-c2 {elsewhere / 'c2.wav'}\n"
          "spkD-p1 sph2pipe -f wav -p -c 1 /corpus/p1.sph |\n"
          "spkD-k1 /corpus/raw.ark:1234\n"
          "lonely\n"
          "nospk wavs/orphan.wav\n")
    write(data / "utt2spk", "spkA-a1 spkA\nspkA-a2 spkA\nspkA-a3 spkA\nspkB-b1 spkB\nspkB-b2 spkB\n"
                            "spkC-c1 spkC\nspkC-c2 spkC\nspkD-p1 spkD\nspkD-k1 spkD\nghost spkZ\n")
    write(data / "images.scp", "spkA-a1 faces/a1_0.jpg faces/a1_1.jpg\nspkC-c1 /abs/face.png\n")
    write(data / "text", "spkA-a1 HELLO   THERE\nspkB-b1\n")
    write(data / "trials", "spkC-c1 spkC-c2 target\nspkC-c1 spkA-a1 nontarget\nspkC-c1 spkA-a2 maybe\n")

    out = read(DataConfig(adapter="kaldi", root=str(data), validation_fraction=0.34), tmp_path / "work")
    by_id = {s.id: s for s in out.samples}
    assert list(by_id) == ["spkA-a1", "spkA-a2", "spkA-a3", "spkB-b1", "spkB-b2", "spkC-c1", "spkC-c2"]
    assert by_id["spkA-a1"].audio == "wavs/a1.wav" and by_id["spkA-a1"].label == "spkA"
    assert by_id["spkB-b2"].audio == (cwd / "shadow/b2.wav").as_posix()  # outside root: absolute
    assert by_id["spkC-c1"].audio == "wavs/c1.wav"  # absolute but under root: relative
    assert by_id["spkC-c2"].audio == (elsewhere / "c2.wav").as_posix()
    assert by_id["spkA-a1"].images == ["faces/a1_0.jpg", "faces/a1_1.jpg"]
    assert by_id["spkC-c1"].images == ["/abs/face.png"]
    assert by_id["spkA-a1"].text == "HELLO   THERE" and by_id["spkB-b1"].text is None
    assert by_id["spkA-a2"].info == {"source": "wav.scp:2"}
    assert out.trials == {"trials": [Trial(1, "spkC-c1", "spkC-c2"), Trial(0, "spkC-c1", "spkA-a1")]}
    # spkC is named in trials; spkA-a1 is too, so spkA goes to test as a whole class.
    assert {s.split for s in out.samples if s.label in ("spkA", "spkC")} == {"test"}
    assert {s.split for s in out.samples if s.label == "spkB"} <= {"train", "validation"}

    problems = {(p.kind, p.where): p for p in out.problems}
    pipe = problems[("unreadable-audio", "wav.scp:8")]
    assert pipe.sample_id == "spkD-p1" and "pipe command" in pipe.detail
    assert "wav-copy 'sph2pipe -f wav -p -c 1 /corpus/p1.sph |' wavs/spkD-p1.wav" in pipe.detail
    ark = problems[("unreadable-audio", "wav.scp:9")]
    assert ark.sample_id == "spkD-k1" and "Kaldi archive" in ark.detail
    assert problems[("bad-line", "wav.scp:10")].sample_id == "lonely"
    assert problems[("no-speaker", "wav.scp:11")].sample_id == "nospk"
    assert "utt2spk" in problems[("no-speaker", "wav.scp:11")].detail
    assert "ghost" in problems[("unknown-utterance", "utt2spk:10")].detail
    assert "trials:3" in problems[("bad-line", "trials:3")].detail
    assert len(out.problems) == 6


def test_segments_duplicates_and_config_trials(tmp_path, monkeypatch):
    data = tmp_path / "seg"
    write_wav(data / "rec1.wav", seconds=3.0)
    write_wav(data / "rec2.wav", seconds=2.0)
    monkeypatch.chdir(tmp_path)  # wavs are found relative to the data directory
    write(data / "wav.scp", "rec1 rec1.wav\nrec2 rec2.wav\nrec3 cat x.wav |\n")
    write(data / "segments",
          "s1 rec1 0.00 1.50\n"
          "s2 rec1 1.50 3.00\n"
          "s3 rec2 0 1.2\n"
          "s4 rec2 1.0 -1\n"
          "s5 rec9 0 1\n"
          "s6 rec2 1.5 1.0\n"
          "s7 rec3 0 1\n"
          "s8 rec2 zero one\n")
    write(data / "utt2spk", "s1 A\ns2 A\ns3 B\ns3 B\ns1 C\n")
    write(tmp_path / "vox_o.txt", "1 s1 s2\n0 s1 s3\n")
    out = read(DataConfig(adapter="kaldi", root=str(data), trials=["vox_o.txt"]), tmp_path / "work")

    by_id = {s.id: s for s in out.samples}
    assert list(by_id) == ["s1", "s2", "s3"]
    assert by_id["s2"].audio == "rec1.wav" and by_id["s2"].segment == (1.5, 3.0)
    assert by_id["s3"].segment == (0.0, 1.2) and by_id["s3"].label == "B"
    assert out.trials == {"vox_o": [Trial(1, "s1", "s2"), Trial(0, "s1", "s3")]}
    kinds = sorted((p.kind, p.where, p.sample_id) for p in out.problems)
    assert kinds == [
        ("bad-line", "segments:4", "s4"),
        ("bad-line", "segments:8", "s8"),
        ("bad-segment", "segments:6", "s6"),
        ("duplicate-id", "utt2spk:4", None),  # the same speaker again: ignored
        ("duplicate-id", "utt2spk:5", "s1"),  # a different speaker: ambiguous, dropped
        ("missing-recording", "segments:5", "s5"),
        ("unreadable-audio", "wav.scp:3", None),  # its segment s7 is never a sample
    ]


def test_missing_files_and_name_clash(tmp_path):
    with pytest.raises(XmdError, match="wav.scp: not found"):
        read(DataConfig(adapter="kaldi", root=str(tmp_path)), tmp_path)
    write(tmp_path / "wav.scp", "u1 u1.wav\n")
    with pytest.raises(XmdError, match="utt2spk"):
        read(DataConfig(adapter="kaldi", root=str(tmp_path)), tmp_path)
    write(tmp_path / "utt2spk", "u1 s\n")
    write(tmp_path / "trials", "u1 u1 target\n")
    write(tmp_path / "lists/trials.txt", "1 u1 u1\n")
    with pytest.raises(XmdError, match="clashes"):
        read(DataConfig(adapter="kaldi", root=str(tmp_path), trials=[str(tmp_path / "lists/trials.txt")]),
             tmp_path)
