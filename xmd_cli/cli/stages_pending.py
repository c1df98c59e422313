"""Commands whose stages are still to come: they say so and exit with status 2."""

from __future__ import annotations

from xmd_cli.cli.app import (DEFAULT_WORKDIR, Device, DeviceOpt, JsonOpt, QuietOpt, RecipeOpt, SeedOpt, SetOpt,
                             VerboseOpt, WorkdirOpt, app, not_built, user_errors)


def _stage_command(name: str, summary: str, issue: str):
    @user_errors
    def command(recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
                device: DeviceOpt = Device.auto, seed: SeedOpt = None, json_: JsonOpt = False,
                verbose: VerboseOpt = 0, quiet: QuietOpt = False):
        not_built(name, issue)

    command.__doc__ = summary
    command.__name__ = name.replace("-", "_")
    app.command(name)(command)


_stage_command("evaluate", "Speaker verification, classification or cross-modal matching: metrics, reports, plots.",
               "the evaluate issue")
_stage_command("ablate", "Run the ablation grid of METHOD.md over seeds and tabulate mean and std.",
               "the demo and ablation issue")
