"""xmd ablate: the grid's rows, sweeps, and a tiny run through the real CLI."""

import csv
import json

import pytest
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.errors import XmdError
from xmd_cli.stages.ablate import PAPER_GRID, build_rows, parse_sweep

runner = CliRunner()


def test_paper_grid_matches_the_method_table():
    rows = build_rows("paper", [])
    assert list(rows)[:8] == ["none", "hard-l2", "hard-cosine", "logit-kd", "soft-feature", "soft-classifier",
                              "soft-both", "full"]
    assert {"full/class-mean", "full/shuffled", "full/random"} <= set(rows)
    assert PAPER_GRID["hard-cosine"]["method"]["feature"] == {"loss": "cosine", "margin": 0.0}
    assert PAPER_GRID["hard-l2"]["method"]["projection"] == "linear"
    assert PAPER_GRID["full"]["method"]["qaw"]["enabled"] and not PAPER_GRID["soft-both"]["method"]["qaw"]["enabled"]
    assert rows["full/shuffled"]["teacher"] == {"kind": "shuffled"}


def test_sweeps_add_rows_over_the_full_method():
    assert parse_sweep("method.feature.margin=0,0.1,0.3") == ("method.feature.margin", [0, 0.1, 0.3])
    rows = build_rows("quick", ["training.train_fraction=0.25,0.5"])
    assert rows["full/train_fraction=0.25"]["training"] == {"train_fraction": 0.25}
    assert rows["full/train_fraction=0.25"]["method"] == PAPER_GRID["full"]["method"]
    with pytest.raises(XmdError, match="expected KEY=V1,V2"):
        parse_sweep("margin")
    with pytest.raises(XmdError, match="--grid"):
        build_rows("nope", [])


@pytest.mark.slow
def test_quick_grid_over_two_seeds_writes_its_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["prepare", "synthetic-captions", "--tiny", "-w", "w", "-q"]).exit_code == 0
    assert runner.invoke(app, ["extract-teacher", "-r", "demo-captions", "-w", "w", "-q"]).exit_code == 0
    tiny = ["--set", "student.image_size=32", "--set", "student.image_channels=[8,16,16,32]",
            "--set", "student.embedding_dim=16", "--set", "training.batch_size=8", "--set", "training.epochs=1",
            "--set", "method.qaw.enabled=false"]
    result = runner.invoke(app, ["ablate", "-r", "demo-captions", "-w", "w", "--grid", "quick", "--seeds", "2",
                                 *tiny, "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["runs"] == 6 and list(summary["summary"]) == ["none", "hard-cosine", "full"]
    directory = tmp_path / summary["directory"]
    with (directory / "results.csv").open() as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 6 and {line["seed"] for line in lines} == {"0", "1"}
    assert "top1" in lines[0]
    assert "± " in (directory / "summary.md").read_text() and (directory / "summary.png").exists()
    # A second ablation with the same settings reuses every run.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "w" / "runs").glob("*/checkpoints/last/weights.safetensors")}
    again = runner.invoke(app, ["ablate", "-r", "demo-captions", "-w", "w", "--grid", "quick", "--seeds", "2",
                                *tiny, "--json", "-q"])
    assert again.exit_code == 0
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
