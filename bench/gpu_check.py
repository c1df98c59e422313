"""GPU check, ready to run on a CUDA machine in under 5 minutes: bf16 vs fp32 vs CPU, and a torchrun smoke run.

Steps (each the real CLI, `python -m xmd_cli`, on generated synthetic-persons data):
  prepare (--tiny, or the default size with --size default), train the demo face teacher,
  extract-teacher on cuda and on cpu (samples/s), score-quality, then distill three ways:
  cuda with bf16 autocast (training.amp true), cuda fp32 (amp false) and cpu, reading
  samples/s from each run's metrics.jsonl; last, a 1-GPU torchrun/NCCL run (--nproc 1 --device cuda).
Figures go to OUT/gpu_check.json (OUT: --out, else $OUT, else the current folder).

Run:  python bench/gpu_check.py [--out DIR] [--size tiny|default] [--epochs 2]
      python bench/gpu_check.py --cpu-only     # dry run of the CPU part, on a machine without CUDA
Without CUDA (and without --cpu-only) it stops at once with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDENT = ["--set", "student.channels=[128,128,128,128,384]", "--set", "student.attention_channels=64",
           "--set", "student.embedding_dim=128", "--set", "training.log_every=1"]
BATCH = {"tiny": 8, "default": 32}  # the tiny preset has 18 face-teacher and ~24 student training samples


def xmd(*args: str, workdir: Path, timeout: float = 240) -> float:
    """Run one CLI command; returns its wall time in seconds (a failure stops the check with its output)."""
    command = [sys.executable, "-m", "xmd_cli", *args]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        sys.exit(f"gpu_check: `xmd {' '.join(args)}` failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def samples_per_s(run: Path) -> float:
    """The run's training throughput: the last logged samples_per_s (it averages over the run)."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return float([line["samples_per_s"] for line in lines if "samples_per_s" in line][-1])


def extract(workdir: Path, device: str, weights: str, name: str) -> dict:
    store_root = workdir / "teacher"
    if store_root.exists():  # a store is reused when present: time a fresh extraction each time
        os.rename(store_root, workdir / f"teacher-before-{name}")
    seconds = xmd("extract-teacher", "-r", "demo-persons", "-w", ".", "--device", device,
                  "--set", f"teacher.weights={weights}", "-q", workdir=workdir)
    samples = sum(1 for _ in open(workdir / "manifest.jsonl"))
    return {"seconds": round(seconds, 2), "samples_per_s": round(samples / seconds, 1)}


def distill(workdir: Path, device: str, amp: bool, run: dict, name: str, extra=()) -> dict:
    """`run`: epochs, batch and the face teacher's weights, the same for every variant."""
    seconds = xmd("distill", "-r", "demo-persons", "-w", ".", "--device", device, "--set", f"name={name}",
                  "--set", f"training.batch_size={run['batch']}", "--set", f"training.epochs={run['epochs']}",
                  "--set", f"teacher.weights={run['weights']}", "--set", f"training.amp={str(amp).lower()}",
                  *STUDENT, *extra, "-q", workdir=workdir)
    return {"seconds": round(seconds, 2), "samples_per_s": round(samples_per_s(workdir / "runs" / name), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--size", choices=["tiny", "default"], default="tiny")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cpu-only", action="store_true", help="dry-run the CPU part (no CUDA needed)")
    args = parser.parse_args()
    import torch

    if not args.cpu_only and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available (torch.cuda.is_available() is False): run it on a CUDA machine, "
              "or pass --cpu-only to dry-run the CPU part", file=sys.stderr)
        sys.exit(2)
    report: dict = {"torch": torch.__version__, "size": args.size, "epochs": args.epochs,
                    "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xmd-gpu-check-") as tmp:
        workdir = Path(tmp)
        fast = "cpu" if args.cpu_only else "cuda"
        prepare = ["prepare", "-r", "demo-persons", "-w", ".", "-q"] + (["--tiny"] if args.size == "tiny" else [])
        report["prepare_s"] = round(xmd(*prepare, workdir=workdir), 2)
        face = ["--set", "training.epochs=2", "--set", f"training.batch_size={BATCH[args.size]}"]
        if args.size == "tiny":
            face += ["--set", "student.image_size=64"]  # as `xmd demo --task speaker --tiny`
        report["face_teacher_s"] = round(xmd("train", "-r", "face-teacher", "-w", ".", "--device", fast, *face,
                                             "-q", workdir=workdir), 2)
        weights = str(workdir / "runs" / "face-teacher" / "checkpoints" / "best")
        report["extract"] = {"cpu": extract(workdir, "cpu", weights, "cpu")}
        if not args.cpu_only:
            report["extract"]["cuda"] = extract(workdir, "cuda", weights, "cuda")
        for side in ("face", "speech"):
            xmd("score-quality", "--modality", side, "-r", "demo-persons", "-w", ".", "-q", workdir=workdir)
        run = {"epochs": args.epochs, "batch": BATCH[args.size], "weights": weights}
        report["distill"] = {"cpu_fp32": distill(workdir, "cpu", False, run, "cpu")}
        if not args.cpu_only:
            report["distill"]["cuda_bf16"] = distill(workdir, "cuda", True, run, "bf16")
            report["distill"]["cuda_fp32"] = distill(workdir, "cuda", False, run, "fp32")
            d = report["distill"]
            report["speedup"] = {"bf16_over_fp32": round(d["cuda_bf16"]["samples_per_s"]
                                                         / d["cuda_fp32"]["samples_per_s"], 2),
                                 "bf16_over_cpu": round(d["cuda_bf16"]["samples_per_s"]
                                                        / d["cpu_fp32"]["samples_per_s"], 2)}
            report["torchrun_nccl_1gpu"] = distill(workdir, "cuda", True, {**run, "epochs": 1}, "ddp",
                                                   extra=("--nproc", "1"))
    report["total_s"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
