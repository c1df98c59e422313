"""`xmd shards info|verify|export` through the real Typer app on a small store."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.shards import ShardReader, ShardWriter
from xmd_cli.shards.format import list_shards

runner = CliRunner()
FP = {"kind": "face", "weights_sha256": "c0ffee" * 10, "preprocessing": {"crop": 160}}


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    directory = tmp_path / "teacher" / "abc"
    with ShardWriter(directory, FP, dim=8, dtype="float16", shard_rows=10) as writer:
        writer.add([f"id{i:03d}" for i in range(25)], rng.standard_normal((25, 8)))
    return directory


def test_info_json_and_table(store):
    result = runner.invoke(app, ["shards", "info", str(store), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert (info["ids"], info["rows"], info["dim"], info["dtype"], info["shards"]) == (25, 25, 8, "float16", 3)
    assert info["components"] == FP and info["index"] == "current" and info["bytes"] > 25 * 8 * 2
    text = runner.invoke(app, ["shards", "info", str(store)]).output
    assert "weights_sha256" in text and "float16" in text and "3 (ranks 0" in text


def test_verify_passes_then_fails_on_a_flipped_byte(store):
    result = runner.invoke(app, ["shards", "verify", str(store)])
    assert result.exit_code == 0 and "sound" in result.output
    shard = store / list_shards(store)[1][2]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0x01
    shard.write_bytes(bytes(data))
    result = runner.invoke(app, ["shards", "verify", str(store)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{shard.name}: data checksum mismatch" in result.output
    report = json.loads(runner.invoke(app, ["shards", "verify", str(store), "--json"]).stdout)
    assert report["ok"] is False and len(report["problems"]) == 1


def test_export_writes_rows_with_ids(store, tmp_path):
    out = tmp_path / "rows.npz"
    result = runner.invoke(app, ["shards", "export", str(store), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 25
    with np.load(out) as archive:
        ids = archive["ids"].tolist()
        assert np.array_equal(archive["rows"], ShardReader(store).get(ids))
    result = runner.invoke(app, ["shards", "export", str(store), "--out", str(tmp_path / "rows.xlsx")])
    assert result.exit_code == 1 and ".csv, .npz or .npy" in result.output and "Traceback" not in result.output


def test_not_a_store_is_a_clear_error(tmp_path):
    for command in ("info", "verify"):
        result = runner.invoke(app, ["shards", command, str(tmp_path / "nowhere")])
        assert result.exit_code == 1 and "no such store directory" in result.output
        assert "Traceback" not in result.output
    result = runner.invoke(app, ["shards", "info", str(tmp_path)])
    assert result.exit_code == 1 and "meta.json: missing" in result.output
