"""The shard store: round trip, crash and resume, locking, fingerprints, verify, export, ranks, frames."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from xmd_cli.errors import XmdError
from xmd_cli.shards import (
    ShardReader,
    ShardWriter,
    export,
    merge_index,
    repair,
    store_dir,
    summary,
    verify,
)
from xmd_cli.shards.format import atomic_write, list_shards, read_header, shard_bytes

DIM = 24
FP = {"kind": "face", "weights_sha256": "a" * 64, "preprocessing": {"crop": 160, "margin": 14},
      "manifest_sha256": "m" * 64, "dtype": "float16", "xmd_version": "0.1.0"}
ROOT = Path(__file__).resolve().parent.parent


def row_of(sample_id: str) -> np.ndarray:
    """The 'teacher': a deterministic row per id, so two runs can be compared row by row."""
    return np.random.default_rng(int(sample_id[1:])).standard_normal(DIM).astype(np.float32)


def ids_of(n: int) -> list[str]:
    return [f"s{i:05d}" for i in range(n)]


def write_all(directory, ids, *, shard_rows=16, dtype="float16", batch=7, **kw):
    with ShardWriter(directory, FP, dim=DIM, dtype=dtype, shard_rows=shard_rows, **kw) as writer:
        todo = writer.pending_ids(ids)
        for begin in range(0, len(todo), batch):
            part = todo[begin:begin + batch]
            writer.add(part, np.stack([row_of(i) for i in part]))
    return writer


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_round_trip_random_data(tmp_path, dtype):
    rng = np.random.default_rng(0)
    ids = ids_of(203)
    data = rng.standard_normal((203, DIM)).astype(np.float32) * 3
    with ShardWriter(tmp_path / "s", FP, dim=DIM, dtype=dtype, shard_rows=32) as writer:
        for begin, size in zip(np.cumsum([0, 5, 64, 1, 100]), [5, 64, 1, 100, 33]):
            writer.add(ids[begin:begin + size], data[begin:begin + size])
    assert writer.shards_written == 7 and writer.rows_written == 203  # 6 full shards + 11 rows
    reader = ShardReader(tmp_path / "s", expect_fingerprint=FP)
    order = rng.permutation(203)
    got = reader.get([ids[i] for i in order])
    assert got.dtype == np.float32 and got.shape == (203, DIM)
    assert np.array_equal(got, data[order].astype(dtype).astype(np.float32))
    assert len(reader) == 203 and list(reader.ids) == sorted(ids)
    assert "s00007" in reader and "s99999" not in reader and "s000071" not in reader
    assert reader.missing(["s00001", "nope"]) == ["nope"]
    with pytest.raises(KeyError, match="nope"):
        reader.get(["s00001", "nope"])
    assert verify(tmp_path / "s") == []


CRASHING_WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from tests.test_shards import FP, DIM, ids_of, row_of
    from xmd_cli.shards import ShardWriter

    real_replace, shards_renamed = os.replace, []
    def replace(src, dst):
        # Stop for good inside the 4th shard's write: its temporary file is on disk, not renamed.
        if os.path.basename(str(dst)).startswith("shard-"):
            if len(shards_renamed) == 3:
                print("MID-SHARD", flush=True)
                time.sleep(120)
            shards_renamed.append(dst)
        real_replace(src, dst)
    os.replace = replace

    with ShardWriter(sys.argv[2], FP, dim=DIM, shard_rows=16) as writer:
        for sample_id in writer.pending_ids(ids_of(int(sys.argv[3]))):
            writer.add([sample_id], row_of(sample_id)[None])
""")


def test_crash_mid_shard_then_rerun_equals_uninterrupted_run(tmp_path):
    n = 100
    store = tmp_path / "crashed"
    child = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(ROOT), str(store), str(n)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "MID-SHARD", child.stderr.read()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert len(list_shards(store)) == 3
    assert any(name.startswith(".tmp-shard-") for name in os.listdir(store))  # the half-written shard
    assert not (store / "index.safetensors").exists()

    with ShardWriter(store, FP, dim=DIM, shard_rows=16) as writer:  # the killed writer's lock is gone
        assert len(writer.pending_ids(ids_of(n))) == n - 3 * 16
    write_all(store, ids_of(n))
    write_all(tmp_path / "clean", ids_of(n))

    resumed, clean = ShardReader(store), ShardReader(tmp_path / "clean")
    assert len(resumed) == n and len(set(resumed.ids.tolist())) == n
    assert sum(s["rows"] for s in resumed.index.shards) == n  # exactly one row per sample
    assert np.array_equal(resumed.get(ids_of(n)), clean.get(ids_of(n)))
    assert verify(store) == []
    assert not any(name.startswith(".tmp-") for name in os.listdir(store))


