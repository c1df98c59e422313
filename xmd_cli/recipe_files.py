"""Finding recipe files by name, listing them, and describing the schema for people.

`--recipe speaker` finds the shipped `speaker.yaml`; `--recipe path/to/my.yaml` is a
file. Recipes ship as package data in `xmd_cli/recipes/`, found through
`importlib.resources`, so an installed wheel finds them wherever it runs; a
`recipes/` folder in the current directory is searched first, so a user's own
recipes shadow ours. Listing and finding recipes imports nothing heavy.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from xmd_cli.errors import XmdError
from xmd_cli.recipe import Recipe

# A Traversable of an installed package on disk (wheel or editable) is a real folder.
SHIPPED = Path(str(resources.files("xmd_cli").joinpath("recipes")))


def recipe_dirs() -> list[Path]:
    dirs = [Path.cwd() / "recipes", SHIPPED]
    unique = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def list_recipes() -> list[Path]:
    return sorted({p.name: p for d in reversed(recipe_dirs()) for p in d.glob("*.yaml")}.values(),
                  key=lambda p: p.name)


def find_recipe(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    for d in recipe_dirs():
        for candidate in (d / name_or_path, d / f"{name_or_path}.yaml"):
            if candidate.is_file():
                return candidate
    known = ", ".join(p.stem for p in list_recipes()) or "none found"
    raise XmdError(f"recipe {name_or_path!r}: no such file or shipped recipe",
                   hint=f"shipped recipes: {known}")


def summary(path: Path) -> str:
    """The first comment line of a recipe file: what it is for."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip()
            if text:
                return text
        elif line.strip():
            break
    return ""


def schema_rows(model: type[BaseModel] = Recipe, defaults: dict | None = None,
                prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key path, type, default, description) for every field, sections expanded.

    Defaults are read off a default-built recipe, so a section whose default
    differs from its class's (quality.student is speech, quality.teacher face) shows right.
    """
    if defaults is None:
        defaults = Recipe().model_dump(mode="json")
    rows = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        key = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(schema_rows(annotation, defaults[name], key + "."))
            continue
        type_text = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
        rows.append((key, type_text, repr(defaults[name]), field.description or ""))
    return rows
