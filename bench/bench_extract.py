"""Benchmark: extract-teacher's throughput against the teacher's bare forward pass.

All sides embed the same samples in the same batches with the same teacher:
  forward   the teacher's own embed() on items already loaded into memory;
  read      the same, reading and preprocessing each batch first (no store);
  extract   xmd's whole stage: manifest, loading in the DataLoader, embed(), the
            shard writer (fp16 rows, atomic shard files, index), failures, summary.
Goal: extract / bare throughput >= 0.8.

Teachers: the shipped text teacher (all-MiniLM-L6-v2) on synthetic-captions
captions, and a checkpoint teacher (a randomly initialised image CNN saved as an
xmd checkpoint) on synthetic-captions images. Run: python bench/bench_extract.py
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

import xmd_cli.stages.extract as extract_stage
from xmd_cli.console import Output
from xmd_cli.data.manifest import read_manifest
from xmd_cli.models.distill import DistillationLoss
from xmd_cli.models.students import build_student
from xmd_cli.recipe import MethodConfig, StudentConfig, load_recipe
from xmd_cli.stages.prepare import run_prepare
from xmd_cli.teachers import build_teacher
from xmd_cli.training.checkpoint import save_checkpoint
from xmd_cli.training.loop import StudentWithMethod


def image_checkpoint(directory: Path) -> Path:
    config = StudentConfig(arch="image-cnn", modality="image", embedding_dim=128, image_size=64)
    model = StudentWithMethod(build_student(config), DistillationLoss.from_recipe(MethodConfig(), student_dim=128,
                                                                       teacher_dim=None, classes=2))
    return save_checkpoint(directory / "ckpt", model, {}, {"task": "train", "student": config.model_dump(mode="json")})


def bare_seconds(teacher, manifest, batch: int, *, loading: bool) -> float:
    """The teacher alone: embed() on preloaded items, or (loading) reading each batch then embed()."""
    samples = manifest.samples
    items = None if loading else [teacher.load(s, manifest.root) for s in samples]
    start = time.perf_counter()
    for k in range(0, len(samples), batch):
        chunk = [teacher.load(s, manifest.root) for s in samples[k:k + batch]] if loading else items[k:k + batch]
        teacher.embed(chunk)
    return time.perf_counter() - start


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        run_prepare(load_recipe(None, [], {"data": {"adapter": "synthetic-captions"}}), work)
        manifest = read_manifest(work)
        cases = [("text (MiniLM)", {"kind": "text"}),
                 ("checkpoint (image CNN, 64 px)", {"kind": "checkpoint", "weights": str(image_checkpoint(Path(tmp)))})]
        print(f"data: synthetic-captions default size, seed 0, {len(manifest.samples)} samples; CPU, "
              f"torch threads {torch.get_num_threads()}; batch 32; best of 2 runs each, interleaved")
        for name, teacher_options in cases:
            recipe = load_recipe(None, [], {"teacher": {**teacher_options, "batch_size": 32}})
            teacher = build_teacher(recipe.teacher, torch.device("cpu"))
            # Both sides use this one built teacher: construction (model loading) is excluded on both.
            extract_stage.build_teacher = lambda config, device, built=teacher: built
            bare_runs, loading_runs, extract_runs = [], [], []
            for _ in range(2):
                bare_runs.append(bare_seconds(teacher, manifest, 32, loading=False))
                loading_runs.append(bare_seconds(teacher, manifest, 32, loading=True))
                shutil.rmtree(work / "teacher", ignore_errors=True)
                start = time.perf_counter()
                extract_stage.run_extract(recipe, work, device="cpu", out=Output(verbosity=0))
                extract_runs.append(time.perf_counter() - start)
            bare, loading, extract = min(bare_runs), min(loading_runs), min(extract_runs)
            n = len(manifest.samples)
            print(f"{name:30s} forward only {n / bare:7.1f}/s | read + forward {n / loading:7.1f}/s | "
                  f"extract-teacher {n / extract:7.1f}/s | ratio vs forward {bare / extract:4.2f}, "
                  f"vs read + forward {loading / extract:4.2f} (goal >= 0.8)")


if __name__ == "__main__":
    main()
