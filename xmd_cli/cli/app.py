"""The Typer app, the options every command shares, and how user errors are shown.

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
from typer.core import TyperOption

from xmd_cli import __version__
from xmd_cli.console import Output
from xmd_cli.errors import XmdError, disk_error

app = typer.Typer(name="xmd", no_args_is_help=True, add_completion=True,
                  pretty_exceptions_show_locals=False,
                  help="Cross-modal knowledge distillation: a teacher that sees faces or text "
                       "teaches a student that sees speech or images.")
shards_app = typer.Typer(no_args_is_help=True, help="Inspect the on-disk embedding stores.")
recipes_app = typer.Typer(no_args_is_help=True, help="List, show and validate recipes.")
app.add_typer(shards_app, name="shards")
app.add_typer(recipes_app, name="recipes")


_display_type_rich = TyperOption.display_type_rich


def _no_value_type_for_flags(self, ctx):
    # A flag (or a counted -v) takes no value: typer's `--json <bool>` reads as if it wanted one.
    if self.is_flag or self.count:
        return None
    return _display_type_rich(self, ctx)


TyperOption.display_type_rich = _no_value_type_for_flags


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


# ---- shared options: one name, one meaning, on every command that takes them
RecipeOpt = Annotated[Optional[str], typer.Option("--recipe", "-r",
                                                   help="Recipe file, or the name of a shipped recipe.")]
WorkdirOpt = Annotated[Path, typer.Option("--workdir", "-w",
                                          help="Work directory holding manifest, stores, runs and reports.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a recipe value, e.g. "
                                                                   "--set training.lr=0.01 (repeatable).")]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where to compute: auto picks cuda when present.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of everything random this command does "
                                                                "(overrides the recipe).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON result on stdout.")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail (repeatable).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors and the result.")]
DEFAULT_WORKDIR = Path("xmd-work")


def output(json_mode: bool, verbose: int, quiet: bool) -> Output:
    return Output(json_mode=json_mode, verbosity=0 if quiet else 1 + verbose)


def user_errors(command):
    """Print an XmdError, or a disk fault (full, read-only, no permission), as one clear message and exit
    non-zero, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except XmdError as e:
            Output().error(str(e))
            raise typer.Exit(e.exit_code) from None
        except OSError as e:
            # A full or read-only disk is the machine's state, not a bug: one line naming the path.
            error = disk_error(e, near=kwargs.get("workdir"))
            if error is None:
                raise
            Output().error(str(error))
            raise typer.Exit(error.exit_code) from None
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


def split_pair(text: str, flag: str) -> tuple[str, str]:
    if "=" not in text:
        raise XmdError(f"{flag} {text!r}: expected FIELD=COLUMN, e.g. {flag} label=speaker")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def load(recipe: str | None, overrides: list[str] | None, options: dict | None = None):
    from xmd_cli.recipe import load_recipe
    from xmd_cli.recipe_files import find_recipe

    path = find_recipe(recipe) if recipe else None
    return load_recipe(path, overrides or [], options)




# ---- options of the commands that compute
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue the run in WORKDIR/runs/NAME from its "
                                                          "last checkpoint.")]
NprocOpt = Annotated[int, typer.Option("--nproc", min=1, help="Processes on this machine (runs torchrun for you; "
                                                               "one GPU each on CUDA, gloo on CPU).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Recompute the store from nothing instead of resuming it.")]
AllowStaleOpt = Annotated[bool, typer.Option("--allow-stale", help="Use a store written with other inputs "
                                                                    "than the recipe asks for (after saying what "
                                                                    "differs).")]


def relaunch_under_torchrun(nproc: int) -> None:
    """`--nproc N` outside torchrun: run this same command under torchrun and exit with its status."""
    import os
    import subprocess
    import sys

    if nproc <= 1 or "WORLD_SIZE" in os.environ:
        return
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "xmd_cli", *args]
    raise typer.Exit(subprocess.call(command))


def recipe_options(seed: int | None) -> dict:
    return {"seed": seed} if seed is not None else {}
