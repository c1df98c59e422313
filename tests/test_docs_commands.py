"""The `xmd ...` commands in the README's and docs' fenced bash blocks name real commands,
real flags and real recipe keys, so the docs cannot drift from the CLI.

Each command is checked as `--help` would: the subcommand path exists, every
`--flag`/`-f` is an option of that command, every `--set KEY=VALUE` names a key
of the recipe schema, and every `--recipe NAME` is a shipped recipe or a path.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from xmd_cli.cli import app
from xmd_cli.recipe_files import list_recipes, schema_rows

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GENERATED = {"cli.md", "recipes.md"}  # written from the code by scripts/gen_docs.py
FENCE = re.compile(r"```(?:bash|sh|shell)\n(.*?)```", re.S)


def doc_commands() -> list[tuple[str, str]]:
    """(file:line, command) for every `xmd ...` command in a fenced bash block."""
    found = []
    for path in DOCS:
        if path.name in GENERATED:
            continue
        text = path.read_text(encoding="utf-8")
        for block in FENCE.finditer(text):
            first_line = text[:block.start(1)].count("\n") + 1
            logical, start = "", None
            for offset, line in enumerate(block.group(1).splitlines()):
                start = first_line + offset if not logical else start
                logical += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
                if line.rstrip().endswith("\\"):
                    continue
                for part in _commands_in(logical):
                    found.append((f"{path.relative_to(ROOT)}:{start}", part))
                logical = ""
    return found


def _commands_in(line: str) -> list[str]:
    line = re.sub(r"(^|\s)#.*$", "", line)  # a comment
    parts = [p.strip() for p in re.split(r";|&&", line)]
    return [p for p in parts if re.match(r"^xmd(\s|$)", p)]


COMMANDS = doc_commands()
KEYS = {row[0] for row in schema_rows()}
SECTIONS = {key.rsplit(".", 1)[0] for key in KEYS if "." in key}
RECIPES = {p.stem for p in list_recipes()}


def _leaf(tokens: list[str]):
    command, path = typer.main.get_command(app), ["xmd"]
    rest = tokens[1:]
    while getattr(command, "commands", None) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        assert name in command.commands, f"`{' '.join(path)} {name}`: no such command"
        command, path = command.commands[name], path + [name]
    return command, " ".join(path), rest


def _known_key(key: str) -> bool:
    # dict-valued fields (data.columns.id, quality.teacher.weights.blur) take any sub-key.
    return key in KEYS or any(key.startswith(k + ".") for k in KEYS)


def test_the_docs_hold_commands():
    assert len(COMMANDS) >= 30
    assert any(c.startswith("xmd prepare") for _, c in COMMANDS)


@pytest.mark.parametrize("where,command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_doc_command_names_real_commands_flags_and_keys(where, command):
    tokens = shlex.split(command.replace("<", "_").replace(">", "_"))
    leaf, name, rest = _leaf(tokens)
    options = {opt for p in leaf.params for opt in (*p.opts, *p.secondary_opts)}
    for at, token in enumerate(rest):
        if token.startswith("-") and token not in ("-", "--") and not re.match(r"^-\d", token):
            flag = token.split("=", 1)[0]
            assert flag in options, f"{where}: `{name}` has no option {flag} (it has {sorted(options)})"
            value = token.split("=", 1)[1] if "=" in token else (rest[at + 1] if at + 1 < len(rest) else "")
            if flag == "--set":
                key = value.split("=", 1)[0]
                assert "=" in value and _known_key(key), f"{where}: --set {value}: {key} is not a recipe key"
            if flag in ("--recipe", "-r") and not value.endswith((".yaml", ".yml")):
                assert value in RECIPES, f"{where}: --recipe {value}: no shipped recipe of that name"


# Commands that need no data, model or network: run for real, from a directory outside the clone.
RUNNABLE = ("xmd recipes list", "xmd recipes show", "xmd --help", "xmd --version")


@pytest.mark.parametrize("where,command", [(w, c) for w, c in COMMANDS if c.startswith(RUNNABLE)],
                         ids=[w for w, c in COMMANDS if c.startswith(RUNNABLE)])
def test_runnable_doc_commands_run(where, command, tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "xmd_cli", *shlex.split(command)[1:]], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, f"{where}: `{command}` failed: {done.stderr}"
