"""`xmd demo --tiny` through the real CLI: every stage leaves its outputs, the reports parse."""

import json
import os
import subprocess
import sys

import pytest
import yaml

# Runs the whole demo pipeline.
pytestmark = pytest.mark.slow


def test_tiny_demo_runs_every_stage(tmp_path):
    command = [sys.executable, "-m", "xmd_cli", "demo", "--task", "speaker", "--tiny", "-w", "demo", "--json", "-q"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    work = tmp_path / "demo" / "speaker"
    assert (work / "manifest.jsonl").exists() and (work / "prepare-report.json").exists()
    assert (work / "runs" / "face-teacher" / "checkpoints" / "best" / "weights.safetensors").exists()
    (teacher,) = (work / "teacher").glob("*/meta.json")
    assert json.loads(teacher.read_text())["components"]["teacher"] == "checkpoint"
    modalities = {json.loads(p.read_text())["components"]["scorer"] for p in (work / "quality").glob("*/meta.json")}
    assert modalities == {"face", "speech"}
    for run in ("student-alone", "full"):
        assert (work / "runs" / run / "metrics.jsonl").exists()
    reports = summary["reports"]
    assert set(reports) == {"student alone / speaker-verification", "full method / speaker-verification",
                            "full method / cross-modal-matching"}
    for path in reports.values():
        report = json.loads((tmp_path / path).read_text())  # paths are relative to where xmd ran
        assert report["metrics"] and report["backend"]
    eer = json.loads((tmp_path / reports["full method / speaker-verification"]).read_text())["metrics"]["eer"]
    assert 0 <= (eer["value"] if isinstance(eer, dict) else eer) <= 1
    # The table never sets two numbers side by side without saying whether they differ.
    assert list(summary["differences"]) == ["full method - student alone"]
    difference = summary["differences"]["full method - student alone"]["eer"]
    assert difference["verdict"] in ("better", "worse", "not resolved")
    assert difference["ci_low"] <= difference["difference"] <= difference["ci_high"]
    assert "docs/results.md" in summary["what_it_shows"]  # and says, in one line, what this world cannot show
    checkpoint = work / "runs" / "full" / "checkpoints" / "last" / "weights.safetensors"
    stamp = checkpoint.stat().st_mtime_ns
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert checkpoint.stat().st_mtime_ns == stamp, "a rerun reuses finished runs"


def test_tiny_image_demo_sets_the_teacher_beside_its_controls(tmp_path):
    command = [sys.executable, "-m", "xmd_cli", "demo", "--tiny", "-w", "demo", "--json", "-q"]  # image: the default
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["task"] == "image"
    work = tmp_path / "demo" / "image"
    controls = ("teacher-generated-random", "teacher-generated-shuffled")
    for run in ("student-alone", "teacher-generated") + controls:
        assert (work / "runs" / run / "metrics.jsonl").exists()
    resolved = {run: yaml.safe_load((work / "runs" / run / "recipe.resolved.yaml").read_text())
                for run in ("teacher-generated",) + controls}
    assert {r["method"]["classifier"]["kind"] for r in resolved.values()} == {"teacher-generated"}
    assert [resolved[run]["teacher"]["kind"] for run in controls] == ["random", "shuffled"]
    assert {resolved[run]["teacher"]["source_kind"] for run in controls} == {"text"}  # derived from the real store
    labels = ("student alone", "teacher-generated", "random control", "shuffled control")
    assert set(summary["reports"]) == {f"{label} / classification" for label in labels}
    report = json.loads((tmp_path / summary["reports"]["teacher-generated / classification"]).read_text())
    assert {"top1@head", "top1@tail", "zero_shot_top1@held-out"} <= set(report["metrics"])  # the composed world
    # The real teacher against the student alone and against each control, paired, with a verdict.
    assert list(summary["differences"]) == [f"teacher-generated - {other}"
                                            for other in ("student alone", "random control", "shuffled control")]
    for difference in summary["differences"].values():
        assert {"top1", "top1@head", "top1@tail"} <= set(difference)
        assert difference["top1@tail"]["verdict"] in ("better", "worse", "not resolved")
        assert difference["top1"]["ci_low"] <= difference["top1"]["difference"] <= difference["top1"]["ci_high"]
