"""Regenerate the reference pages in docs/ from the code: `python scripts/gen_docs.py`.

docs/recipes.md comes from the recipe schema and docs/cli.md from the Typer app (xmd_cli/cli/),
so neither can drift from the code; tests/test_docs.py fails when they are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer.main
from click import Context

from xmd_cli.cli import app
from xmd_cli.recipe_files import schema_rows

DOCS = Path(__file__).resolve().parent.parent / "docs"


def recipes_page() -> str:
    lines = ["# Recipe reference", "",
             "Generated from `xmd_cli/recipe.py` by `scripts/gen_docs.py`; do not edit by hand.",
             "Every key can be set in a recipe file or with `--set key=value`. "
             "`xmd recipes show` (no name) prints the same fields.", ""]
    section = None
    for key, type_text, default, description in schema_rows():
        top = key.split(".")[0] if "." in key else "(top level)"
        if top != section:
            section = top
            lines += ["", f"## {section}", "", "| key | type | default | description |", "|---|---|---|---|"]
        cell = lambda text: text.replace("|", "\\|")
        lines.append(f"| `{key}` | {cell(type_text)} | `{cell(default)}` | {cell(description)} |")
    return "\n".join(lines) + "\n"


def cli_page() -> str:
    lines = ["# CLI reference", "",
             "Generated from the Typer app in `xmd_cli/cli/` by `scripts/gen_docs.py`; do not edit by hand.", ""]
    root = typer.main.get_command(app)

    def walk(command, path):
        ctx = Context(command, info_name=" ".join(path))
        if path[1:]:
            lines.extend([f"## `{' '.join(path)}`", ""])
            lines.extend([(command.help or "").strip(), ""])
            if command.epilog:
                lines.extend([command.epilog.replace("Example: ", "Example: `", 1) + "`", ""])
            params = [p for p in command.params if p.name != "help"]
            if params:
                lines.extend(["| option | help |", "|---|---|"])
                for p in params:
                    record = p.get_help_record(ctx)
                    if record:
                        option, text = (part.replace("|", "\\|") for part in record)
                        lines.append(f"| `{option}` | {text} |")
                lines.append("")
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, path + [name])

    walk(root, ["xmd"])
    return "\n".join(lines)


PAGES = {"recipes.md": recipes_page, "cli.md": cli_page}

if __name__ == "__main__":
    for name, make in PAGES.items():
        (DOCS / name).write_text(make())
        print(f"wrote docs/{name}", file=sys.stderr)
