"""Fault injection on a real teacher store, through the real CLI: trust nothing on disk.

One tiny synthetic-captions work directory is prepared once, with the text
teacher's store cut into 4 shards and a random-control store of the same shape
(same ids, dim, dtype and shard names: the most convincing foreign shard there
is). Each test damages a copy, then runs the consumers a user would run -
`shards export` (reads everything), `diagnose` and `distill` (open a ShardReader
through the store lookup) - and expects each to refuse, naming the file, exit 1,
without a traceback and without touching the store. `shards repair` then makes
the store consistent again and says what it dropped, and the default
method.missing (stop) keeps distill from quietly training on what is left.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.shards.format import INDEX, list_shards

# Builds teacher stores through the CLI, then damages them.
pytestmark = pytest.mark.slow

runner = CliRunner()
RECIPE = ["-r", "demo-captions"]
# Distill settings that are only reached if a refusal failed; tiny enough to stay quick then too.
DISTILL = ["--set", "method.qaw.enabled=false", "--set", "training.epochs=1", "--set", "student.image_size=32",
           "--set", "student.image_channels=[8,16,16,32]", "--set", "student.embedding_dim=16",
           "--set", "training.batch_size=8", "--set", "training.warmup_steps=1", "--device", "cpu"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults")
    w = root / "w"
    assert cli("prepare", "synthetic-captions", "--tiny", "-w", w, "-q").exit_code == 0
    done = cli("extract-teacher", *RECIPE, "-w", w, "--set", "teacher.shard_rows=8", "--device", "cpu",
               "-q", "--json")
    assert done.exit_code == 0, done.output
    control = cli("extract-teacher", *RECIPE, "-w", w, "--set", "teacher.kind=random",
                  "--set", "teacher.source_kind=text", "--set", "teacher.shard_rows=8", "-q", "--json")
    assert control.exit_code == 0, control.output
    (w / "text").write_text(json.loads(done.stdout)["store"])
    (w / "control").write_text(json.loads(control.stdout)["store"])
    return w


@pytest.fixture
def work(prepared, tmp_path):
    """A private copy of the prepared work directory: (workdir, text store, control store)."""
    w = tmp_path / "w"
    shutil.copytree(prepared, w)
    text = w / Path((prepared / "text").read_text()).relative_to(prepared)
    control = w / Path((prepared / "control").read_text()).relative_to(prepared)
    assert len(list_shards(text)) == 4 and [n for *_, n in list_shards(text)] == [n for *_, n in list_shards(control)]
    return w, text, control


def shard(store: Path, k: int) -> Path:
    return store / list_shards(store)[k][2]


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x04
    path.write_bytes(bytes(data))


def assert_refused(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert str(needle) in result.output, (needle, result.output)


def consumers(w: Path, store: Path, tmp: Path):
    """Each consumer's result on the store: export reads it whole, diagnose and distill through the lookup."""
    return {"export": cli("shards", "export", store, "--out", tmp / "rows.npz"),
            "diagnose": cli("diagnose", *RECIPE, "-w", w, "--device", "cpu", "-o", tmp / "report"),
            "distill": cli("distill", *RECIPE, "-w", w, "--set", "name=faults", *DISTILL)}


def snapshot(store: Path) -> dict:
    return {p.name: p.read_bytes() for p in store.iterdir() if p.is_file() and not p.name.endswith(".lock")}


