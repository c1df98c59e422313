"""`xmd embed` through the real Typer app: sources, formats, resuming, refusing another run's file.

The checkpoints are randomly initialised students saved as `xmd train` saves them
(what is tested is the plumbing around the student, not what it learned), so
nothing here trains; the data is the tiny synthetic-persons set.
"""

import json
import shutil

import numpy as np
import pytest
import torch
from deploy_fixtures import TINY_CNN, TINY_ECAPA, flat, random_checkpoint, xmd

from xmd_cli.data.manifest import read_manifest
from xmd_cli.inference import embed_samples, load_checkpoint
from xmd_cli.shards.embedfile import read_embeddings

# Embeds real audio through the CLI with student networks.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    xmd("prepare", "synthetic-persons", "--tiny", "-w", root / "work", "-q")
    return {"work": root / "work", "ecapa": random_checkpoint(root / "ecapa", **TINY_ECAPA),
            "other": random_checkpoint(root / "other", seed=1, **TINY_ECAPA),
            "cnn": random_checkpoint(root / "cnn", **TINY_CNN)}


@pytest.fixture(scope="module")
def workdir_npz(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("npz") / "all.npz"
    result = json.loads(xmd("embed", setup["work"], "-c", setup["ecapa"], "-o", out, "--json", "-q").stdout)
    return out, result


def test_workdir_embeddings_are_what_evaluate_computes(setup, workdir_npz):
    out, result = workdir_npz
    ids, rows = read_embeddings(out)
    manifest = read_manifest(setup["work"])
    assert ids == [s.id for s in manifest.samples] and rows.shape == (len(ids), 8) and rows.dtype == np.float32
    assert result["embedded"] == len(ids) and result["source"] == "workdir"
    # The same student, loader and embedder as evaluate: the same vectors.
    expected = embed_samples(load_checkpoint(setup["ecapa"], torch.device("cpu")), manifest, manifest.samples,
                             stage="test")
    np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-6)
    assert not (out.parent / "all.npz.parts").exists()  # parts are removed once the file is whole


def test_rerun_is_a_noop_and_another_run_is_refused(setup, workdir_npz):
    out, _ = workdir_npz
    before = out.read_bytes()
    again = json.loads(xmd("embed", setup["work"], "-c", setup["ecapa"], "-o", out, "--json", "-q").stdout)
    assert again["embedded"] == 0 and out.read_bytes() == before
    refused = xmd("embed", setup["work"], "-c", setup["other"], "-o", out, code=1)
    assert "exists and was not written by this run" in flat(refused.output) and "--force" in refused.output
    assert "checkpoint_weights_sha256" in flat(refused.output) and out.read_bytes() == before


def test_split_and_formats_read_back_the_same(setup, workdir_npz, tmp_path):
    all_ids, all_rows = read_embeddings(workdir_npz[0])
    test_ids = [s.id for s in read_manifest(setup["work"]).split("test")]
    for name in ("t.safetensors", "t.ark"):
        xmd("embed", setup["work"], "-c", setup["ecapa"], "-o", tmp_path / name, "--split", "test", "-q")
        ids, rows = read_embeddings(tmp_path / name)
        assert ids == test_ids
        np.testing.assert_allclose(rows, all_rows[[all_ids.index(i) for i in ids]], rtol=1e-5, atol=1e-6)
    # Kaldi's scp points into the ark under its final name.
    first = (tmp_path / "t.scp").read_text().splitlines()[0]
    assert first.startswith(f"{test_ids[0]} {tmp_path / 't.ark'}:")


def test_folder_wav_scp_and_list_name_ids_by_path(setup, workdir_npz, tmp_path, monkeypatch):
    all_ids, all_rows = read_embeddings(workdir_npz[0])
    by_id = dict(zip(all_ids, all_rows))
    audio = setup["work"] / "data" / "synthetic-persons" / "audio"
    xmd("embed", audio, "-c", setup["ecapa"], "-o", tmp_path / "folder.npz", "-q")
    ids, rows = read_embeddings(tmp_path / "folder.npz")
    assert sorted(ids) == sorted(all_ids)  # folder ids: paths below it without extension = the manifest's
    np.testing.assert_allclose(rows, np.stack([by_id[i] for i in ids]), rtol=1e-5, atol=1e-6)

    monkeypatch.chdir(audio.parent)  # wav.scp paths are relative to the current directory, as in Kaldi
    (tmp_path / "wav.scp").write_text(f"utt-a audio/{ids[0]}.wav\nutt-b {audio}/{ids[1]}.wav\n")
    xmd("embed", tmp_path / "wav.scp", "-c", setup["ecapa"], "-o", tmp_path / "scp.npz", "-q")
    scp_ids, scp_rows = read_embeddings(tmp_path / "scp.npz")
    assert scp_ids == ["utt-a", "utt-b"]
    np.testing.assert_allclose(scp_rows, np.stack([by_id[ids[0]], by_id[ids[1]]]), rtol=1e-5, atol=1e-6)

    (tmp_path / "piped.scp").write_text("utt-a sox in.flac -t wav - |\n")
    piped = xmd("embed", tmp_path / "piped.scp", "-c", setup["ecapa"], "-o", tmp_path / "p.npz", code=1)
    assert f"{tmp_path / 'piped.scp'}:1: utt-a is a command" in flat(piped.output)
    (tmp_path / "list.txt").write_text(f"audio/{ids[0]}.wav\naudio/missing.wav\n")
    missing = xmd("embed", tmp_path / "list.txt", "-c", setup["ecapa"], "-o", tmp_path / "l.npz", code=1)
    assert f"{tmp_path / 'list.txt'}:2: audio/missing.wav: no such file" in flat(missing.output)


def test_an_interrupted_run_resumes_where_it_stopped(setup, tmp_path):
    audio = sorted(setup["work"].rglob("*.wav"))[:7]
    folder = tmp_path / "in"
    folder.mkdir()
    for k, path in enumerate(audio):
        shutil.copy(path, folder / f"u{k}.wav")
    (folder / "u6.wav").write_bytes(b"RIFF not really")  # the last input is broken
    out = tmp_path / "e.npz"
    failed = xmd("embed", folder, "-c", setup["ecapa"], "-o", out, "--part-size", "2", code=1)
    assert "u6.wav" in flat(failed.output) and not out.exists()
    shutil.copy(audio[6], folder / "u6.wav")  # fix it and rerun the same command
    resumed = json.loads(xmd("embed", folder, "-c", setup["ecapa"], "-o", out, "--part-size", "2",
                             "--json").stdout)
    assert (resumed["resumed"], resumed["embedded"]) == (6, 1)  # three whole parts survived the failure
    fresh = tmp_path / "fresh.npz"
    xmd("embed", folder, "-c", setup["ecapa"], "-o", fresh, "-q")
    assert read_embeddings(out)[0] == read_embeddings(fresh)[0] == [f"u{k}" for k in range(7)]
    np.testing.assert_allclose(read_embeddings(out)[1], read_embeddings(fresh)[1], rtol=1e-6, atol=1e-7)


def test_image_student_embeds_a_folder_of_images(setup, tmp_path):
    faces = setup["work"] / "data" / "synthetic-persons" / "faces"
    xmd("embed", faces, "-c", setup["cnn"], "-o", tmp_path / "faces.npz", "-q")
    ids, rows = read_embeddings(tmp_path / "faces.npz")
    assert len(ids) == len(list(faces.rglob("*.png"))) and rows.shape == (len(ids), 8)
    assert np.isfinite(rows).all()
