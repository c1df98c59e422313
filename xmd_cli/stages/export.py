"""`xmd export`: a checkpoint's student as TorchScript and ONNX, checked against eager PyTorch.

What is exported is the whole student as deployed (docs/deploy.md):
  speech   (wave float32 [batch, samples] at the student's rate, in [-1, 1];
            lengths float32 [batch], each utterance's length relative to the longest)
            -> embedding float32 [batch, dim]. The Kaldi fbank is inside the graph.
  image    (images float32 [batch, 3, size, size], resized and normalised as
            `data.transforms.image_transform` does at evaluation) -> embedding [batch, dim].
Batch (and, for speech, time) axes are dynamic. Embeddings are the raw student
output, as `xmd embed` writes them; cosine scoring normalises them.

Both files come from one trace of the eager student (torch.jit.trace, and the
TorchScript-based ONNX exporter, which traces the same way): the fbank is written
to trace (models/fbank.py), and a trace follows shapes at run time where a
`torch.jit.script` of speechbrain's ECAPA does not compile. A trace records one
path through Python branches, so every export is checked before it is kept:
each file runs probe inputs of several lengths and batch sizes, and the largest
difference of its unit-normalised embeddings from the eager student's must stay
under `tolerance`, or the file is removed and the export fails. export.json
records the probes and the differences measured.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.io import file_sha256, write_json
from xmd_cli.vocab import is_speech_arch

FORMATS = ("torchscript", "onnx")
FILES = {"torchscript": "student.torchscript.pt", "onnx": "student.onnx"}
TOLERANCE = 1e-4  # max abs difference of unit-normalised embeddings, exported vs eager
PROBE_SECONDS = (1.0, 1.7, 3.2)
OPSET = 17


class SpeechDeployable(nn.Module):
    """(wave, lengths) -> embedding: the student with lengths always given, one traced path."""

    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.student(wave, lengths)


class ImageDeployable(nn.Module):
    def __init__(self, student: nn.Module):
        super().__init__()
        self.student = student

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.student(images)


def _speech_probes(rate: int) -> list[tuple[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Named inputs: each probe length alone, then all of them padded into one batch."""
    rng = np.random.default_rng(0)
    waves = []
    for seconds in PROBE_SECONDS:
        t = np.arange(int(seconds * rate)) / rate
        tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t)  # voiced-like energy and some noise
        waves.append(torch.from_numpy((tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)))
    probes = [(f"{s:g} s, batch 1", (w[None], torch.ones(1))) for s, w in zip(PROBE_SECONDS, waves)]
    longest = max(w.numel() for w in waves)
    padded = torch.zeros(len(waves), longest)
    for row, wave in enumerate(waves):
        padded[row, :wave.numel()] = wave
    lengths = torch.tensor([w.numel() / longest for w in waves], dtype=torch.float32)
    probes.append((f"{', '.join(f'{s:g}' for s in PROBE_SECONDS)} s padded, batch {len(waves)}", (padded, lengths)))
    return probes


def _image_probes(size: int) -> list[tuple[str, tuple[torch.Tensor]]]:
    generator = torch.Generator().manual_seed(0)
    return [(f"batch {n}", (torch.randn(n, 3, size, size, generator=generator),)) for n in (1, 3)]


def _reference(student: nn.Module, speech: bool, inputs: tuple) -> torch.Tensor:
    """What eager PyTorch computes for a probe. One utterance goes in alone without lengths,
    as `xmd embed` and evaluate run it; a padded batch goes in with its lengths (padding
    changes what the convolutions see at each utterance's end, in eager PyTorch too)."""
    if speech and inputs[0].shape[0] == 1:
        return student(inputs[0])
    return student(*inputs)


def padding_effect(student: nn.Module, inputs: tuple) -> float:
    """Max |padded batch - each utterance alone| of unit-normalised eager embeddings: not an
    export error, but what a deployment that pads batches should expect (export.json)."""
    wave, lengths = inputs
    alone = [student(wave[i:i + 1, :int(round(float(lengths[i]) * wave.shape[1]))]) for i in range(wave.shape[0])]
    return float((_unit(student(wave, lengths)) - _unit(torch.cat(alone))).abs().max())


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _export_torchscript(module: nn.Module, example: tuple, path: Path):
    with warnings.catch_warnings():
        # The tracer warns about Python branches on shapes (the fbank's too-short check, speechbrain's
        # padding): the parity check below measures whether the traced path holds at other shapes.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(str(path))
    loaded = torch.jit.load(str(path))
    return lambda *inputs: loaded(*inputs)


