"""`xmd export` through the real Typer app, and parity of the exported files with eager PyTorch.

The checkpoints are randomly initialised students saved as `xmd train` saves them:
parity is a property of the graph, not of what the weights learned, so nothing
here trains. The exported files are loaded here independently of the export's own
check (onnxruntime, torch.jit.load) and compared with the eager student on
utterances of 1.0, 1.7 and 3.2 s, and on a padded batch of all three.
"""

import json

import numpy as np
import pytest
import torch
from deploy_fixtures import TINY_CNN, TINY_ECAPA, TINY_RESNET, flat, random_checkpoint, xmd

from xmd_cli.inference import load_checkpoint

# Builds students and exports and runs them in three runtimes.
pytestmark = pytest.mark.slow

ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-4  # max abs difference of unit-normalised embeddings (docs/deploy.md)
RATE = 16000


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def utterances(seconds=(1.0, 1.7, 3.2)):
    rng = np.random.default_rng(7)
    return [(0.1 * rng.standard_normal(int(s * RATE))).astype(np.float32) for s in seconds]


@pytest.fixture(scope="module", params=[TINY_ECAPA, TINY_RESNET], ids=["ecapa", "resnet34"])
def speech_export(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param["arch"])
    checkpoint = random_checkpoint(root / "ckpt", **request.param)
    report = json.loads(xmd("export", "-c", checkpoint, "-o", root / "out", "--json").stdout)
    return checkpoint, root / "out", report


def test_speech_student_exports_whole_and_matches_eager(speech_export):
    checkpoint, out, report = speech_export
    student = load_checkpoint(checkpoint, torch.device("cpu")).student.eval()
    session = ort.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(out / "student.torchscript.pt"))
    for wave in utterances():
        with torch.no_grad():
            eager = unit(student(torch.from_numpy(wave)[None]).numpy())
            ts = unit(scripted(torch.from_numpy(wave)[None], torch.ones(1)).numpy())
        onnx = unit(session.run(["embedding"], {"wave": wave[None], "lengths": np.ones(1, np.float32)})[0])
        assert np.abs(onnx - eager).max() < TOLERANCE, f"onnx, {wave.size / RATE} s"
        assert np.abs(ts - eager).max() < TOLERANCE, f"torchscript, {wave.size / RATE} s"
    assert {"torchscript", "onnx"} == set(report["files"]) and report["parity"]["tolerance"] == TOLERANCE
    assert all(d < TOLERANCE for rows in report["parity"]["results"].values() for d in rows.values())


def test_dynamic_batch_with_padding_matches_eager_on_the_same_batch(speech_export):
    checkpoint, out, _ = speech_export
    student = load_checkpoint(checkpoint, torch.device("cpu")).student.eval()
    waves = utterances((1.7, 1.0))  # batch 2, the longest first: not the shapes the trace saw
    padded = np.zeros((2, waves[0].size), np.float32)
    for row, wave in enumerate(waves):
        padded[row, :wave.size] = wave
    lengths = np.array([1.0, waves[1].size / waves[0].size], np.float32)
    with torch.no_grad():
        eager = unit(student(torch.from_numpy(padded), torch.from_numpy(lengths)).numpy())
    session = ort.InferenceSession(str(out / "student.onnx"), providers=["CPUExecutionProvider"])
    onnx = unit(session.run(["embedding"], {"wave": padded, "lengths": lengths})[0])
    assert onnx.shape == (2, 8) and np.abs(onnx - eager).max() < TOLERANCE


def test_image_student_exports(tmp_path):
    checkpoint = random_checkpoint(tmp_path / "ckpt", **TINY_CNN)
    report = json.loads(xmd("export", "-c", checkpoint, "-o", tmp_path / "out", "--json").stdout)
    assert "normalised by mean" in report["inputs"]["images"]
    student = load_checkpoint(checkpoint, torch.device("cpu")).student.eval()
    images = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        eager = unit(student(torch.from_numpy(images)).numpy())
        ts = unit(torch.jit.load(str(tmp_path / "out" / "student.torchscript.pt"))(torch.from_numpy(images)).numpy())
    session = ort.InferenceSession(str(tmp_path / "out" / "student.onnx"), providers=["CPUExecutionProvider"])
    onnx = unit(session.run(["embedding"], {"images": images})[0])
    assert np.abs(onnx - eager).max() < TOLERANCE and np.abs(ts - eager).max() < TOLERANCE


def test_an_export_outside_the_tolerance_is_removed(tmp_path):
    checkpoint = random_checkpoint(tmp_path / "ckpt", **TINY_CNN)
    # Tolerance 0 cannot be met (differences are >= 0): the check must refuse and remove the file.
    result = xmd("export", "-c", checkpoint, "-o", tmp_path / "out", "--format", "torchscript",
                 "--tolerance", "0", code=1)
    assert "differs from eager PyTorch" in flat(result.output) and "so it was removed" in flat(result.output)
    assert not (tmp_path / "out" / "student.torchscript.pt").exists()


def test_a_missing_checkpoint_is_one_clear_error(tmp_path):
    result = xmd("export", "-c", tmp_path / "nowhere", "-o", tmp_path / "out", code=1)
    assert f"{tmp_path / 'nowhere'}: no checkpoint here" in flat(result.output)
