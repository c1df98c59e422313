"""`xmd train` and `xmd distill`: one trainer, on one process or many (torchrun)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from xmd_cli.cli.app import (
    DEFAULT_WORKDIR,
    AllowStaleOpt,
    Device,
    DeviceOpt,
    JsonOpt,
    NprocOpt,
    QuietOpt,
    RecipeOpt,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    VerboseOpt,
    WorkdirOpt,
    app,
    load,
    output,
    recipe_options,
    relaunch_under_torchrun,
    user_errors,
)

StartOverOpt = Annotated[bool, typer.Option("--force", help="Start the run over: delete WORKDIR/runs/NAME "
                                                            "(checkpoints, metrics) first.")]
AllowRecipeChangeOpt = Annotated[bool, typer.Option("--allow-recipe-change", help="With --resume: continue "
                                                     "although the recipe differs from the run's.")]


@dataclass(frozen=True)
class FitOptions:
    """What `train` and `distill` were asked for on the command line."""

    recipe: str | None
    workdir: Path
    overrides: list[str] | None
    device: Device
    seed: int | None
    resume: bool
    nproc: int
    allow_stale: bool = False
    force: bool = False
    allow_recipe_change: bool = False


@dataclass(frozen=True)
class OutputOptions:
    json_: bool
    verbose: int
    quiet: bool


def _fit(kind: str, options: FitOptions, shown: OutputOptions) -> None:
    relaunch_under_torchrun(options.nproc)
    from xmd_cli.stages.fit import run_fit

    out = output(shown.json_, shown.verbose, shown.quiet)
    recipe = load(options.recipe, options.overrides, recipe_options(options.seed))
    summary = run_fit(recipe, options.workdir, kind=kind, device=options.device.value, resume=options.resume,
                      force=options.force, allow_recipe_change=options.allow_recipe_change,
                      allow_stale=options.allow_stale, out=out)
    if summary:  # ranks other than 0 print nothing
        out.table(kind, [(k, v) for k, v in summary.items()], ("", "value"))
        out.result(summary)


@app.command()
@user_errors
def train(recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
          device: DeviceOpt = Device.auto, seed: SeedOpt = None, resume: ResumeOpt = False, nproc: NprocOpt = 1,
          force: StartOverOpt = False, allow_recipe_change: AllowRecipeChangeOpt = False, json_: JsonOpt = False,
          verbose: VerboseOpt = 0, quiet: QuietOpt = False):
    """Train one model on one modality, supervised: the demo's face teacher, or the student alone."""
    _fit("train", FitOptions(recipe=recipe, workdir=workdir, overrides=set_, device=device, seed=seed, resume=resume,
                             nproc=nproc, force=force, allow_recipe_change=allow_recipe_change),
         OutputOptions(json_=json_, verbose=verbose, quiet=quiet))


@app.command()
@user_errors
def distill(recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
            device: DeviceOpt = Device.auto, seed: SeedOpt = None, resume: ResumeOpt = False, nproc: NprocOpt = 1,
            allow_stale: AllowStaleOpt = False, force: StartOverOpt = False,
            allow_recipe_change: AllowRecipeChangeOpt = False, json_: JsonOpt = False, verbose: VerboseOpt = 0,
            quiet: QuietOpt = False):
    """Train the student from the cached teacher rows under the method's soft constraints and quality weights."""
    _fit("distill", FitOptions(recipe=recipe, workdir=workdir, overrides=set_, device=device, seed=seed,
                               resume=resume, nproc=nproc, allow_stale=allow_stale, force=force,
                               allow_recipe_change=allow_recipe_change),
         OutputOptions(json_=json_, verbose=verbose, quiet=quiet))