def test_second_writer_is_refused_and_the_first_still_finishes(tmp_path):
    with ShardWriter(tmp_path / "s", FP, dim=DIM, shard_rows=4) as first:
        with pytest.raises(XmdError, match=f"being written by process {os.getpid()}"):
            ShardWriter(tmp_path / "s", FP, dim=DIM, shard_rows=4).open()
        code = ("import sys; sys.path.insert(0, sys.argv[1]); from tests.test_shards import *\n"
                "try: ShardWriter(sys.argv[2], FP, dim=DIM).open()\n"
                "except XmdError as e: print(e)")
        done = subprocess.run([sys.executable, "-c", code, str(ROOT), str(tmp_path / "s")],
                              capture_output=True, text=True, timeout=60)
        assert "a second writer is refused" in done.stdout, done.stderr
        first.add(["s00001"], row_of("s00001")[None])
    with ShardWriter(tmp_path / "s", FP, dim=DIM, shard_rows=4) as again:  # free once the first closed
        assert again.pending_ids(["s00001", "s00002"]) == ["s00002"]


def test_changed_fingerprint_is_refused_with_what_differs(tmp_path):
    store = tmp_path / "s"
    write_all(store, ids_of(20))
    other = dict(FP, weights_sha256="b" * 64, preprocessing={"crop": 112, "margin": 14})
    with pytest.raises(XmdError) as refused:
        ShardReader(store, expect_fingerprint=other)
    message = str(refused.value)
    assert "weights_sha256: expected bbbb" in message and "but the store has aaaa" in message
    assert "preprocessing" in message and "kind" not in message and "manifest" not in message
    stale = ShardReader(store, expect_fingerprint=other, allow_stale=True)
    assert len(stale.stale) == 2 and stale.get(["s00003"]).shape == (1, DIM)
    # a consumer that names fewer components is not refused for the ones it leaves out
    assert ShardReader(store, expect_fingerprint={"kind": "face"}).stale == []

    with pytest.raises(XmdError, match="weights_sha256"):
        ShardWriter(store, other, dim=DIM).open()
    with pytest.raises(XmdError, match="dtype: expected float32 but the store has float16"):
        ShardWriter(store, FP, dim=DIM, dtype="float32").open()
    with ShardWriter(store, other, dim=DIM, force=True) as writer:  # --force recomputes from scratch
        assert len(writer.pending_ids(ids_of(20))) == 20
        writer.add(["s00000"], row_of("s00000")[None])
    assert len(ShardReader(store, expect_fingerprint=other)) == 1
    assert store_dir(tmp_path, "teacher", FP) != store_dir(tmp_path, "teacher", other)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_verify_catches_corruption(tmp_path):
    store = tmp_path / "s"
    write_all(store, ids_of(64), shard_rows=16)
    names = [name for _r, _s, name in list_shards(store)]
    first, second, third, fourth = (store / n for n in names)
    _flip(first, first.stat().st_size - 5)  # one byte of row data
    header = read_header(second)
    text = second.read_bytes()
    _flip(second, text.index(b"s00020"))  # one byte of an id in the header
    third.write_bytes(third.read_bytes()[:-100])  # truncated
    fourth.unlink()
    problems = "\n".join(verify(store))
    assert f"{names[0]}: data checksum mismatch" in problems
    assert f"{names[1]}: unreadable" in problems and header.ids[4] == "s00020"
    assert f"{names[2]}: unreadable" in problems and "truncated" in problems
    assert f"{names[3]}: listed in index.safetensors but missing on disk" in problems


def test_verify_catches_nan_rows_duplicates_and_orphans(tmp_path):
    store = tmp_path / "s"
    write_all(store, ids_of(32), shard_rows=16)
    digest = ShardReader(store).meta["fingerprint"]
    rows = np.stack([row_of(i) for i in ["s00100", "s00101"]]).astype(np.float16)
    rows[1, 3] = np.nan
    atomic_write(store / "shard-r000-00007.safetensors", shard_bytes(rows, ["s00100", "s00101"], None,
                                                                     fingerprint=digest, rank=0))
    atomic_write(store / "shard-r000-00008.safetensors", shard_bytes(rows[:1], ["s00001"], None,
                                                                     fingerprint=digest, rank=0))
    problems = "\n".join(verify(store))
    assert "shard-r000-00007.safetensors: 1 row(s) hold NaN or Inf (ids s00101)" in problems
    assert "id 's00001' is in both shard-r000-00000.safetensors and shard-r000-00008.safetensors" in problems
    assert "shard-r000-00007.safetensors: orphan shard" in problems
    with pytest.raises(XmdError, match="stored twice"):
        merge_index(store)