def test_a_sound_store_is_read_by_every_consumer_path(work, tmp_path):
    w, text, _ = work
    assert cli("shards", "verify", text).exit_code == 0
    result = cli("shards", "export", text, "--out", tmp_path / "rows.npz", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["ids"] == 32


def test_a_flipped_data_byte_is_refused(work, tmp_path):
    w, text, _ = work
    damaged = shard(text, 1)
    flip(damaged, damaged.stat().st_size - 7)
    before = snapshot(text)
    for name, result in consumers(w, text, tmp_path).items():
        assert_refused(result, damaged.name, "data checksum mismatch", "xmd shards verify")
    assert snapshot(text) == before and not (tmp_path / "rows.npz").exists()


def test_a_shard_of_another_store_is_refused(work, tmp_path):
    w, text, control = work
    foreign = shard(text, 2)
    shutil.copyfile(shard(control, 2), foreign)  # same name, shape, ids: only its identity differs
    for name, result in consumers(w, text, tmp_path).items():
        assert_refused(result, foreign.name, "a shard of another store")
    # ... and one copied in under a name the index does not know
    shutil.copyfile(shard(control, 3), text / "shard-r000-00009.safetensors")
    assert_refused(cli("shards", "export", text, "--out", tmp_path / "x.npz"), "shard-r000-00009.safetensors")


def test_a_deleted_shard_is_refused_and_the_index_is_not_rewritten(work, tmp_path):
    w, text, _ = work
    gone = shard(text, 2)
    gone.unlink()
    index = (text / INDEX).read_bytes()
    for name, result in consumers(w, text, tmp_path).items():
        assert_refused(result, gone.name, "missing on disk", "xmd shards repair")
    assert (text / INDEX).read_bytes() == index  # no reader "fixed" it into a smaller store
    verified = cli("shards", "verify", text)
    assert_refused(verified, f"{gone.name}: listed in {INDEX} but missing on disk")


def test_a_damaged_index_is_refused(work, tmp_path):
    w, text, _ = work
    index = text / INDEX
    flip(index, index.stat().st_size - 3)  # a byte of the last column (row counts)
    for name, result in consumers(w, text, tmp_path).items():
        assert_refused(result, str(index), "checksum mismatch")
    index.write_bytes(b"")
    assert_refused(cli("shards", "export", text, "--out", tmp_path / "x.npz"), str(index), "unreadable")
    index.unlink()
    assert_refused(cli("shards", "export", text, "--out", tmp_path / "x.npz"), str(index), "missing")


def test_repair_drops_what_is_unsound_and_distill_then_stops_by_default(work, tmp_path):
    w, text, control = work
    flipped, foreign, gone = shard(text, 0), shard(text, 1), shard(text, 3)
    flip(flipped, flipped.stat().st_size - 11)
    shutil.copyfile(shard(control, 1), foreign)
    gone.unlink()
    result = cli("shards", "repair", text, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    dropped = {entry["name"]: entry for entry in report["dropped"]}
    assert set(dropped) == {flipped.name, foreign.name, gone.name}
    assert "data checksum mismatch" in dropped[flipped.name]["reason"]
    assert "another fingerprint" in dropped[foreign.name]["reason"]
    assert dropped[gone.name]["reason"] == "missing on disk"
    assert (report["shards_dropped"], report["shards_kept"], report["ids_dropped"], report["ids"]) == (3, 1, 24, 8)
    assert (text / "dropped" / flipped.name).exists() and not flipped.exists()  # set aside, not deleted
    assert cli("shards", "verify", text).exit_code == 0
    exported = cli("shards", "export", text, "--out", tmp_path / "rows.npz", "--json")
    assert exported.exit_code == 0 and json.loads(exported.stdout)["ids"] == 8
    text_report = cli("shards", "repair", text)  # a second repair has nothing left to drop
    assert text_report.exit_code == 0 and "nothing to drop" in text_report.output

    stopped = cli("distill", *RECIPE, "-w", w, "--set", "name=after-repair", *DISTILL)
    assert_refused(stopped, "training samples have no teacher row", "method.missing", str(text))
    assert_refused(cli("diagnose", *RECIPE, "-w", w, "--device", "cpu", "-o", tmp_path / "r"),
                   "samples have no teacher row", "method.missing")


@pytest.mark.slow
def test_after_repair_distill_trains_on_what_is_left_when_told_to(work, tmp_path):
    w, text, _ = work
    shard(text, 3).unlink()
    assert cli("shards", "repair", text, "--json").exit_code == 0
    result = cli("distill", *RECIPE, "-w", w, "--set", "name=dropped", "--set", "method.missing=drop", *DISTILL)
    assert result.exit_code == 0, result.output
    assert "have no teacher row" in result.output and "method.missing=drop" in result.output
