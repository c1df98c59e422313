"""The voxceleb adapter on a small VoxCeleb-shaped tree the test builds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from xmd_cli.data.adapters import get_adapter
from xmd_cli.data.manifest import Trial
from xmd_cli.errors import XmdError
from xmd_cli.recipe import DataConfig

read = get_adapter("voxceleb")


def write_wav(path: Path, seconds=0.5, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * 16000)).astype(np.float32), 16000)


def write_jpg(path: Path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)


# speaker -> video -> utterances; id10003 and id10004 are named by the trial list.
TREE = {
    "id10001": {"vidA": ["00001", "00002", "00003"], "vidB": ["00001"]},
    "id10002": {"vidC": ["00001", "00002", "00003", "00004"]},
    "id10003": {"vidD": ["00001", "00002"]},
    "id10004": {"vidE": ["00001"], "vidF": ["00001"]},
}


def build_tree(root: Path) -> None:
    for i, (speaker, videos) in enumerate(TREE.items()):
        for video, utterances in videos.items():
            for utt in utterances:
                write_wav(root / "wav" / speaker / video / f"{utt}.wav", seed=i)
    # Frames per utterance (id10001/vidA/00001) and per video (id10002/vidC).
    for name in ("0002.jpg", "0001.jpg"):
        write_jpg(root / "faces/id10001/vidA/00001" / name)
    for name in ("0010.png", "0003.jpg"):
        write_jpg(root / "faces/id10002/vidC" / name)
    (root / "faces/id10002/vidC/notes.txt").write_text("not an image extension: ignored")
    (root / "veri.txt").write_text(
        "1 id10003/vidD/00001.wav id10003/vidD/00002.wav\n"
        "0 id10003/vidD/00001.wav id10004/vidE/00001.wav\n"
        "0 id10004/vidF/00001.wav id10003/vidD/00002.wav\n")


def test_manifest_from_a_voxceleb_tree(tmp_path, monkeypatch):
    root = tmp_path / "vox"
    build_tree(root)
    monkeypatch.chdir(tmp_path)  # the trial list is found relative to the root, not the cwd
    config = DataConfig(adapter="voxceleb", root=str(root), images_dir="faces", trials=["veri.txt"],
                        validation_fraction=0.34, seed=3)
    calls = []
    out = read(config, tmp_path / "work", progress=lambda *a: calls.append(a))

    assert out.root == root
    ids = [s.id for s in out.samples]
    expected = sorted(f"{s}/{v}/{u}" for s, vs in TREE.items() for v, us in vs.items() for u in us)
    assert ids == expected
    by_id = {s.id: s for s in out.samples}
    assert all(s.label == s.id.split("/")[0] for s in out.samples)
    assert by_id["id10001/vidA/00002"].audio == "wav/id10001/vidA/00002.wav"
    assert by_id["id10001/vidA/00001"].images == ["faces/id10001/vidA/00001/0001.jpg",
                                                  "faces/id10001/vidA/00001/0002.jpg"]
    # Utterances of a video with loose frames share them; others have none (reported, kept).
    for utt in TREE["id10002"]["vidC"]:
        assert by_id[f"id10002/vidC/{utt}"].images == ["faces/id10002/vidC/0003.jpg",
                                                       "faces/id10002/vidC/0010.png"]
    assert by_id["id10001/vidA/00002"].images == []
    no_images = {p.where for p in out.problems if p.kind == "no-images"}
    assert "id10001/vidA/00002" in no_images and "id10002/vidC/00001" not in no_images
    assert all(p.sample_id is None for p in out.problems)

    # Trial ids lose their extension; speakers in trials are the test split.
    assert out.trials == {"veri": [Trial(1, "id10003/vidD/00001", "id10003/vidD/00002"),
                                   Trial(0, "id10003/vidD/00001", "id10004/vidE/00001"),
                                   Trial(0, "id10004/vidF/00001", "id10003/vidD/00002")]}
    splits = {s.id: s.split for s in out.samples}
    assert {splits[i] for i in ids if i.startswith(("id10003", "id10004"))} == {"test"}
    train_side = [s for s in out.samples if s.label in ("id10001", "id10002")]
    assert {s.split for s in train_side} == {"train", "validation"}
    for label in ("id10001", "id10002"):  # 4 samples each, 0.34 -> one validation sample
        assert sum(s.split == "validation" for s in train_side if s.label == label) == 1
    assert calls[-1] == ("scan", len(expected), len(expected))

    again = read(config, tmp_path / "work")
    assert [(s.id, s.split) for s in again.samples] == [(s.id, s.split) for s in out.samples]


def test_formats_layout_and_empty_speakers(tmp_path):
    root = tmp_path / "vox2"
    write_wav(root / "aac/id20001/v1/00001.wav")
    (root / "aac/id20001/v1/00001.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))  # converted copy wins
    (root / "aac/id20001/v1/00002.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(64))  # listed, checks report
    write_wav(root / "aac/id20001/stray.wav")  # wrong depth
    (root / "aac/id20002/v9").mkdir(parents=True)  # a speaker without audio
    (root / "aac/id20001/v1/readme.txt").write_text("ignored")
    out = read(DataConfig(adapter="voxceleb", root=str(root), audio_dir="aac"), tmp_path / "w")

    assert [(s.id, s.audio) for s in out.samples] == [("id20001/v1/00001", "aac/id20001/v1/00001.wav"),
                                                      ("id20001/v1/00002", "aac/id20001/v1/00002.m4a")]
    kinds = {p.kind: p for p in out.problems}
    assert set(kinds) == {"bad-layout", "empty-class"}
    assert "stray.wav" in kinds["bad-layout"].detail and "<speaker>/<video>/<utt>" in kinds["bad-layout"].detail
    assert kinds["empty-class"].where == "aac/id20002"
    assert {s.split for s in out.samples} <= {"train", "validation"}


def test_trials_naming_unknown_samples_are_reported(tmp_path):
    root = tmp_path / "vox"
    build_tree(root)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "extra.txt").write_text("1 id10003/vidD/00001.wav id10099/zzz/00001.wav\n")
    out = read(DataConfig(adapter="voxceleb", root=str(root), trials=[str(lists / "extra.txt")]), tmp_path)
    [problem] = out.problems
    assert problem.kind == "unknown-trial-id" and "id10099/zzz/00001" in problem.detail
    assert "extra" in out.trials


def test_configuration_errors_name_the_key(tmp_path):
    with pytest.raises(XmdError, match="data.root is not set"):
        read(DataConfig(adapter="voxceleb"), tmp_path)
    with pytest.raises(XmdError, match="data.audio_dir"):
        read(DataConfig(adapter="voxceleb", root=str(tmp_path)), tmp_path)
    build_tree(tmp_path / "vox")
    with pytest.raises(XmdError, match="data.images_dir"):
        read(DataConfig(adapter="voxceleb", root=str(tmp_path / "vox"), images_dir="frames"), tmp_path)
    with pytest.raises(XmdError, match=r"data.trials\[0\].*nope.txt"):
        read(DataConfig(adapter="voxceleb", root=str(tmp_path / "vox"), trials=["nope.txt"]), tmp_path)
    (tmp_path / "bad.txt").write_text("1 id10003/vidD/00001.wav\n")
    with pytest.raises(XmdError, match="bad.txt:1"):
        read(DataConfig(adapter="voxceleb", root=str(tmp_path / "vox"), trials=[str(tmp_path / "bad.txt")]),
             tmp_path)
