"""`xmd ablate`: the ablation grid over seeds, reusing the teacher and quality stores."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from xmd_cli.cli.app import (
    DEFAULT_WORKDIR,
    Device,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    RecipeOpt,
    SetOpt,
    VerboseOpt,
    WorkdirOpt,
    app,
    load,
    output,
    user_errors,
)
from xmd_cli.errors import XmdError


@app.command()
@user_errors
def ablate(recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
           grid: Annotated[str, typer.Option(help="paper (METHOD.md's rows plus control teachers), "
                                                  "paper-no-controls, or quick (none, hard-cosine, full).")] = "paper",
           seeds: Annotated[int, typer.Option(min=1, help="Seeds 0..N-1 for every row.")] = 3,
           sweep: Annotated[Optional[list[str]], typer.Option(
               help="Extra rows: KEY=V1,V2,... applied to the full method, e.g. method.feature.margin=0,0.1,0.3 "
                    "or training.train_fraction=0.25,0.5 (repeatable).")] = None,
           device: DeviceOpt = Device.auto, json_: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False):
    """Run the ablation grid over seeds: per row mean ± std, the difference to `none` (95 % interval, verdict).

    --set applies to every row except on the keys a row sets itself (hard-cosine keeps margin 0); a note says
    which rows kept their value.
    """
    if not recipe:
        raise XmdError("xmd ablate needs --recipe: the recipe whose method the grid varies",
                       hint="e.g. xmd ablate --recipe demo-persons --workdir xmd-demo/speaker")
    from xmd_cli.recipe_files import find_recipe
    from xmd_cli.stages.ablate import run_ablate

    out = output(json_, verbose, quiet)
    path = find_recipe(recipe)
    summary = run_ablate(load(recipe, set_), path, list(set_ or []), workdir, grid=grid, seeds=seeds,
                         sweeps=list(sweep or []), device=device.value, out=out)
    out.result(summary)
