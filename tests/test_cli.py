"""The CLI skeleton: help, version, shared options, recipe commands, unbuilt stages."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from xmd_cli.cli import app

runner = CliRunner()
SUBCOMMANDS = ["prepare", "extract-teacher", "score-quality", "train", "distill", "evaluate",
               "ablate", "diagnose", "demo", "shards", "recipes"]


def test_help_lists_every_subcommand():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in SUBCOMMANDS:
        assert name in result.output
    for group, subs in (("shards", ["info", "verify", "export"]), ("recipes", ["list", "show", "validate"])):
        sub_help = runner.invoke(app, [group, "--help"]).output
        assert all(s in sub_help for s in subs)


def test_console_script_and_module_entry_points():
    # The real entry points, as a user and torchrun call them.
    xmd = Path(sys.executable).parent / "xmd"
    for command in ([str(xmd), "--version"], [sys.executable, "-m", "xmd_cli", "--version"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("xmd ")


def test_help_does_not_import_torch():
    code = "import sys; from xmd_cli.cli import app; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False"


def test_shared_options_on_stage_commands():
    for name in ["extract-teacher", "score-quality", "train", "distill", "evaluate", "ablate"]:
        text = runner.invoke(app, [name, "--help"]).output
        for option in ("--recipe", "--workdir", "--set", "--device", "--json", "--quiet"):
            assert option in text, (name, option)
    for name in ["train", "distill", "evaluate", "ablate", "prepare", "demo"]:
        assert "--seed" in runner.invoke(app, [name, "--help"]).output, name


def test_recipes_validate_passes_on_shipped_recipes():
    result = runner.invoke(app, ["recipes", "validate", "--json"])
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)["results"]
    assert results and all(r["ok"] for r in results)


def test_recipes_validate_fails_with_file_and_key(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("student:\n  embeding_dim: 64\n")
    result = runner.invoke(app, ["recipes", "validate", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2" in result.output and "student.embeding_dim" in result.output
    assert "student.embedding_dim" in result.output
    assert "Traceback" not in result.output


def test_recipes_show_applies_set():
    result = runner.invoke(app, ["recipes", "show", "demo-persons", "--set", "training.epochs=3", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["training"]["epochs"] == 3


def test_wrong_type_on_command_line_is_a_clear_error():
    result = runner.invoke(app, ["recipes", "show", "demo-persons", "--set", "training.epochs=lots"])
    assert result.exit_code == 1
    assert "training.epochs" in result.output and "Traceback" not in result.output


def test_missing_recipe_lists_shipped_ones():
    result = runner.invoke(app, ["recipes", "show", "nope"])
    assert result.exit_code == 1 and "shipped recipes:" in result.output and "speaker" in result.output