def test_writer_refuses_non_finite_repeated_and_out_of_range_rows(tmp_path):
    with ShardWriter(tmp_path / "s", FP, dim=DIM) as writer:
        bad = np.stack([row_of("s00001"), row_of("s00002")])
        bad[1, 0] = np.inf
        with pytest.raises(XmdError, match="NaN or Inf: s00002"):
            writer.add(["s00001", "s00002"], bad)
        with pytest.raises(XmdError, match="exceed the float16 range: s00003"):
            writer.add(["s00003"], np.full((1, DIM), 1e6))
        writer.add(["s00004"], row_of("s00004")[None])
        with pytest.raises(XmdError, match="already stored: s00004"):
            writer.add(["s00004"], row_of("s00004")[None])
        with pytest.raises(XmdError, match="repeat"):
            writer.pending_ids(["s00001", "s00001"])
    assert ShardReader(tmp_path / "s").missing(["s00001", "s00004"]) == ["s00001"]


def test_export_round_trip(tmp_path):
    store = tmp_path / "s"
    ids = ids_of(50)
    write_all(store, ids, dtype="float32")
    expected = ShardReader(store).get(ids)
    export(store, tmp_path / "rows.csv")
    lines = (tmp_path / "rows.csv").read_text().splitlines()
    assert lines[0].split(",")[:2] == ["id", "v0"] and len(lines) == 51
    assert [line.split(",")[0] for line in lines[1:]] == ids
    assert np.array_equal(np.loadtxt(tmp_path / "rows.csv", delimiter=",", skiprows=1,
                                     usecols=range(1, DIM + 1), dtype=np.float32), expected)
    export(store, tmp_path / "rows.npz")
    with np.load(tmp_path / "rows.npz") as archive:
        assert archive["ids"].tolist() == ids and np.array_equal(archive["rows"], expected)
    export(store, tmp_path / "rows.npy")
    assert np.array_equal(np.load(tmp_path / "rows.npy"), expected)
    assert (tmp_path / "rows.ids.txt").read_text().split() == ids
    with pytest.raises(XmdError, match="name the file .csv, .npz or .npy"):
        export(store, tmp_path / "rows.parquet")


def test_two_ranks_into_one_store_equal_one_writer(tmp_path):
    ids = ids_of(90)
    store = tmp_path / "ranks"
    writers = [ShardWriter(store, FP, dim=DIM, shard_rows=8, rank=r, world_size=2) for r in (0, 1)]
    for writer in writers:
        writer.open()
    shares = [w.pending_ids(ids) for w in writers]
    assert sorted(shares[0] + shares[1]) == ids and not set(shares[0]) & set(shares[1])
    for step in range(0, 45, 5):  # the ranks write interleaved, each into its own shards
        for writer, share in zip(writers, shares):
            part = share[step:step + 5]
            writer.add(part, np.stack([row_of(i) for i in part]))
    writers[0].close()
    before_last = ShardReader(store)  # rank 1's last partial shard is not written yet
    writers[1].close()
    assert {rank for rank, _s, _n in list_shards(store)} == {0, 1}
    single = tmp_path / "single"
    write_all(single, ids)
    reader = ShardReader(store)
    assert len(reader) == 90 and len(before_last) < 90
    assert np.array_equal(reader.get(ids), ShardReader(single).get(ids))
    assert verify(store) == []
    info = summary(store)
    assert info["ranks"] == [0, 1] and info["ids"] == 90 and info["index"] == "current"