def _export_onnx(module: nn.Module, example: tuple, path: Path, speech: bool, opset: int):
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise XmdError("ONNX export needs the onnx and onnxruntime packages",
                       hint="install them (pip install onnx onnxruntime), or pass --format torchscript") from None
    names = ["wave", "lengths"] if speech else ["images"]
    axes = {"wave": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}} if speech else {"images": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's shape warnings, as above
        torch.onnx.export(module, example, str(path), input_names=names, output_names=["embedding"],
                          dynamic_axes={**axes, "embedding": {0: "batch"}}, opset_version=opset, dynamo=False)
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(*inputs):
        feed = {name: x.numpy() for name, x in zip(names, inputs)}
        return torch.from_numpy(session.run(["embedding"], feed)[0])
    return run


def _parity(run, student: nn.Module, speech: bool, probes) -> dict[str, float]:
    """{probe name: max abs difference of unit-normalised embeddings, exported vs eager}."""
    diffs = {}
    with torch.no_grad():
        for name, inputs in probes:
            diffs[name] = float((_unit(run(*inputs)) - _unit(_reference(student, speech, inputs))).abs().max())
    return diffs


def run_export(checkpoint: Path, out_dir: Path, *, formats: tuple[str, ...] = FORMATS, tolerance: float = TOLERANCE,
               opset: int = OPSET, out: Output | None = None) -> dict:
    """Export the student of `checkpoint` into `out_dir`; returns export.json's content."""
    from xmd_cli.inference import describe_embedding, load_checkpoint

    out = out or Output()
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise XmdError(f"--format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}")
    model = load_checkpoint(Path(checkpoint), torch.device("cpu"))  # exported graphs are device-neutral
    config, student = model.config, model.student.eval()
    speech = is_speech_arch(config.arch)
    module = (SpeechDeployable if speech else ImageDeployable)(student).eval()
    probes = _speech_probes(config.sample_rate) if speech else _image_probes(config.image_size)
    example = probes[0][1]  # batch 1: what a trace keeps of the batch size then broadcasts correctly
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files, parity = {}, {}
    for fmt in formats:
        path = out_dir / FILES[fmt]
        out.note(f"[bold]xmd export[/bold] {fmt}: {model.describe} -> {path}")
        with torch.no_grad():
            run = (_export_torchscript(module, example, path) if fmt == "torchscript"
                   else _export_onnx(module, example, path, speech, opset))
        parity[fmt] = _parity(run, student, speech, probes)
        worst = max(parity[fmt].values())
        if not worst < tolerance:  # also refuses NaN
            path.unlink(missing_ok=True)
            raise XmdError(f"{path}: the exported student differs from eager PyTorch by {worst:.2e} "
                           f"(unit-normalised embeddings; tolerance {tolerance:g}), so it was removed",
                           hint="report this with the checkpoint's meta.json; --tolerance raises the bound")
        files[fmt] = {"file": path.name, "sha256": file_sha256(path)}
    report = _report(model, speech, files, parity, tolerance, opset, describe_embedding(model))
    if speech:
        with torch.no_grad():
            report["parity"]["padding_effect"] = padding_effect(student, probes[-1][1])
    write_json(out_dir / "export.json", report)
    out.table("export: max |exported - eager| (unit-normalised embeddings)",
              [(fmt, name, f"{d:.2e}") for fmt, rows in parity.items() for name, d in rows.items()],
              ("format", "probe", "max abs diff"))
    return {**report, "out": str(out_dir)}


def _report(model, speech: bool, files: dict, parity: dict, tolerance: float, opset: int, embedding: str) -> dict:
    config = model.config
    if speech:
        inputs = {"wave": f"float32 [batch, samples], mono at {config.sample_rate} Hz, in [-1, 1]",
                  "lengths": "float32 [batch], each utterance's samples / the longest's (1 for all when unpadded)"}
        front_end = (f"inside the graph: Kaldi fbank, {config.n_mels} mel bins, 25 ms windows every 10 ms, "
                     "mean-normalised per utterance")
    else:
        from xmd_cli.data.transforms import IMAGE_MEAN, IMAGE_STD

        inputs = {"images": f"float32 [batch, 3, {config.image_size}, {config.image_size}], RGB resized to "
                            f"{config.image_size} px, scaled to [0, 1], normalised by mean {list(IMAGE_MEAN)} "
                            f"and std {list(IMAGE_STD)}"}
        front_end = "outside the graph: decode, resize and normalise as `inputs` says"
    return {"checkpoint": str(model.directory),
            "checkpoint_weights_sha256": file_sha256(model.directory / "weights.safetensors"),
            "student": config.model_dump(mode="json"), "inputs": inputs,
            "output": f"embedding: float32 [batch, {config.embedding_dim}], raw (cosine scoring normalises)",
            "front_end": front_end, "xmd_embedding": embedding, "files": files, "onnx_opset": opset,
            "parity": {"measure": "max abs difference of unit-normalised embeddings, exported vs eager PyTorch "
                                  "on the same input (batch 1: eager without lengths, as xmd embeds)",
                       "tolerance": tolerance, "results": parity}}
