"""xmd ablate: the grid's rows, sweeps, and a tiny run through the real CLI."""

import csv
import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.errors import XmdError
from xmd_cli.metrics.ablation import seed_paired
from xmd_cli.recipe import Recipe, deep_merge, load_recipe
from xmd_cli.stages.ablate import PAPER_GRID, build_rows, overrides_for_rows, parse_sweep, row_keys
from xmd_cli.stages.evaluation.reuse import reusable_report

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


def test_a_grid_file_gives_its_own_rows_and_rows_picks_some(tmp_path):
    grid = tmp_path / "augment.yaml"
    grid.write_text("none: {method: {feature: {loss: none}, classifier: {kind: none}}}\n"
                    "none+drops: {method: {feature: {loss: none}, classifier: {kind: none}},\n"
                    "             training: {augment: {drop_chunk: true, drop_freq: true}}}\n")
    rows = build_rows(str(grid), ["method.feature.margin=0.1"])
    assert list(rows) == ["none", "none+drops", "full/margin=0.1"]
    assert rows["none+drops"]["training"] == {"augment": {"drop_chunk": True, "drop_freq": True}}
    assert build_rows(str(grid), [], only=["none+drops"]) == {"none+drops": rows["none+drops"]}
    assert list(build_rows("paper", [], only=["full", "none"])) == ["none", "full"]  # the grid's order
    with pytest.raises(XmdError, match="no row 'fulll'"):
        build_rows("quick", [], only=["fulll"])
    (tmp_path / "no-none.yaml").write_text("full: {method: {qaw: {enabled: true}}}\n")
    with pytest.raises(XmdError, match="needs a 'none' row"):
        build_rows(str(tmp_path / "no-none.yaml"), [])
    (tmp_path / "flat.yaml").write_text("none: 3\n")
    with pytest.raises(XmdError, match="row 'none': expected a mapping"):
        build_rows(str(tmp_path / "flat.yaml"), [])
    with pytest.raises(XmdError, match="cannot read the grid file"):
        build_rows(str(tmp_path / "missing.yaml"), [])


def test_a_bad_row_in_a_grid_file_stops_before_any_run(tmp_path):
    grid = tmp_path / "bad.yaml"
    grid.write_text("none: {method: {feature: {loss: none}}}\nwrong: {training: {epochz: 3}}\n")
    result = runner.invoke(app, ["ablate", "-r", "demo-captions", "-w", str(tmp_path / "w"), "--grid", str(grid),
                                 "--seeds", "1", "-q"])
    assert result.exit_code != 0 and "epochz" in result.output
    assert not (tmp_path / "w" / "runs").exists()


def _value(recipe_dict: dict, key: tuple):
    for part in key:
        recipe_dict = recipe_dict[part]
    return recipe_dict


def test_a_row_wins_over_set_on_the_keys_it_sets():
    rows = build_rows("quick", ["method.feature.margin=0.1"])
    sets = ["method.feature.margin=0.3", "method.qaw.enabled=false", "training.epochs=1"]
    per_row, notes = overrides_for_rows(rows, sets)
    # hard-cosine sets margin 0 and QAW off itself: only the epochs override reaches it.
    assert per_row["hard-cosine"] == ["training.epochs=1"]
    assert per_row["full"] == ["method.feature.margin=0.3", "training.epochs=1"]
    assert per_row["full/margin=0.1"] == ["training.epochs=1"]
    for row, changes in rows.items():
        resolved = load_recipe(None, per_row[row], changes).model_dump(mode="json")
        assert all(_value(resolved, key) == _value(changes, key) for key in row_keys(changes)), row
        assert resolved["training"]["epochs"] == 1
    full = load_recipe(None, per_row["full"], rows["full"])
    assert full.method.feature.margin == 0.3 and full.method.qaw.enabled  # the full method keeps QAW
    assert load_recipe(None, per_row["hard-cosine"], rows["hard-cosine"]).method.feature.margin == 0.0
    assert any(n.startswith("--set method.qaw.enabled=false") and "applies to no row" in n for n in notes)
    assert any("margin=0.3" in n and "hard-cosine" in n and "applies to none, full" in n for n in notes)
    with pytest.raises(XmdError, match="whole section method.qaw"):
        overrides_for_rows(rows, ["method.qaw={enabled: false}"])


