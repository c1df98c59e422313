"""`xmd evaluate`: metrics, reports and plots of a checkpoint or a score file; `--compare` of reports."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from xmd_cli.cli.app import (
    DEFAULT_WORKDIR,
    Device,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    RecipeOpt,
    SeedOpt,
    SetOpt,
    VerboseOpt,
    WorkdirOpt,
    app,
    load,
    output,
    recipe_options,
    user_errors,
)
from xmd_cli.errors import XmdError
from xmd_cli.vocab import TASKS

# The choices of --task, from the one list the recipe schema uses too.
Task = Enum("Task", {name: name for name in TASKS}, type=str)


@app.command()
@user_errors
def evaluate(more_reports: Annotated[Optional[list[Path]], typer.Argument(
                 help="With --compare: further reports, so that `--compare A B C` works.", show_default=False,
                 metavar="[REPORTS]...")] = None,
             task: Annotated[Optional[Task], typer.Option(help="What to measure (default: the recipe's "
                                                                "evaluation.task).")] = None,
             checkpoint: Annotated[Optional[Path], typer.Option(help="Checkpoint directory (default: WORKDIR/runs/"
                                                                     "<recipe name>/checkpoints/<evaluation."
                                                                     "checkpoint>).")] = None,
             scores: Annotated[Optional[Path], typer.Option(help="Score a score file made elsewhere "
                                                                 "(`enroll test score [target|nontarget]` or "
                                                                 "`label score` lines) "
                                                                 "instead of a checkpoint.")] = None,
             trials: Annotated[Optional[str], typer.Option(help="Trial list: a name from `xmd prepare` or a "
                                                                "file, `1 enroll test` or `enroll test "
                                                                "target|nontarget` (default: evaluation.trials, "
                                                                "or the data set's only list).")] = None,
             compare: Annotated[Optional[list[Path]], typer.Option(help="Set these report.json files side by "
                                                                        "side instead of evaluating "
                                                                        "(repeatable).")] = None,
             out_dir: Annotated[Optional[Path], typer.Option(
                 "--out", "-o", help="Report directory (default: WORKDIR/reports/<run>-<task>).")] = None,
             save_scores: Annotated[Optional[Path], typer.Option(help="Also write the trial scores as "
                                                                      "`enroll test score target|nontarget` "
                                                                      "lines (Kaldi/WeSpeaker), for "
                                                                      "--scores.")] = None,
             save_embeddings: Annotated[Optional[Path], typer.Option(help="Also write the trial utterances' "
                                                                          "embeddings: .npz (ids, embeddings), "
                                                                          ".safetensors or .ark.")] = None,
             allow_stale: Annotated[bool, typer.Option(
                 "--allow-stale", help="Accept a teacher store rewritten since the checkpoint was distilled, or a "
                                       "checkpoint of another manifest whose classes overlap the evaluated "
                                       "ones.")] = False,
             recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
             device: DeviceOpt = Device.auto, seed: SeedOpt = None, json_: JsonOpt = False,
             verbose: VerboseOpt = 0, quiet: QuietOpt = False):
    """Speaker verification, classification or cross-modal matching: metrics, report.json/.md, plots."""
    out = output(json_, verbose, quiet)
    if compare:
        from xmd_cli.stages.evaluate import run_compare

        out.result(run_compare([*compare, *(more_reports or [])], out))
        return
    if more_reports:
        raise XmdError(f"unexpected argument(s) {', '.join(map(str, more_reports))}",
                       hint="report paths go with --compare, e.g. xmd evaluate --compare A/report.json B/report.json")
    from xmd_cli.stages.evaluate import run_evaluate

    out.result(run_evaluate(load(recipe, set_, recipe_options(seed)), workdir, task=task.value if task else None,
                            checkpoint=checkpoint, scores=scores, trials=trials, out_dir=out_dir,
                            device=device.value, allow_stale=allow_stale, out=out, save_scores=save_scores,
                            save_embeddings=save_embeddings))
