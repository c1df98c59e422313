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
                                                  "paper-no-controls, quick (none, hard-cosine, full), or a "
                                                  ".yaml file mapping row names to the recipe fields they "
                                                  "change (with a `none` row).")] = "paper",
           seeds: Annotated[int, typer.Option(min=1, help="Seeds 0..N-1 for every row.")] = 3,
           sweep: Annotated[Optional[list[str]], typer.Option(
               help="Extra rows: KEY=V1,V2,... applied to the full method, e.g. method.feature.margin=0,0.1,0.3 "
                    "or training.train_fraction=0.25,0.5 (repeatable).")] = None,
           rows: Annotated[Optional[str], typer.Option(
               help="Only these rows of the grid (and its sweeps), comma-separated, e.g. none,full; finished "
                    "runs are reused, so a subset costs only its own runs.")] = None,
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
                         sweeps=list(sweep or []),
                         rows_only=[r.strip() for r in rows.split(",") if r.strip()] if rows else None,
                         device=device.value, out=out)
    out.result(summary)