def _run(correct, fingerprint="f"):
    return {"kind": "classification", "fingerprint": fingerprint, "correct": np.asarray(correct, dtype=bool),
            "classes": np.arange(len(correct)) % 4}


def test_the_difference_to_none_varies_seeds_and_samples_together():
    rng = np.random.default_rng(0)
    base = rng.random(400) < 0.5
    good, bad = base | (rng.random(400) < 0.6), base & (rng.random(400) < 0.4)
    sources = {"none": ["n0", "n1"], "steady": ["s0", "s1"], "seedy": ["f0", "f1"]}
    result = seed_paired({"none": [_run(base), _run(base)], "steady": [_run(good), _run(good)],
                          "seedy": [_run(good), _run(bad)]}, "none", sources=sources, resamples=500)
    steady, seedy = result["steady"]["top1"], result["seedy"]["top1"]
    assert steady["verdict"] == "better" and steady["seeds"] == 2
    # One seed far better than none and one far worse: the mean is near 0, and the interval spans most of
    # the seeds' own differences, which a bootstrap over samples alone (seed 0 and 1 fixed) would not show.
    per_seed = [good.mean() - base.mean(), bad.mean() - base.mean()]
    assert seedy["difference"] == pytest.approx(np.mean(per_seed))
    assert seedy["verdict"] == "not resolved" and seedy["ci_high"] - seedy["ci_low"] > 0.8 * (per_seed[0] - per_seed[1])
    with pytest.raises(XmdError, match="f1 and n0 were evaluated on different trials"):
        seed_paired({"none": [_run(base), _run(base)], "seedy": [_run(good), _run(bad, "g")]}, "none",
                    sources=sources, resamples=50)
    with pytest.raises(XmdError, match="paired seed by seed"):
        seed_paired({"none": [_run(base), _run(base)], "seedy": [_run(good)]}, "none", sources=sources)


