"""`xmd diagnose`: will distillation from this teacher help? A report before any training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from xmd_cli.cli.app import (
    DEFAULT_WORKDIR,
    AllowStaleOpt,
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


@app.command("diagnose")
@user_errors
def diagnose(recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
             checkpoint: Annotated[Optional[Path], typer.Option(
                 help="A student-alone checkpoint (`xmd train`, e.g. WORKDIR/runs/NAME/checkpoints/best): "
                      "adds the teacher-student CKA.")] = None,
             out_dir: Annotated[Optional[Path], typer.Option(
                 "--out", "-o", help="Report directory (default: WORKDIR/reports/NAME/diagnose).")] = None,
             allow_stale: AllowStaleOpt = False, device: DeviceOpt = Device.auto, json_: JsonOpt = False,
             verbose: VerboseOpt = 0, quiet: QuietOpt = False):
    """Diagnose the teacher store against the labels: separability, information beyond the label,
    structure shared with a student-alone model, quality vs reliability; a verdict for each."""
    from xmd_cli.stages.diagnose import run_diagnose

    out = output(json_, verbose, quiet)
    out.result(run_diagnose(load(recipe, set_), workdir, checkpoint=checkpoint, out_dir=out_dir,
                            allow_stale=allow_stale, device=device.value, out=out))
