"""Benchmark: what a distill step costs, measured side by side in one run.

(1) cached vs online teacher: one training step of the student that reads the
    teacher rows from the shard store, against the same step that runs the
    teacher network (facenet's InceptionResnetV1 on 160 px face images, read
    from disk) for every batch. MTCNN detection is left out of the online step,
    which makes the online step cheaper than in practice: the ratio is a lower bound.
(2) loss-stack overhead: the full method's losses (projection head, margin loss,
    shared AAM classifier on both sides, QAW) against plain cross-entropy
    training of the same student on the same batches. Goal: <= 10 %.

Run: python bench/bench_distill.py [--steps 8] [--batch 16]
Data: synthetic-persons --tiny generated into a temporary directory (seed 0).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xmd_cli.data.datasets import build_dataset, collate
from xmd_cli.data.manifest import read_manifest
from xmd_cli.models.distill import DistillationLoss
from xmd_cli.models.students import build_student
from xmd_cli.recipe import MethodConfig, StudentConfig, load_recipe
from xmd_cli.shards import ShardReader, ShardWriter
from xmd_cli.stages.prepare import run_prepare

STUDENT = StudentConfig(channels=[128, 128, 128, 128, 384], attention_channels=64, embedding_dim=128,
                        crop_seconds=2.0)


def batches(dataset, size: int, count: int):
    order = np.random.default_rng(0).permutation(len(dataset))
    for k in range(count):
        rows = [dataset[int(i)] for i in order[(k * size) % len(dataset):][:size]]
        yield collate(rows)


def timed(step, data) -> float:
    times = []
    for batch in data:
        start = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])  # the first step warms caches and allocators


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run_prepare(load_recipe(None, [], {"data": {"adapter": "synthetic-persons", "tiny": True}}), work)
        manifest = read_manifest(work)
        labels = {label: i for i, label in enumerate(sorted({s.label for s in manifest.samples}))}
        data = build_dataset(manifest, ["train", "validation", "test"], STUDENT, train=True, labels=labels)
        from facenet_pytorch import InceptionResnetV1

        from xmd_cli.data.media import load_image

        teacher = InceptionResnetV1().eval()
        ids = [s.id for s in data.samples]
        with ShardWriter(work / "store", {"bench": 1}, dim=512, dtype="float16") as writer:
            writer.add(ids, np.random.default_rng(0).normal(size=(len(ids), 512)).astype(np.float32))
        store = ShardReader(work / "store")

        def teacher_online(indices):
            images = [load_image(manifest.path(data.samples[i].images[0])).resize((160, 160)) for i in indices]
            x = torch.stack([torch.from_numpy(np.asarray(im, np.float32)).permute(2, 0, 1) for im in images])
            with torch.no_grad():
                return teacher((x - 127.5) / 128.0)

        def teacher_cached(indices):
            return torch.from_numpy(store.get([data.samples[i].id for i in indices]))

        student = build_student(STUDENT)
        method = DistillationLoss.from_recipe(MethodConfig(), student_dim=128, teacher_dim=512, classes=len(labels))
        head = torch.nn.Linear(128, len(labels))
        optimizer = torch.optim.AdamW([*student.parameters(), *method.parameters(), *head.parameters()], lr=1e-3)

        def step_with(teacher_rows):
            def step(batch):
                waves, y, idx, lengths = batch
                t = teacher_rows(idx.tolist())
                q = torch.rand(len(y))
                terms = method(student(waves, lengths), t, y, teacher_quality=q, student_quality=q)
                optimizer.zero_grad()
                terms["total"].backward()
                optimizer.step()
            return step

        def plain_step(batch):
            waves, y, idx, lengths = batch
            loss = F.cross_entropy(head(student(waves, lengths)), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        data_batches = list(batches(data, args.batch, args.steps))
        # Interleave the variants so that load on the machine hits them alike.
        results = {"cached": [], "online": [], "plain": []}
        for _ in range(2):
            results["cached"].append(timed(step_with(teacher_cached), data_batches))
            results["online"].append(timed(step_with(teacher_online), data_batches))
            results["plain"].append(timed(plain_step, data_batches))
        best = {k: min(v) for k, v in results.items()}
    print(f"setup: ECAPA-TDNN channels {STUDENT.channels}, batch {args.batch} x {STUDENT.crop_seconds} s crops, "
          f"{args.steps} steps (median of steps 2..N, best of 2 interleaved passes), torch threads "
          f"{torch.get_num_threads()}, CPU; data synthetic-persons --tiny seed 0; teacher InceptionResnetV1 "
          "(random weights, 160 px, no MTCNN)")
    print(f"(1) step with cached teacher rows   {best['cached'] * 1000:8.1f} ms")
    print(f"    step running the teacher online {best['online'] * 1000:8.1f} ms")
    print(f"    ratio online / cached           {best['online'] / best['cached']:8.2f}x  (cached is faster by this)")
    print(f"(2) plain cross-entropy step        {best['plain'] * 1000:8.1f} ms")
    overhead = best["cached"] / best["plain"] - 1
    print(f"    full method's loss-stack overhead {overhead * 100:6.1f} %  "
          "(goal <= 10 %; includes reading the teacher rows)")


if __name__ == "__main__":
    main()
