"""`xmd recipes list|show|validate`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from xmd_cli.cli.app import JsonOpt, SetOpt, load, output, recipes_app, user_errors
from xmd_cli.errors import XmdError


# ---------------------------------------------------------------- recipes
@recipes_app.command("list")
@user_errors
def recipes_list(json_: JsonOpt = False):
    """List the shipped recipes (and those in ./recipes)."""
    from xmd_cli.recipe_files import list_recipes, summary

    out = output(json_, 0, False)
    found = list_recipes()
    out.table("recipes", [(p.stem, summary(p), p) for p in found], ("name", "what", "file"))
    out.result({"recipes": [{"name": p.stem, "summary": summary(p), "path": str(p)} for p in found]})


@recipes_app.command("show")
@user_errors
def recipes_show(recipe: Annotated[Optional[str], typer.Argument(help="Recipe name or file; none: the schema.")] = None,
                 set_: SetOpt = None, json_: JsonOpt = False):
    """Print a recipe resolved with every default, or with no name every field of the schema."""
    from xmd_cli.recipe import dump_recipe
    from xmd_cli.recipe_files import schema_rows

    out = output(json_, 0, False)
    if recipe is None and not set_:
        rows = schema_rows()
        if json_:
            out.result({"fields": [dict(zip(("key", "type", "default", "description"), r)) for r in rows]})
        else:
            # Plain lines on stdout, never cut to the terminal's width: `| grep lr` must find the whole key.
            typer.echo("".join(f"{key}: {type_text} = {default}\n    {description}\n"
                               for key, type_text, default, description in rows), nl=False)
        return
    loaded = load(recipe, set_)
    if json_:
        out.result(loaded.model_dump(mode="json"))
    else:
        typer.echo(dump_recipe(loaded), nl=False)


@recipes_app.command("validate")
@user_errors
def recipes_validate(paths: Annotated[Optional[list[str]],
                                      typer.Argument(help="Recipe files or names (default: all shipped).")] = None,
                     json_: JsonOpt = False):
    """Check recipes against the schema; exit 1 if any is invalid."""
    from xmd_cli.recipe import load_recipe
    from xmd_cli.recipe_files import find_recipe, list_recipes

    out = output(json_, 0, False)
    targets = [find_recipe(p) for p in paths] if paths else list_recipes()
    if not targets:
        raise XmdError("no recipes to validate", hint="pass recipe files, or run from a folder with recipes/")
    results = []
    for path in targets:
        try:
            load_recipe(path)
            results.append({"path": str(path), "ok": True, "error": None})
        except XmdError as e:
            results.append({"path": str(path), "ok": False, "error": str(e)})
    out.table("recipe validation", [(r["path"], "ok" if r["ok"] else r["error"]) for r in results],
              ("file", "result"))
    out.result({"results": results})
    bad = [r for r in results if not r["ok"]]
    if bad:
        if json_:
            raise typer.Exit(1)
        raise XmdError(f"{len(bad)} of {len(results)} recipe(s) invalid:\n" +
                       "\n".join(r["error"] for r in bad))
