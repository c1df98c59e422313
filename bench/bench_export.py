"""Benchmark: a student's embedding throughput on CPU, eager PyTorch vs TorchScript vs ONNX Runtime.

The three sides run the same weights on the same inputs, side by side in one
process, in interleaved rounds (eager, TorchScript, ORT, eager, ...), so a load
change on the machine hits all three alike; each side's figure is its best round.
The exported files are what `xmd export` writes (run_export on a checkpoint of a
randomly initialised student: throughput does not depend on what weights learned).
  speech  ECAPA-TDNN at the recipe default size (channels 512x4 + 1536, 192-d),
          waveform in (the fbank inside every side), 3 s utterances: batch 1 (as
          xmd embeds) and batch 8 (equal lengths, lengths all 1)
  image   the image CNN at its default size (128 px, [32, 64, 128, 256]), batch 1 and 32
torch and ORT each get the same number of threads. Run: python bench/bench_export.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from xmd_cli.console import Output
from xmd_cli.inference import load_checkpoint
from xmd_cli.models.distill import DistillationLoss
from xmd_cli.models.students import build_student
from xmd_cli.recipe import MethodConfig, StudentConfig
from xmd_cli.stages.export import run_export
from xmd_cli.training.checkpoint import save_checkpoint
from xmd_cli.training.job import StudentWithMethod

ROUNDS = 3


def checkpoint(directory: Path, config: StudentConfig) -> Path:
    torch.manual_seed(0)
    model = StudentWithMethod(build_student(config), DistillationLoss.from_recipe(
        MethodConfig(), student_dim=config.embedding_dim, teacher_dim=None, classes=2))
    return save_checkpoint(directory, model, {}, {"task": "train", "student": config.model_dump(mode="json")})


def sides(ckpt: Path, out: Path, speech: bool):
    import onnxruntime

    student = load_checkpoint(ckpt, torch.device("cpu")).student.eval()
    scripted = torch.jit.load(str(out / "student.torchscript.pt"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(out / "student.onnx"), options, providers=["CPUExecutionProvider"])
    if speech:
        return {"eager": lambda x: student(torch.from_numpy(x), torch.ones(x.shape[0])),
                "torchscript": lambda x: scripted(torch.from_numpy(x), torch.ones(x.shape[0])),
                "onnxruntime": lambda x: session.run(["embedding"], {"wave": x, "lengths": np.ones(x.shape[0],
                                                                                                  np.float32)})}
    return {"eager": lambda x: student(torch.from_numpy(x)),
            "torchscript": lambda x: scripted(torch.from_numpy(x)),
            "onnxruntime": lambda x: session.run(["embedding"], {"images": x})}


def measure(run_sides: dict, batches: list[np.ndarray]) -> dict[str, float]:
    """Inputs a second of each side: best of ROUNDS interleaved rounds over `batches`."""
    items = sum(b.shape[0] for b in batches)
    best = {name: 0.0 for name in run_sides}
    with torch.inference_mode():
        for name, run in run_sides.items():
            run(batches[0])  # warm-up: allocations, ORT's first-run planning
        for _ in range(ROUNDS):
            for name, run in run_sides.items():
                start = time.perf_counter()
                for batch in batches:
                    run(batch)
                best[name] = max(best[name], items / (time.perf_counter() - start))
    return best


def case(title: str, config: StudentConfig, inputs: dict[int, list[np.ndarray]], tmp: Path) -> None:
    speech = config.modality == "speech"
    ckpt = checkpoint(tmp / config.arch / "ckpt", config)
    report = run_export(ckpt, tmp / config.arch / "out", out=Output(verbosity=0))
    worst = max(d for rows in report["parity"]["results"].values() for d in rows.values())
    print(f"\n{title}; exported files agree with eager within {worst:.1e} (unit-normalised)")
    print("| batch | eager | TorchScript | ONNX Runtime | TorchScript / eager | ORT / eager |")
    print("|---|---|---|---|---|---|")
    run_sides = sides(ckpt, tmp / config.arch / "out", speech)
    for batch, batches in inputs.items():
        rate = measure(run_sides, batches)
        unit = "utt/s" if speech else "img/s"
        print(f"| {batch} | {rate['eager']:.1f} {unit} | {rate['torchscript']:.1f} {unit} | "
              f"{rate['onnxruntime']:.1f} {unit} | {rate['torchscript'] / rate['eager']:.2f} | "
              f"{rate['onnxruntime'] / rate['eager']:.2f} |")


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"torch threads: {torch.get_num_threads()} (ORT intra-op threads the same), {ROUNDS} interleaved rounds")
    speech = StudentConfig(arch="ecapa", modality="speech")
    image = StudentConfig(arch="image-cnn", modality="image")

    def waves(batch: int, count: int) -> list[np.ndarray]:
        return [(0.1 * rng.standard_normal((batch, 3 * 16000))).astype(np.float32) for _ in range(count)]

    def images(batch: int, count: int) -> list[np.ndarray]:
        return [rng.standard_normal((batch, 3, 128, 128)).astype(np.float32) for _ in range(count)]

    with tempfile.TemporaryDirectory() as tmp:
        case("ECAPA-TDNN 512x4+1536, 192-d, 3 s utterances", speech, {1: waves(1, 8), 8: waves(8, 2)}, Path(tmp))
        case("image CNN [32, 64, 128, 256], 128 px", image, {1: images(1, 32), 32: images(32, 4)}, Path(tmp))


if __name__ == "__main__":
    main()
