"""Benchmark: embedding utterances one at a time against same-length batches, side by side in one run.

Both sides embed the same synthetic-persons utterances (whole, eval mode, no
gradient) with the same randomly initialised ECAPA student of the demo-persons
recipe:
  batch 1     what evaluation did before: a DataLoader of batch 1, one forward pass an utterance;
  same-length `data.buckets.embed_dataset` (what evaluation does now): utterances of
              identical sample count share a forward pass, nothing is padded or cropped.
The eSpeak utterances of the demo differ in length, so the script also reports how
many distinct lengths there are; the speed-up can only come from repeated lengths.
A second case (labelled "equal-length control") centre-crops the same utterances
to one length *inside this benchmark only*, to show what batching gains when lengths
repeat (fixed-length segments, as some corpora ship); evaluation never crops.
Run: python bench/bench_embed.py [--identities 40] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from xmd_cli.data.buckets import embed_dataset
from xmd_cli.data.datasets import build_dataset, collate
from xmd_cli.data.manifest import read_manifest
from xmd_cli.inference import SPEECH_BATCH
from xmd_cli.models.students import build_student
from xmd_cli.recipe import load_recipe
from xmd_cli.recipe_files import find_recipe
from xmd_cli.stages.prepare import run_prepare


@torch.no_grad()
def one_at_a_time(student, dataset) -> np.ndarray:
    """The old evaluation path: batch 1 through `collate` (a batch of one needs no padding)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=1, shuffle=False, collate_fn=collate)
    rows = {}
    for inputs, _, indices, _ in loader:
        rows[int(indices[0])] = student(inputs).double().numpy()[0]
    return np.stack([rows[i] for i in range(len(dataset))])


class Cropped(torch.utils.data.Dataset):
    """The equal-length control: every utterance centre-cropped to `length` samples (benchmark only)."""

    def __init__(self, items, length: int):
        self.items = [(x[(x.numel() - length) // 2:][:length], y, i) for x, y, i in items]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def best_of(repeats: int, run) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def compare(name: str, student, dataset, repeats: int) -> None:
    alone_s, alone = best_of(repeats, lambda: one_at_a_time(student, dataset))
    batched_s, batched = best_of(repeats, lambda: embed_dataset(student, dataset, torch.device("cpu"),
                                                                batch=SPEECH_BATCH))
    lengths = [int(dataset[i][0].numel()) for i in range(len(dataset))]
    distinct = len(set(lengths))
    print(f"{name}: {len(dataset)} utterances, {distinct} distinct lengths "
          f"({len(dataset) / distinct:.2f} utterances a length), {sum(lengths) / 16000:.0f} s of audio")
    print(f"  batch 1      {alone_s:7.2f} s")
    print(f"  same-length  {batched_s:7.2f} s   speed-up x{alone_s / batched_s:.2f}   "
          f"max |difference| {np.abs(alone - batched).max():.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    recipe = load_recipe(find_recipe("demo-persons"), [f"data.persons.identities={args.identities}"])
    student = build_student(recipe.student).eval()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        run_prepare(recipe, work)
        manifest = read_manifest(work)
        dataset = build_dataset(manifest, ["train", "validation", "test"], recipe.student, train=False,
                                labels=manifest.labels)
        items = [dataset[i] for i in range(len(dataset))]  # read once: both sides time the network, not the disk
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ECAPA "
              f"{recipe.student.channels}, batch up to {SPEECH_BATCH}")
        compare("eSpeak utterances (as evaluated)", student, items, args.repeats)
        shortest = min(int(x.numel()) for x, _, _ in items)
        compare(f"equal-length control ({shortest / 16000:.2f} s crops, benchmark only)", student,
                Cropped(items, shortest), args.repeats)


if __name__ == "__main__":
    main()
