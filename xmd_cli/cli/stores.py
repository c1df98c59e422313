"""Commands that write and inspect the embedding stores: extract-teacher, score-quality, shards."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from xmd_cli.cli.app import (
    DEFAULT_WORKDIR,
    Device,
    DeviceOpt,
    ForceOpt,
    JsonOpt,
    NprocOpt,
    QuietOpt,
    RecipeOpt,
    SetOpt,
    VerboseOpt,
    WorkdirOpt,
    app,
    load,
    output,
    relaunch_under_torchrun,
    shards_app,
    user_errors,
)
from xmd_cli.errors import XmdError
from xmd_cli.vocab import MODALITIES

# The choices of --modality, from the one list the recipe schema uses too.
Modality = Enum("Modality", {name: name for name in MODALITIES}, type=str)


@app.command("extract-teacher")
@user_errors
def extract_teacher(recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
                    weights: Annotated[Optional[str], typer.Option(help="Teacher weights: vggface2, casia-webface, "
                                                                        "a file, a checkpoint or model "
                                                                        "directory.")] = None,
                    kind: Annotated[Optional[str], typer.Option(help="Teacher kind: face, text, checkpoint, or a "
                                                                     "control (random, class-mean, shuffled, with "
                                                                     "--set teacher.source_kind=...); "
                                                                     "default: the recipe's.")] = None,
                    device: DeviceOpt = Device.auto, force: ForceOpt = False, nproc: NprocOpt = 1,
                    json_: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False):
    """Run the teacher once over the dataset; its embeddings go to WORKDIR/teacher/<fingerprint>."""
    relaunch_under_torchrun(nproc)
    from xmd_cli.stages.extract import run_extract

    teacher = {k: v for k, v in (("weights", weights), ("kind", kind)) if v}
    out = output(json_, verbose, quiet)
    summary = run_extract(load(recipe, set_, {"teacher": teacher} if teacher else None), workdir,
                          device=device.value, force=force, out=out)
    if summary:
        out.result(summary)


@app.command("score-quality")
@user_errors
def score_quality(modality: Annotated[Modality, typer.Option(help="Which input of each sample to score.")],
                  recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
                  device: DeviceOpt = Device.auto, force: ForceOpt = False, json_: JsonOpt = False,
                  verbose: VerboseOpt = 0, quiet: QuietOpt = False):
    """Score each sample's quality into WORKDIR/quality/<fingerprint>: a summary table and a histogram."""
    from xmd_cli.stages.quality import run_quality

    out = output(json_, verbose, quiet)
    out.result(run_quality(load(recipe, set_), workdir, modality=modality.value, device=device.value,
                           force=force, out=out))


# ---------------------------------------------------------------- shards
StoreArg = Annotated[Path, typer.Argument(help="Store directory (holds meta.json), "
                                               "e.g. xmd-work/teacher/<fingerprint>.")]


@shards_app.command("info")
@user_errors
def shards_info(store: StoreArg, json_: JsonOpt = False):
    """Summarise a store: ids, rows, dimension, dtype, shards, fingerprint, size on disk."""
    from xmd_cli.stages.shards_cmd import run_info

    out = output(json_, 0, False)
    out.result(run_info(store, out))


@shards_app.command("verify")
@user_errors
def shards_verify(store: StoreArg, json_: JsonOpt = False):
    """Check a store's integrity: every header, every row checksum, NaN/Inf, the index; exit 1 on a problem."""
    from xmd_cli.stages.shards_cmd import run_verify

    out = output(json_, 0, False)
    report = run_verify(store, out)
    out.result(report)
    if not report["ok"]:
        if json_:
            raise typer.Exit(1)
        raise XmdError(f"{store}: {len(report['problems'])} problem(s):\n  " + "\n  ".join(report["problems"]),
                       hint=f"`xmd shards repair {store}` sets the damaged shards aside and rebuilds the index; "
                            "then rerun the writer, which recomputes their rows")


@shards_app.command("repair")
@user_errors
def shards_repair(store: StoreArg, json_: JsonOpt = False):
    """Set aside unsound shards (to STORE/dropped/) and rebuild the index from the sound ones; says what it dropped."""
    from xmd_cli.stages.shards_cmd import run_repair

    out = output(json_, 0, False)
    out.result(run_repair(store, out))


@shards_app.command("export")
@user_errors
def shards_export(store: StoreArg,
                  out_path: Annotated[Path, typer.Option("--out", "-o", help="File to write: .csv, .npz or .npy "
                                                                            "(.npy: ids in NAME.ids.txt beside it).")],
                  json_: JsonOpt = False):
    """Export rows with their ids, sorted by id, to CSV or NumPy for your own analysis."""
    from xmd_cli.stages.shards_cmd import run_export

    out = output(json_, 0, False)
    out.result(run_export(store, out_path, out))
