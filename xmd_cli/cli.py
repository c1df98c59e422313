"""The `xmd` command: one thin function a subcommand, parsing only.

Each command turns its flags into recipe values, loads the recipe (defaults <-
file <- flags <- --set) and hands it to a stage in `xmd_cli.stages`. Heavy
imports (torch, speechbrain) happen inside the stages, so `xmd --help` is quick.
"""

from __future__ import annotations

import functools
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from xmd_cli import __version__
from xmd_cli.console import Output
from xmd_cli.errors import XmdError

app = typer.Typer(name="xmd", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False,
                  help="Cross-modal knowledge distillation: a teacher that sees faces or text "
                       "teaches a student that sees speech or images.")
shards_app = typer.Typer(no_args_is_help=True, help="Inspect the on-disk embedding stores.")
recipes_app = typer.Typer(no_args_is_help=True, help="List, show and validate recipes.")
app.add_typer(shards_app, name="shards")
app.add_typer(recipes_app, name="recipes")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# ---- shared options: one name, one meaning, on every command that takes them
RecipeOpt = Annotated[Optional[str], typer.Option("--recipe", "-r", help="Recipe file, or the name of a shipped recipe.")]
WorkdirOpt = Annotated[Path, typer.Option("--workdir", "-w", help="Work directory holding manifest, stores, runs and reports.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe value, e.g. --set training.lr=0.01 (repeatable).")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where to compute: auto picks cuda when present.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of everything random this command does (overrides the recipe).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail (repeatable).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the result.")]
DEFAULT_WORKDIR = Path("xmd-work")


def _output(json_mode: bool, verbose: int, quiet: bool) -> Output:
    return Output(json_mode=json_mode, verbosity=0 if quiet else 1 + verbose)


def user_errors(command):
    """Print an XmdError as one clear message and exit non-zero, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except XmdError as e:
            Output().error(str(e))
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            Output().error("interrupted; finished work is kept, rerun the same command to resume")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool):
    if value:
        typer.echo(f"xmd {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False):
    """xmd: cross-modal knowledge distillation from the command line."""


# ---------------------------------------------------------------- prepare
@app.command()
@user_errors
def prepare(
    adapter: Annotated[Optional[str], typer.Argument(help="voxceleb, kaldi, imagefolder, table, "
                                                          "synthetic-persons or synthetic-captions (default: the recipe's)")] = None,
    root: Annotated[Optional[str], typer.Option(help="Dataset root (synthetic data: where to generate it).")] = None,
    trials: Annotated[Optional[list[str]], typer.Option(help="Trial list in VoxCeleb format (repeatable).")] = None,
    table: Annotated[Optional[str], typer.Option(help="table: the CSV or JSONL file.")] = None,
    column: Annotated[Optional[list[str]], typer.Option(help="table: FIELD=COLUMN mapping (repeatable).")] = None,
    captions: Annotated[Optional[str], typer.Option(help="imagefolder: captions TSV file.")] = None,
    images_dir: Annotated[Optional[str], typer.Option(help="voxceleb: face-frame tree below the root.")] = None,
    identities: Annotated[Optional[int], typer.Option(help="synthetic-persons: number of identities.")] = None,
    per_identity: Annotated[Optional[int], typer.Option(help="synthetic-persons: samples per identity.")] = None,
    per_class: Annotated[Optional[int], typer.Option(help="synthetic-captions: images per class.")] = None,
    tiny: Annotated[bool, typer.Option("--tiny", help="Synthetic data: the tiny preset used by tests.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Any missing or unreadable file is fatal.")] = False,
    recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
    seed: SeedOpt = None, json_: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False,
):
    """Read a dataset (or generate demo data) into WORKDIR/manifest.jsonl."""
    out = _output(json_, verbose, quiet)
    data: dict = {}
    for key, value in [("adapter", adapter), ("root", root), ("trials", trials), ("table", table),
                       ("captions", captions), ("images_dir", images_dir), ("seed", seed)]:
        if value:
            data[key] = value
    if column:
        data["columns"] = dict(_split_pair(c, "--column") for c in column)
    if tiny:
        data["tiny"] = True
    persons = {k: v for k, v in [("identities", identities), ("per_identity", per_identity)] if v}
    if persons:
        data["persons"] = persons
    if per_class:
        data["captions_data"] = {"per_class": per_class}
    from xmd_cli.stages.prepare import run_prepare

    loaded = _load(recipe, set_, {"data": data})
    with out.progress() as progress:
        summary = run_prepare(loaded, workdir, strict=strict, progress=progress)
    show_prepare_summary(out, summary)
    out.result(summary)


def show_prepare_summary(out: Output, summary: dict) -> None:
    rows = [("samples", summary.get("samples")), ("classes", summary.get("classes"))]
    rows += [(f"split {k}", v) for k, v in summary.get("splits", {}).items()]
    rows += [(f"trials {k}", v) for k, v in summary.get("trials", {}).items()]
    rows += [(f"problem {k}", v) for k, v in summary.get("problems", {}).items()]
    rows += [("manifest", summary.get("manifest")), ("report", summary.get("report"))]
    out.table("prepared", rows, ("", "value"))


def _split_pair(text: str, flag: str) -> tuple[str, str]:
    if "=" not in text:
        raise XmdError(f"{flag} {text!r}: expected FIELD=COLUMN, e.g. {flag} label=speaker")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _load(recipe: str | None, overrides: list[str] | None, options: dict | None = None):
    from xmd_cli.recipe import load_recipe
    from xmd_cli.recipe_files import find_recipe

    path = find_recipe(recipe) if recipe else None
    return load_recipe(path, overrides or [], options)


# ---------------------------------------------------------------- stages built by later issues
def _not_built(command: str, issue: str):
    raise XmdError(f"`xmd {command}` is not built yet ({issue}); "
                   "`xmd prepare` and `xmd recipes` work today", exit_code=2)


def _stage_command(name: str, summary: str, issue: str):
    @user_errors
    def command(recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
                device: DeviceOpt = Device.auto, seed: SeedOpt = None, json_: JsonOpt = False,
                verbose: VerboseOpt = 0, quiet: QuietOpt = False):
        _not_built(name, issue)

    command.__doc__ = summary
    command.__name__ = name.replace("-", "_")
    app.command(name)(command)


_stage_command("extract-teacher", "Run the teacher once over the dataset and cache its embeddings in shards.",
               "the extract-teacher issue")
_stage_command("score-quality", "Score per-sample quality (faces, speech, images, text) into shards.",
               "the score-quality issue")
_stage_command("train", "Train one model on one modality (a face teacher, or the student alone).",
               "the distill and train issue")
_stage_command("distill", "Train the student from cached teacher embeddings under soft constraints.",
               "the distill and train issue")
_stage_command("evaluate", "Speaker verification, classification or cross-modal matching: metrics, reports, plots.",
               "the evaluate issue")
_stage_command("ablate", "Run the ablation grid of METHOD.md over seeds and tabulate mean and std.",
               "the demo and ablation issue")


@app.command()
@user_errors
def demo(
    task: Annotated[str, typer.Option(help="speaker (synthetic-persons) or image (synthetic-captions).")] = "speaker",
    tiny: Annotated[bool, typer.Option("--tiny", help="The tiny preset, for smoke tests.")] = False,
    workdir: WorkdirOpt = Path("xmd-demo"), seed: SeedOpt = None, device: DeviceOpt = Device.auto,
    json_: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False,
):
    """The whole pipeline on embedded demo data, offline."""
    from xmd_cli.stages.demo import run_demo

    out = _output(json_, verbose, quiet)
    summary = run_demo(task=task, tiny=tiny, workdir=workdir, seed=seed, out=out)
    out.result(summary)


# ---------------------------------------------------------------- shards
StoreArg = Annotated[Path, typer.Argument(help="Store directory (holds meta.json), e.g. xmd-work/teacher/<fingerprint>.")]


@shards_app.command("info")
@user_errors
def shards_info(store: StoreArg, json_: JsonOpt = False):
    """Summarise a store: ids, rows, dimension, dtype, shards, fingerprint, size on disk."""
    from xmd_cli.stages.shards_cmd import run_info

    out = _output(json_, 0, False)
    out.result(run_info(store, out))


@shards_app.command("verify")
@user_errors
def shards_verify(store: StoreArg, json_: JsonOpt = False):
    """Check a store's integrity: every header, every row checksum, NaN/Inf, the index; exit 1 on a problem."""
    from xmd_cli.stages.shards_cmd import run_verify

    out = _output(json_, 0, False)
    report = run_verify(store, out)
    out.result(report)
    if not report["ok"]:
        if json_:
            raise typer.Exit(1)
        raise XmdError(f"{store}: {len(report['problems'])} problem(s):\n  " + "\n  ".join(report["problems"]),
                       hint="a damaged shard: delete it and rerun the writer, which recomputes its rows")


@shards_app.command("export")
@user_errors
def shards_export(store: StoreArg,
                  out_path: Annotated[Path, typer.Option("--out", "-o", help="File to write: .csv, .npz or .npy "
                                                                            "(.npy: ids in NAME.ids.txt beside it).")],
                  json_: JsonOpt = False):
    """Export rows with their ids, sorted by id, to CSV or NumPy for your own analysis."""
    from xmd_cli.stages.shards_cmd import run_export

    out = _output(json_, 0, False)
    out.result(run_export(store, out_path, out))


# ---------------------------------------------------------------- recipes
@recipes_app.command("list")
@user_errors
def recipes_list(json_: JsonOpt = False):
    """List the shipped recipes (and those in ./recipes)."""
    from xmd_cli.recipe_files import list_recipes, summary

    out = _output(json_, 0, False)
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

    out = _output(json_, 0, False)
    if recipe is None and not set_:
        rows = schema_rows()
        out.table("recipe fields", rows, ("key", "type", "default", "description"))
        out.result({"fields": [dict(zip(("key", "type", "default", "description"), r)) for r in rows]})
        return
    loaded = _load(recipe, set_)
    if json_:
        out.result(loaded.model_dump(mode="json"))
    else:
        typer.echo(dump_recipe(loaded), nl=False)


@recipes_app.command("validate")
@user_errors
def recipes_validate(paths: Annotated[Optional[list[str]], typer.Argument(help="Recipe files or names (default: all shipped).")] = None,
                     json_: JsonOpt = False):
    """Check recipes against the schema; exit 1 if any is invalid."""
    from xmd_cli.recipe import load_recipe
    from xmd_cli.recipe_files import find_recipe, list_recipes

    out = _output(json_, 0, False)
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


def main() -> None:
    app(prog_name="xmd")
