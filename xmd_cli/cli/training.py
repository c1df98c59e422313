"""`xmd train` and `xmd distill`: one trainer, on one process or many (torchrun)."""

from __future__ import annotations

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


def _fit(kind, recipe, workdir, set_, device, seed, resume, nproc, allow_stale, json_, verbose, quiet):
    relaunch_under_torchrun(nproc)
    from xmd_cli.stages.fit import run_fit

    out = output(json_, verbose, quiet)
    summary = run_fit(load(recipe, set_, recipe_options(seed)), workdir, kind=kind, device=device.value,
                      resume=resume, allow_stale=allow_stale, out=out)
    if summary:  # ranks other than 0 print nothing
        out.table(kind, [(k, v) for k, v in summary.items()], ("", "value"))
        out.result(summary)


@app.command()
@user_errors
def train(recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
          device: DeviceOpt = Device.auto, seed: SeedOpt = None, resume: ResumeOpt = False, nproc: NprocOpt = 1,
          json_: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False):
    """Train one model on one modality, supervised: the demo's face teacher, or the student alone."""
    _fit("train", recipe, workdir, set_, device, seed, resume, nproc, False, json_, verbose, quiet)


@app.command()
@user_errors
def distill(recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
            device: DeviceOpt = Device.auto, seed: SeedOpt = None, resume: ResumeOpt = False, nproc: NprocOpt = 1,
            allow_stale: AllowStaleOpt = False, json_: JsonOpt = False, verbose: VerboseOpt = 0,
            quiet: QuietOpt = False):
    """Train the student from the cached teacher rows under the method's soft constraints and quality weights."""
    _fit("distill", recipe, workdir, set_, device, seed, resume, nproc, allow_stale, json_, verbose, quiet)