def test_frames_mean_by_default_and_every_frame_on_request(tmp_path):
    rng = np.random.default_rng(3)
    counts = [3, 1, 5, 2, 4, 6]
    ids = ids_of(len(counts))
    frames = rng.standard_normal((sum(counts), DIM)).astype(np.float32)
    means = np.add.reduceat(frames, np.cumsum([0] + counts[:-1]), axis=0) / np.array(counts)[:, None]
    with ShardWriter(tmp_path / "mean", FP, dim=DIM, dtype="float32", shard_rows=4) as writer:
        writer.add(ids, frames, counts=counts)
    assert np.allclose(ShardReader(tmp_path / "mean").get(ids), means, atol=1e-6)

    with ShardWriter(tmp_path / "all", FP, dim=DIM, dtype="float32", shard_rows=4, frames="all") as writer:
        writer.add(ids[:2], frames[:4], counts=counts[:2])
        writer.add(ids[2:], frames[4:], counts=counts[2:])
    reader = ShardReader(tmp_path / "all")
    for header in (read_header(tmp_path / "all" / n) for _r, _s, n in list_shards(tmp_path / "all")):
        assert header.n_rows == sum(header.counts)  # an id's frames never straddle two shards
    assert reader.counts(ids).tolist() == counts and len(reader) == 6
    assert np.allclose(reader.get(ids[::-1]), means[::-1], atol=1e-6)
    assert np.array_equal(reader.frames_of("s00002"), frames[4:9])
    picked = reader.get(["s00005"] * 40, pick="random", rng=np.random.default_rng(0))
    own = frames[sum(counts[:5]):]
    assert all(any(np.array_equal(p, f) for f in own) for p in picked) and len(np.unique(picked, axis=0)) > 1
    assert np.array_equal(reader.get(ids, pick="first"), frames[np.cumsum([0] + counts[:-1])])
    assert verify(tmp_path / "all") == []
    export(tmp_path / "all", tmp_path / "all.npz")
    with np.load(tmp_path / "all.npz") as archive:
        assert archive["ids"].tolist() == np.repeat(ids, counts).tolist()
        assert archive["frame"].tolist()[:4] == [0, 1, 2, 0] and np.array_equal(archive["rows"], frames)


def test_reader_refuses_a_damaged_index_and_repair_rebuilds_it(tmp_path):
    store = tmp_path / "s"
    write_all(store, ids_of(30), shard_rows=8)
    (store / "index.safetensors").write_bytes(b"garbage")
    with pytest.raises(XmdError, match="index.safetensors: unreadable .*shorter") as caught:
        ShardReader(store)
    assert "xmd shards repair" in str(caught.value)
    assert (store / "index.safetensors").read_bytes() == b"garbage"  # a reader never rewrites it
    assert any("index.safetensors" in p for p in verify(store))
    report = repair(store)
    assert report["shards_dropped"] == 0 and report["ids"] == 30 and verify(store) == []
    write_all(store, ids_of(40), shard_rows=8)  # resume adds shards; the writer's close re-indexes
    assert len(ShardReader(store)) == 40 and verify(store) == []


def test_old_index_without_checksum_is_refused_until_repaired(tmp_path):
    from safetensors.numpy import load_file, save_file

    store = tmp_path / "s"
    write_all(store, ids_of(20), shard_rows=8)
    path = store / "index.safetensors"
    with open(path, "rb") as f:
        import json
        import struct
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    metadata = {"format": "xmd-index-1", "fingerprint": header["__metadata__"]["fingerprint"],
                "shards": header["__metadata__"]["shards"]}
    save_file(load_file(str(path)), str(path), metadata=metadata)  # what xmd 0.1 wrote
    with pytest.raises(XmdError, match="older xmd .*without a checksum") as caught:
        ShardReader(store)
    assert f"xmd shards repair {store}" in str(caught.value)
    assert repair(store)["shards_dropped"] == 0
    assert len(ShardReader(store)) == 20


def test_lookup_survives_colliding_keys(tmp_path, monkeypatch):
    # A deliberately weak key (3 values for 300 ids) forces the collision path that
    # a 64-bit key reaches about once in 10^7 ids for a million-id store.
    import xmd_cli.shards.index as index_module

    real = index_module.id_keys
    monkeypatch.setattr(index_module, "id_keys", lambda raw: (real(raw) % np.uint64(3)) << np.uint64(62))
    ids = ids_of(300)
    write_all(tmp_path / "s", ids, shard_rows=64, dtype="float32")
    reader = ShardReader(tmp_path / "s")
    order = np.random.default_rng(1).permutation(300)
    expected = np.stack([row_of(ids[i]) for i in order])
    assert np.array_equal(reader.get([ids[i] for i in order]), expected)
    assert reader.missing(["s00299", "s00300", "t00001"]) == ["s00300", "t00001"]