@pytest.mark.slow
def test_quick_grid_over_two_seeds_writes_its_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["prepare", "synthetic-captions", "--tiny", "-w", "w", "-q"]).exit_code == 0
    assert runner.invoke(app, ["extract-teacher", "-r", "demo-captions", "-w", "w", "-q"]).exit_code == 0
    for modality in ("text", "image"):  # the full row weights by quality (QAW): it needs both stores
        result = runner.invoke(app, ["score-quality", "--modality", modality, "-r", "demo-captions", "-w", "w", "-q"])
        assert result.exit_code == 0, result.output
    tiny = ["--set", "student.image_size=32", "--set", "student.image_channels=[8,16,16,32]",
            "--set", "student.embedding_dim=16", "--set", "training.batch_size=8", "--set", "training.epochs=1",
            "--set", "method.feature.margin=0.3", "--set", "evaluation.bootstrap=200"]
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
    # Every run trained what its row says (the row wins over --set), and results.csv says so too.
    rows = build_rows("quick", [])
    for line in lines:
        resolved = yaml.safe_load((tmp_path / "w" / "runs" / line["run"] / "recipe.resolved.yaml").read_text())
        assert all(_value(resolved, key) == _value(rows[line["row"]], key) for key in row_keys(rows[line["row"]]))
        assert line["method.feature.margin"] == str(_value(resolved, ("method", "feature", "margin")))
        assert line["method.qaw.enabled"] == str(resolved["method"]["qaw"]["enabled"])
    full = yaml.safe_load((tmp_path / "w" / "runs" / lines[-1]["run"] / "recipe.resolved.yaml").read_text())
    assert lines[-1]["row"] == "full" and full["method"]["qaw"]["enabled"]
    assert full["method"]["feature"]["margin"] == 0.3
    assert any("hard-cosine" in note for note in summary["notes"])
    # Each row against none: a paired difference over seeds and samples, and a verdict.
    assert summary["verdicts"]["none"] == "reference"
    assert {summary["verdicts"][row] for row in ("hard-cosine", "full")} <= {"better", "worse", "not resolved"}
    entry = summary["paired"]["full"]["top1"]
    assert entry["ci_low"] <= entry["difference"] <= entry["ci_high"] and entry["seeds"] == 2
    table = (directory / "summary.md").read_text()
    assert "| verdict |" in table and "± " in table and (directory / "summary.png").exists()
    with (directory / "summary.csv").open() as f:
        assert "top1_verdict" in next(csv.reader(f))
    # A second ablation with the same settings reuses every run, and every report: nothing is re-embedded.
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "w" / "runs").glob("*/checkpoints/last/weights.safetensors")}
    reports = {p: p.stat().st_mtime_ns for p in (tmp_path / "w" / "reports").glob("ablate-*/report.json")}
    assert len(reports) == 6
    # ... except a report whose scores file was damaged since: that run is evaluated afresh, never read.
    damaged = sorted(reports)[0].parent / "scores.npz"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    again = runner.invoke(app, ["ablate", "-r", "demo-captions", "-w", "w", "--grid", "quick", "--seeds", "2",
                                *tiny, "--json", "-q"])
    assert again.exit_code == 0, again.output
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert [p for p, t in reports.items() if p.stat().st_mtime_ns != t] == [damaged.parent / "report.json"]
    assert json.loads(again.stdout)["summary"] == summary["summary"]  # the same numbers, read back
    # What the report stands for is checked: other evaluation settings, or other weights, make it stale.
    run = yaml.safe_load((tmp_path / "w" / "runs" / lines[0]["run"] / "recipe.resolved.yaml").read_text())
    checkpoint = tmp_path / "w" / "runs" / lines[0]["run"] / "checkpoints" / "best"
    where = tmp_path / "w" / "reports" / f"{lines[0]['run']}-classification"
    same = Recipe.model_validate(run)
    assert reusable_report(where, same, tmp_path / "w", "classification", checkpoint)["report_json"] == str(
        where / "report.json")
    other = Recipe.model_validate(deep_merge(run, {"evaluation": {"bootstrap": 100}}))
    assert reusable_report(where, other, tmp_path / "w", "classification", checkpoint) is None
    retrained = tmp_path / "retrained"  # other weights (only their sha256 is compared)
    retrained.mkdir()
    (retrained / "weights.safetensors").write_bytes((checkpoint / "weights.safetensors").read_bytes() + b" ")
    assert reusable_report(where, same, tmp_path / "w", "classification", retrained) is None
    # A grid file's `none` row is quick's `none` (same base recipe, same row name): --rows none reuses its runs.
    grid = tmp_path / "mine.yaml"
    grid.write_text(yaml.safe_dump({"none": PAPER_GRID["none"]}))
    mine = runner.invoke(app, ["ablate", "-r", "demo-captions", "-w", "w", "--grid", str(grid), "--rows", "none",
                               "--seeds", "2", *tiny, "--json", "-q"])
    assert mine.exit_code == 0, mine.output
    mine_summary = json.loads(mine.stdout)
    assert mine_summary["runs"] == 2 and "ablations/demo-captions-mine-rows-" in mine_summary["directory"]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_the_summary_sets_the_real_teacher_against_each_control(tmp_path):
    from xmd_cli.console import Output
    from xmd_cli.stages.ablate import _write

    results = [{"row": row, "seed": 0, "run": f"r-{i}", "eer": eer}
               for i, (row, eer) in enumerate([("none", 0.20), ("full", 0.15), ("full/shuffled", 0.25)])]
    paired = {row: {"eer": {"difference": d, "ci_low": d - 0.01, "ci_high": d + 0.01, "verdict": v}}
              for row, d, v in [("full", -0.05, "better"), ("full/shuffled", 0.05, "worse")]}
    controls = {"full/shuffled": {"eer": {"difference": -0.10, "ci_low": -0.12, "ci_high": -0.08,
                                          "verdict": "better"}}}
    summary = _write(results, paired, "", tmp_path / "a", "speaker-verification", 1, [], Output(verbosity=0),
                     controls=controls)
    table = (tmp_path / "a" / "summary.md").read_text()
    assert "| full - full/shuffled | -0.1000 [-0.1200, -0.0800] | better |" in table
    assert summary["against_controls"] == controls
    # Without control rows there is no such table.
    _write(results[:2], {"full": paired["full"]}, "", tmp_path / "b", "speaker-verification", 1, [],
           Output(verbosity=0), controls={})
    assert "control teacher" not in (tmp_path / "b" / "summary.md").read_text()
