"""`xmd prepare` and `xmd demo`: data in, and the whole pipeline on demo data."""

from __future__ import annotations

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
    split_pair,
    user_errors,
)
from xmd_cli.console import Output


# ---------------------------------------------------------------- prepare
@app.command()
@user_errors
def prepare(
    adapter: Annotated[Optional[str], typer.Argument(help="voxceleb, kaldi, imagefolder, table, "
                                                          "synthetic-persons or synthetic-captions "
                                                          "(default: the recipe's)")] = None,
    root: Annotated[Optional[str], typer.Option(help="Dataset root (synthetic data: where to generate it).")] = None,
    trials: Annotated[Optional[list[str]], typer.Option(help="Trial list, VoxCeleb `1 enroll test` or Kaldi "
                                                            "`enroll test target|nontarget` (repeatable).")] = None,
    table: Annotated[Optional[str], typer.Option(help="table: the CSV or JSONL file.")] = None,
    column: Annotated[Optional[list[str]], typer.Option(help="table: FIELD=COLUMN mapping (repeatable).")] = None,
    captions: Annotated[Optional[str], typer.Option(help="imagefolder: captions TSV file.")] = None,
    images_dir: Annotated[Optional[str], typer.Option(help="voxceleb: face-frame tree below the root.")] = None,
    video_dir: Annotated[Optional[str], typer.Option(help="voxceleb: video tree below the root (VoxCeleb2 "
                                                          "dev/mp4); face frames are taken from each video.")] = None,
    identities: Annotated[Optional[int], typer.Option(help="synthetic-persons: number of identities.")] = None,
    per_identity: Annotated[Optional[int], typer.Option(help="synthetic-persons: samples per identity.")] = None,
    per_class: Annotated[Optional[int], typer.Option(help="synthetic-captions: images per class.")] = None,
    tiny: Annotated[bool, typer.Option("--tiny", help="Synthetic data: the tiny preset used by tests.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Any missing or unreadable file is fatal.")] = False,
    recipe: RecipeOpt = None, workdir: WorkdirOpt = DEFAULT_WORKDIR, set_: SetOpt = None,
    seed: SeedOpt = None, json_: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False,
):
    """Read a dataset (or generate demo data) into WORKDIR/manifest.jsonl."""
    out = output(json_, verbose, quiet)
    data: dict = {}
    for key, value in [("adapter", adapter), ("root", root), ("trials", trials), ("table", table),
                       ("captions", captions), ("images_dir", images_dir), ("video_dir", video_dir),
                       ("seed", seed)]:
        if value is not None:
            data[key] = value
    if column:
        data["columns"] = dict(split_pair(c, "--column") for c in column)
    if tiny:
        data["tiny"] = True
    persons = {k: v for k, v in [("identities", identities), ("per_identity", per_identity)] if v}
    if persons:
        data["persons"] = persons
    if per_class:
        data["captions_data"] = {"per_class": per_class}
    from xmd_cli.stages.prepare import run_prepare

    loaded = load(recipe, set_, {"data": data})
    with out.progress() as progress:
        summary = run_prepare(loaded, workdir, strict=strict, progress=progress)
    show_prepare_summary(out, summary)
    for warning in summary.get("warnings", []):
        out.warning(warning)
    out.result(summary)


def show_prepare_summary(out: Output, summary: dict) -> None:
    rows = [("samples", summary.get("samples")), ("classes", summary.get("classes"))]
    rows += [(f"split {k}", v) for k, v in summary.get("splits", {}).items()]
    rows += [(f"trials {k}", v) for k, v in summary.get("trials", {}).items()]
    rows += [(f"problem {k}", v) for k, v in summary.get("problems", {}).items()]
    rows += [("manifest", summary.get("manifest")), ("report", summary.get("report"))]
    out.table("prepared", rows, ("", "value"))


@app.command()
@user_errors
def demo(
    task: Annotated[str, typer.Option(help="image (synthetic-captions: composed classes, a long tail, a text "
                                           "teacher) or speaker (synthetic-persons, a face teacher).")] = "image",
    tiny: Annotated[bool, typer.Option("--tiny", help="The tiny preset, for smoke tests.")] = False,
    workdir: WorkdirOpt = Path("xmd-demo"), set_: SetOpt = None, seed: SeedOpt = None,
    device: DeviceOpt = Device.auto, json_: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False,
):
    """The whole pipeline on embedded demo data, offline (its recipes are fixed by --task; --set changes
    every one of them)."""
    from xmd_cli.stages.demo import run_demo

    out = output(json_, verbose, quiet)
    summary = run_demo(task=task, tiny=tiny, workdir=workdir, seed=seed, device=device.value, out=out,
                       overrides=set_)
    out.result(summary)
