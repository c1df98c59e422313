"""Benchmark of the shard store (not a test): run `python bench/bench_shards.py`.

(a) Gather batches of rows by random id from a store, against the same gather
    from a raw numpy memmap of the same array, side by side in one run.
    ratio = memmap time / store time (1.0 = as fast as a raw memmap; goal >= 0.5).
    Both files are read once beforehand, so the page cache holds both and the
    ratio measures the store's own overhead (id lookup, shard dispatch, float32
    conversion), not the disk.
(b) The cost of checking: the same gathers from a reader that hashes each shard's
    rows on first use (verify_rows=True, the default) and from one that does not,
    side by side: steady state (best of the passes, every shard already checked),
    and the first pass of a fresh reader, which pays for hashing every shard it
    touches. Also the time to open a reader (index checksum, shard header digests).
(c) Peak memory of a fresh process that opens a store and reads random batches,
    for stores of 100k and 1M rows: anonymous memory (what the process allocated)
    should not grow with the store; file-backed pages are the rows it touched.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xmd_cli.shards import ShardReader, ShardWriter  # noqa: E402

DIM, DTYPE = 512, "float16"


def build_store(directory: Path, n: int, shard_rows: int, seed: int = 0) -> tuple[float, Path]:
    """A store of n random rows with ids s0000000..., plus a raw .npy of the same array."""
    rng = np.random.default_rng(seed)
    raw_path = directory.parent / f"{directory.name}.npy"
    raw = np.lib.format.open_memmap(raw_path, mode="w+", dtype=np.float16, shape=(n, DIM))
    began = time.perf_counter()
    with ShardWriter(directory, {"bench": n, "seed": seed}, dim=DIM, dtype=DTYPE, shard_rows=shard_rows) as writer:
        for begin in range(0, n, 8192):
            rows = rng.standard_normal((min(8192, n - begin), DIM), dtype=np.float32)
            writer.add([f"s{i:07d}" for i in range(begin, begin + len(rows))], rows)
            raw[begin:begin + len(rows)] = rows.astype(np.float16)
    raw.flush()
    del raw
    return time.perf_counter() - began, raw_path


def warm(path: Path) -> None:
    for file in (sorted(path.iterdir()) if path.is_dir() else [path]):
        with open(file, "rb") as f:
            while f.read(1 << 24):
                pass


def best_of(functions: dict, inputs: dict, repeats: int) -> dict:
    """Seconds per batch of each function: the best of `repeats` passes over the same batches.
    The passes interleave (store, memmap, ... then again), so a busy machine slows each alike."""
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            batches = inputs[name]
            began = time.perf_counter()
            for batch in batches:
                fn(batch)
            best[name] = min(best[name], (time.perf_counter() - began) / len(batches))
    return best


def gather_bench(store: Path, raw_path: Path, n: int, batch: int, n_batches: int, repeats: int, seed: int) -> dict:
    warm(store)
    warm(raw_path)
    rng = np.random.default_rng(seed + 1)
    positions = [rng.integers(0, n, batch) for _ in range(n_batches)]
    id_batches = [[f"s{i:07d}" for i in p] for p in positions]
    reader = ShardReader(store)
    raw = np.load(raw_path, mmap_mode="r")
    row_of = {f"s{i:07d}": i for i in range(n)}
    for p, ids in zip(positions[:3], id_batches[:3]):  # same rows from both, before timing
        assert np.array_equal(reader.get(ids), raw[p].astype(np.float32))
    best = best_of({"store": reader.get, "memmap": lambda p: raw[p].astype(np.float32),
                    "memmap_dict": lambda ids: raw[[row_of[i] for i in ids]].astype(np.float32)},
                   {"store": id_batches, "memmap": positions, "memmap_dict": id_batches}, repeats)
    store_s, memmap_s, memmap_dict_s = best["store"], best["memmap"], best["memmap_dict"]
    safe_s = _safe_open_gather(store, reader, id_batches[: max(n_batches // 10, 5)])
    unchecked = ShardReader(store, verify_rows=False)
    steady = best_of({"verified": reader.get, "unverified": unchecked.get},
                     {"verified": id_batches, "unverified": id_batches}, repeats)
    first = {"verified": [], "unverified": []}
    opened = {"verified": [], "unverified": []}
    for _ in range(max(repeats // 2, 2)):  # interleaved fresh readers: first use of every shard each time
        for name, rows in (("verified", True), ("unverified", False)):
            began = time.perf_counter()
            fresh = ShardReader(store, verify_rows=rows)
            opened[name].append(time.perf_counter() - began)
            began = time.perf_counter()
            for ids in id_batches:
                fresh.get(ids)
            first[name].append((time.perf_counter() - began) / len(id_batches))
            fresh.close()
    return {"rows": n, "batch": batch, "batches": n_batches, "repeats": repeats,
            "shards": len(reader.index.shards),
            "store_ms_per_batch": store_s * 1e3, "memmap_ms_per_batch": memmap_s * 1e3,
            "memmap_with_id_dict_ms_per_batch": memmap_dict_s * 1e3,
            "safe_open_get_slice_ms_per_batch": safe_s * 1e3,
            "ratio_vs_memmap": memmap_s / store_s, "ratio_vs_memmap_with_id_dict": memmap_dict_s / store_s,
            "open_ms": min(opened["verified"]) * 1e3,
            "steady_verified_ms_per_batch": steady["verified"] * 1e3,
            "steady_unverified_ms_per_batch": steady["unverified"] * 1e3,
            "steady_ratio_unverified_over_verified": steady["unverified"] / steady["verified"],
            "first_pass_verified_ms_per_batch": min(first["verified"]) * 1e3,
            "first_pass_unverified_ms_per_batch": min(first["unverified"]) * 1e3,
            "first_pass_ratio_unverified_over_verified": min(first["unverified"]) / min(first["verified"])}


def _safe_open_gather(store: Path, reader: ShardReader, id_batches) -> float:
    """The alternative read path: the safetensors library's own lazy slices, one row at a time."""
    from safetensors import safe_open

    handles = {}
    pos_of = lambda ids: reader._positions(ids)  # noqa: E731 - same id lookup as the store
    began = time.perf_counter()
    for ids in id_batches:
        pos = pos_of(ids)
        out = np.empty((len(ids), reader.dim), np.float32)
        for k, (s, r) in enumerate(zip(reader.index.shard[pos].tolist(), reader.index.start[pos].tolist())):
            if s not in handles:
                handles[s] = safe_open(str(store / reader.index.shards[s]["name"]), framework="numpy")
            out[k] = handles[s].get_slice("rows")[r:r + 1]
    return (time.perf_counter() - began) / len(id_batches)