def test_an_exception_inside_the_writer_keeps_complete_samples(tmp_path):
    with pytest.raises(RuntimeError, match="teacher failed"):
        with ShardWriter(tmp_path / "s", FP, dim=DIM, shard_rows=100) as writer:
            writer.add(ids_of(3), np.stack([row_of(i) for i in ids_of(3)]))
            raise RuntimeError("teacher failed")
    with ShardWriter(tmp_path / "s", FP, dim=DIM, shard_rows=100) as writer:  # lock released
        assert writer.pending_ids(ids_of(5)) == ["s00003", "s00004"]


def test_rerun_removes_a_dead_writers_temporary_files(tmp_path):
    store = tmp_path / "s"
    write_all(store, ids_of(10), shard_rows=4)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftovers = [f".tmp-shard-r000-00009.safetensors.{dead.stdout.strip()}",
                 f".tmp-index.safetensors.{dead.stdout.strip()}",
                 f".tmp-meta.json.{os.getpid()}"]  # the last one's process (this one) is alive: kept
    for name in leftovers:
        (store / name).write_bytes(b"partial")
    assert summary(store)["leftover_temporaries"] == sorted(leftovers)
    write_all(store, ids_of(12), shard_rows=4)
    assert summary(store)["leftover_temporaries"] == [leftovers[2]]


def test_ids_of_any_text_and_length(tmp_path):
    ids = ["a", "id10270/x6uYqmx31kE/00001", "spk/é-01", "日本-2", "with,comma \"quoted\"", "x" * 70]
    rows = np.random.default_rng(2).standard_normal((len(ids), DIM)).astype(np.float32)
    with ShardWriter(tmp_path / "s", FP, dim=DIM, dtype="float32", shard_rows=4) as writer:
        writer.add(ids, rows)
    reader = ShardReader(tmp_path / "s")
    assert np.array_equal(reader.get(ids[::-1]), rows[::-1])
    assert sorted(reader.ids.tolist()) == sorted(ids)
    assert reader.missing(["日本", "spk/é-0", "x" * 71, "x" * 69]) == ["日本", "spk/é-0", "x" * 71, "x" * 69]
    export(tmp_path / "s", tmp_path / "rows.csv")
    import csv
    with open(tmp_path / "rows.csv", newline="") as f:
        assert sorted(row[0] for row in list(csv.reader(f))[1:]) == sorted(ids)


def test_reader_refuses_a_shard_swapped_after_open_and_repair_waits_for_writers(tmp_path):
    store, other = tmp_path / "s", tmp_path / "other"
    write_all(store, ids_of(32), shard_rows=8)
    with ShardWriter(other, {**FP, "kind": "random"}, dim=DIM, shard_rows=8) as writer:
        writer.add(ids_of(32), np.stack([row_of(i) for i in ids_of(32)]))  # same shape, names and ids
    reader = ShardReader(store)
    name = list_shards(store)[2][2]
    atomic_write(store / name, (other / name).read_bytes())  # swapped between open and first use
    with pytest.raises(XmdError, match=f"{name}: not the shard the index was built from"):
        reader.get(["s00017"])
    assert np.array_equal(reader.get(["s00001"]), row_of("s00001")[None].astype(np.float16))  # others still read
    with pytest.raises(XmdError, match=f"{name}: a shard of another store"):
        ShardReader(store)
    with pytest.raises(XmdError, match="another store"):  # the writer, too, refuses the foreign shard
        ShardWriter(store, FP, dim=DIM, shard_rows=8).open()
    report = repair(store)
    assert [d["name"] for d in report["dropped"]] == [name] and report["ids_dropped"] == 8
    with ShardWriter(store, FP, dim=DIM, shard_rows=8) as live:
        with pytest.raises(XmdError, match=f"being written by process {os.getpid()}"):
            repair(store)
        live.add(["s00016"], row_of("s00016")[None])
    assert len(ShardReader(store)) == 25 and verify(store) == []


def test_repair_refuses_to_empty_a_store_whose_meta_json_changed(tmp_path):
    import json

    store = tmp_path / "s"
    write_all(store, ids_of(20), shard_rows=8)
    meta = json.loads((store / "meta.json").read_text())
    meta["fingerprint"] = "f" * 64
    (store / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(XmdError, match="meta.json: its fingerprint matches none of the 3 shard"):
        repair(store)
    assert len(list_shards(store)) == 3 and not (store / "dropped").exists()
    with pytest.raises(XmdError, match="index.safetensors: indexes another store"):
        ShardReader(store)
