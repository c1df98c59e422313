"""CLI conventions through the real CLI: examples in --help, flags without value types,
completion, -q, rank-0 output, the schema untruncated, progress lines in a log, provenance."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer.main

from xmd_cli.cli import app
from xmd_cli.console import LogProgress, Output
from xmd_cli.metrics.report import write_report
from xmd_cli.provenance import environment, git_revision


def xmd(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "xmd_cli", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "100", **(env or {})}, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done


def commands(command=None, path=()):
    """(path, click command) of every leaf command of the app."""
    command = command or typer.main.get_command(app)
    if getattr(command, "commands", None):
        for name, sub in command.commands.items():
            yield from commands(sub, (*path, name))
    else:
        yield path, command


def test_every_command_has_an_example_and_flags_show_no_value_type():
    found = list(commands())
    assert len(found) >= 15
    for path, command in found:
        assert (command.epilog or "").startswith("Example: xmd " + " ".join(path)), path
    text = xmd("prepare", "--help").stdout
    assert "Example: xmd prepare" in text
    assert "<bool>" not in text and "--strict" in text and "--json" in text
    assert "--install-completion" in xmd("--help").stdout


def test_quiet_prints_the_result_and_json_prints_one_document(tmp_path):
    done = xmd("prepare", "synthetic-captions", "--tiny", "-w", str(tmp_path / "w"), "-q")
    assert json.loads(done.stdout)["samples"] > 0  # the result, as --json prints it
    assert done.stderr == ""  # and nothing else


@pytest.mark.slow
def test_only_rank_zero_speaks(tmp_path):
    done = xmd("prepare", "synthetic-captions", "--tiny", "-w", str(tmp_path / "w"), "--json", env={"RANK": "1"})
    assert done.stdout == "" and done.stderr == ""
    assert json.loads(xmd("recipes", "list", "--json", env={"RANK": "0"}).stdout)["recipes"]


def test_recipes_show_without_a_name_prints_every_key_untruncated():
    text = xmd("recipes", "show", env={"COLUMNS": "30"}).stdout
    keys = [line.split(":")[0] for line in text.splitlines() if not line.startswith(" ")]
    assert "data.test_fraction" in keys and "method.feature.margin" in keys
    assert any(line.startswith("data.adapter: Literal[") and "'synthetic-captions'" in line
               for line in text.splitlines())


@pytest.mark.slow
def test_demo_takes_set(tmp_path):
    assert "--set" in xmd("demo", "--help").stdout
    # The overrides reach the demo's recipes: a wrong key stops it before any stage runs.
    done = subprocess.run([sys.executable, "-m", "xmd_cli", "demo", "--tiny", "-w", str(tmp_path),
                           "--set", "training.epochz=1"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "training.epochz" in done.stderr and "epochs" in done.stderr
    assert not (tmp_path / "image" / "manifest.jsonl").exists()  # the default task's work directory


def test_progress_in_a_log_is_periodic_lines():
    lines, now = [], [0.0]
    progress = LogProgress(lambda text, **_: lines.append(text), clock=lambda: now[0])
    for done in range(0, 1001):
        now[0] = done * 0.05  # 50 s for 1000 items
        progress("check", done, 1000)
    # First call, then every 10 % (every 5 s here, before 10 s pass), and the end once.
    assert lines[0].startswith("check: 0/1000 (0%)") and lines[-1].startswith("check: 1000/1000 (100%) 50s")
    assert len(lines) == 11
    slow, now[0] = [], 0.0
    progress = LogProgress(lambda text, **_: slow.append(text), clock=lambda: now[0])
    for done in range(0, 30):
        now[0] = done * 1.0  # 1 s an item, total unknown: a line every 10 s
        progress("scan", done, None)
    assert [line.split()[1] for line in slow] == ["0", "10", "20"]


def test_output_off_a_terminal_uses_log_lines(capsys):
    out = Output()
    with out.progress() as update:
        update("stage", 1, 2)
        update("stage", 2, 2)
    err = capsys.readouterr().err
    assert "stage: 1/2 (50%)" in err and "stage: 2/2 (100%)" in err


def test_report_records_where_it_came_from(tmp_path):
    json_path, _ = write_report(tmp_path, task="classification", backend="cosine", metrics={"top1": 0.5},
                                fingerprints={}, seeds={"seed": 0})
    env = json.loads(json_path.read_text())["environment"]
    assert env["git_revision"] == git_revision() and env["host"] and "torch" in env and "cuda" in env


def test_environment_names_revision_command_versions_and_host(tmp_path):
    env = environment()
    assert set(env) >= {"git_revision", "command", "torch", "cuda", "host", "python"}
    assert env["command"].startswith("xmd ") and env["host"]
    assert git_revision(tmp_path) is None  # not a checkout