MEMORY_PROBE = """
import sys, json, numpy as np
sys.path.insert(0, sys.argv[1])
def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) // 1024 for k in ("VmHWM", "RssAnon", "RssFile")}
from xmd_cli.shards import ShardReader
before = status()
if sys.argv[4] == "store":
    reader = ShardReader(sys.argv[2])
    n = len(reader)
    read = lambda ids, rows: reader.get(ids)
else:  # the baseline: a raw memmap of the same array, ids are row numbers
    raw = np.load(sys.argv[2], mmap_mode="r")
    n = len(raw)
    read = lambda ids, rows: raw[rows].astype(np.float32)
opened = status()
rng = np.random.default_rng(0)
for _ in range(int(sys.argv[3])):
    rows = rng.integers(0, n, 256)
    read([f"s{i:07d}" for i in rows], rows)
after = status()
print(json.dumps({"before_mb": before, "after_open_mb": opened, "after_reads_mb": after}))
"""


def memory_bench(path: Path, batches: int, mode: str) -> dict:
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, root, str(path), str(batches), mode],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--shard-rows", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-batches", type=int, default=400)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus, "
          f"python {platform.python_version()}, numpy {np.__version__}")
    print(f"rows: dim {DIM} {DTYPE}, {args.shard_rows} rows a shard, ids 's%07d', random data (seed 0)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="xmd-bench-") as tmp:
        for label, n in (("small", args.small), ("large", args.large)):
            store = Path(tmp) / label
            seconds, raw_path = build_store(store, n, args.shard_rows)
            size = sum(f.stat().st_size for f in store.iterdir())
            print(f"\nstore of {n} rows: built in {seconds:.1f} s, {size / 2**20:.0f} MiB on disk")
            gather = gather_bench(store, raw_path, n, args.batch, args.batches, args.repeats, seed=0)
            print(f"(a) gather {args.batch} random ids, best of {args.repeats} passes over {args.batches} batches: "
                  f"store {gather['store_ms_per_batch']:.3f} ms, raw memmap {gather['memmap_ms_per_batch']:.3f} ms "
                  f"(+ id dict {gather['memmap_with_id_dict_ms_per_batch']:.3f} ms), "
                  f"safetensors safe_open slices {gather['safe_open_get_slice_ms_per_batch']:.3f} ms")
            print(f"    ratio memmap/store = {gather['ratio_vs_memmap']:.2f} (goal >= 0.5); "
                  f"with the id dict the memmap needs for string ids: {gather['ratio_vs_memmap_with_id_dict']:.2f}")
            print(f"(b) open a reader (index checksum + {gather['shards']} shard header digests): "
                  f"{gather['open_ms']:.1f} ms; gather with / without row verification: steady "
                  f"{gather['steady_verified_ms_per_batch']:.3f} / {gather['steady_unverified_ms_per_batch']:.3f} ms "
                  f"(ratio {gather['steady_ratio_unverified_over_verified']:.2f}), first pass of a fresh reader "
                  f"{gather['first_pass_verified_ms_per_batch']:.3f} / "
                  f"{gather['first_pass_unverified_ms_per_batch']:.3f}"
                  f" ms (ratio {gather['first_pass_ratio_unverified_over_verified']:.2f})")
            memory = {mode: memory_bench(path, args.memory_batches, mode)
                      for mode, path in (("store", store), ("memmap", raw_path))}
            for mode in ("store", "memmap"):
                b, o, a = (memory[mode][k] for k in ("before_mb", "after_open_mb", "after_reads_mb"))
                print(f"(c) {mode:6s}: fresh process, {args.memory_batches} batches of 256 random ids: peak RSS "
                      f"{b['VmHWM']} -> {a['VmHWM']} MiB; anonymous {b['RssAnon']} -> {o['RssAnon']} (opened) -> "
                      f"{a['RssAnon']} MiB (read); file-backed pages mapped {a['RssFile']} MiB")
            results[label] = {"rows": n, "build_s": seconds, "bytes": size, "gather": gather, "memory_mb": memory}
    for mode in ("store", "memmap"):
        peaks = [(r["rows"], r["memory_mb"][mode]["after_reads_mb"]) for r in results.values()]
        print(f"(c) {mode}: " + ", ".join(f"{n} rows: peak RSS {m['VmHWM']} MiB, anonymous {m['RssAnon']} MiB"
                                          for n, m in peaks))
    sizes = ", ".join(f"{r['rows']} rows {r['bytes'] / 2**20:.0f} MiB" for r in results.values())
    print(f"    store sizes on disk: {sizes}")
    print(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
