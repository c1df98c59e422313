"""The prepare stage end to end: adapters, checks, manifest, report, --strict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from xmd_cli.data.checks import build_report, check_samples
from xmd_cli.data.manifest import Sample, Trial, read_manifest
from xmd_cli.errors import XmdError
from xmd_cli.recipe import DataConfig, Recipe, load_recipe
from xmd_cli.stages.prepare import run_prepare


def write_wav(path: Path, seconds=0.5, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).uniform(-0.3, 0.3, int(seconds * 16000)).astype(np.float32), 16000)


def write_jpg(path: Path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(path)


def build_voxceleb(root: Path) -> None:
    """Four speakers; one corrupt wav, one zero-length wav, one damaged .m4a, one text file named .jpg."""
    for speaker, video, utts in (("id1", "v1", 2), ("id2", "v2", 2), ("id3", "v3", 2), ("id4", "v4", 2)):
        for n in range(1, utts + 1):
            write_wav(root / f"wav/{speaker}/{video}/0000{n}.wav", seed=n)
        write_jpg(root / f"faces/{speaker}/{video}/0001.jpg")
    (root / "wav/id1/v1/00003.wav").write_bytes(np.random.default_rng(5).bytes(700))
    (root / "wav/id1/v1/00004.wav").write_bytes(b"")
    (root / "wav/id2/v2/00003.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(300))
    (root / "faces/id3/v3/00002").mkdir(parents=True)
    (root / "faces/id3/v3/00002/0001.jpg").write_text("frame extraction failed\n")
    (root / "veri.txt").write_text("1 id3/v3/00001.wav id3/v3/00002.wav\n"
                                   "0 id3/v3/00001.wav id4/v4/00001.wav\n"
                                   "1 id4/v4/00001.wav id4/v4/00002.wav\n")


def voxceleb_recipe(root: Path) -> Recipe:
    return Recipe(data=DataConfig(adapter="voxceleb", root=str(root), images_dir="faces",
                                  trials=[str(root / "veri.txt")], validation_fraction=0.5))


def test_bad_files_are_reported_skips(tmp_path):
    root, work = tmp_path / "vox", tmp_path / "work"
    build_voxceleb(root)
    calls = []
    summary = run_prepare(voxceleb_recipe(root), work, progress=lambda *a: calls.append(a))

    manifest = read_manifest(work)
    ids = [s.id for s in manifest.samples]
    assert ids == ["id1/v1/00001", "id1/v1/00002", "id2/v2/00001", "id2/v2/00002",
                   "id3/v3/00001", "id4/v4/00001", "id4/v4/00002"]
    assert manifest.root == root.resolve()
    assert manifest.labels == {"id1": 0, "id2": 1, "id3": 2, "id4": 3}
    assert manifest.by_id()["id2/v2/00001"].images == ["faces/id2/v2/0001.jpg"]
    assert manifest.path(manifest.by_id()["id2/v2/00001"].audio).is_file()
    # The trial naming the dropped id3/v3/00002 is gone; the others stay.
    assert manifest.trials == {"veri": [Trial(0, "id3/v3/00001", "id4/v4/00001"),
                                        Trial(1, "id4/v4/00001", "id4/v4/00002")]}
    assert {s.split for s in manifest.samples if s.label in ("id3", "id4")} == {"test"}

    assert summary["samples"] == 7 and summary["samples_dropped"] == 4 and summary["classes"] == 4
    assert summary["splits"] == {"train": 2, "validation": 2, "test": 3}
    assert summary["trials"] == {"veri": 2} and summary["trials_dropped"] == {"veri": 1}
    assert summary["problems"] == {"unreadable-audio": 3, "unreadable-image": 1}

    report = json.loads((work / "prepare-report.json").read_text())
    assert report["samples_in"] == 11 and report["samples_out"] == 7 and report["problems"] == 4
    details = {e["sample_id"]: e["detail"] for kind in report["by_kind"].values() for e in kind["examples"]}
    assert "not readable as audio" in details["id1/v1/00003"] and "00003.wav" in details["id1/v1/00003"]
    assert "zero-length" in details["id1/v1/00004"]
    assert "00003.m4a" in details["id2/v2/00003"] and "PyAV" in details["id2/v2/00003"]
    assert "text file" in details["id3/v3/00002"] and "frame extraction failed" in details["id3/v3/00002"]
    assert report["by_kind"]["unreadable-audio"] == {"count": 3, "samples_affected": 3,
                                                     "examples": report["by_kind"]["unreadable-audio"]["examples"]}

    resolved = load_recipe(work / "prepare.recipe.yaml")
    assert resolved.data.adapter == "voxceleb" and resolved.data.root == str(root)
    # Each distinct file checked once: 11 audio files, 4 video frames shared by their
    # utterances, and the one per-utterance frame.
    assert calls[0] == ("scan", 11, 11) and calls[-1] == ("check", 16, 16)
    assert json.loads((work / "dataset.json").read_text())["report"] == "prepare-report.json"


def test_strict_makes_problems_fatal_after_the_report(tmp_path):
    root, work = tmp_path / "vox", tmp_path / "work"
    build_voxceleb(root)
    with pytest.raises(XmdError) as error:
        run_prepare(voxceleb_recipe(root), work, strict=True)
    message = str(error.value)
    assert str(work / "prepare-report.json") in message and "no manifest was written" in message
    assert "3 unreadable-audio" in message and "1 unreadable-image" in message
    assert not (work / "manifest.jsonl").exists()
    report = json.loads((work / "prepare-report.json").read_text())
    assert report["strict"] is True and report["problems"] == 4


def test_kaldi_missing_files_and_empty_classes(tmp_path, monkeypatch):
    data, work = tmp_path / "data", tmp_path / "work"
    monkeypatch.chdir(tmp_path)
    write_wav(data / "w/u1.wav")
    write_wav(data / "w/u3.wav", seconds=2.0)
    write_jpg(data / "img/u1.jpg")
    (data / "wav.scp").write_text("u1 w/u1.wav\nu2 w/gone.wav\nu3 w/u3.wav\nu4 w/u3.wav\n")
    (data / "utt2spk").write_text("u1 A\nu2 B\nu3 A\nu4 A\n")
    (data / "images.scp").write_text("u1 img/u1.jpg\nu4 img/none.jpg\n")
    summary = run_prepare(Recipe(data=DataConfig(adapter="kaldi", root=str(data), split="train")), work)

    assert [s.id for s in read_manifest(work).samples] == ["u1", "u3"]
    assert summary["problems"] == {"empty-class": 1, "missing-file": 2}
    report = json.loads((work / "prepare-report.json").read_text())
    missing = {e["sample_id"]: e["detail"] for e in report["by_kind"]["missing-file"]["examples"]}
    assert "gone.wav" in missing["u2"] and "listed at wav.scp:2" in missing["u2"]
    assert "none.jpg" in missing["u4"] and "not found" in missing["u4"]
    assert report["by_kind"]["empty-class"]["examples"][0]["where"] == "B"


def test_no_usable_samples_is_an_error_naming_the_problems(tmp_path):
    root = tmp_path / "vox"
    (root / "wav/id1/v1").mkdir(parents=True)
    (root / "wav/id1/v1/00001.wav").write_bytes(b"")
    with pytest.raises(XmdError, match="no usable samples(.|\n)*zero-length"):
        run_prepare(Recipe(data=DataConfig(adapter="voxceleb", root=str(root))), tmp_path / "work")
    assert (tmp_path / "work/prepare-report.json").exists()


def test_check_samples_duplicates_segments_and_shared_files(tmp_path):
    write_wav(tmp_path / "rec.wav", seconds=2.0)
    write_jpg(tmp_path / "f.jpg")
    samples = [Sample("a", "x", "train", audio="rec.wav", segment=(0.0, 1.0), images=["f.jpg"]),
               Sample("b", "x", "train", audio="rec.wav", segment=(1.0, 2.0), images=["f.jpg"]),
               Sample("b", "x", "train", audio="rec.wav", segment=(0.5, 1.0)),
               Sample("c", "y", "train", audio="rec.wav", segment=(1.9, 4.0)),
               Sample("d", "y", "train")]
    calls = []
    problems = check_samples(samples, tmp_path, progress=lambda *a: calls.append(a))
    assert calls[-1] == ("check", 2, 2)  # one recording and one image, each checked once
    assert sorted((p.kind, p.sample_id) for p in problems) == [
        ("bad-segment", "c"), ("duplicate-id", "b"), ("no-media", "d")]
    report = build_report(problems, samples_in=5, samples_out=1, dropped_trials={"t": 3})
    assert report["samples_dropped"] == 4 and report["trials_dropped"] == {"t": 3}
    assert report["by_kind"]["duplicate-id"]["count"] == 1
    assert "listed 2 times" in report["by_kind"]["duplicate-id"]["examples"][0]["detail"]
    json.dumps(report)
