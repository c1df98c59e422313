"""`xmd embed` and `xmd export`: a trained student out of xmd, as embeddings or as a model file."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from xmd_cli.cli.app import Device, DeviceOpt, JsonOpt, QuietOpt, VerboseOpt, app, output, user_errors

CheckpointOpt = Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint directory of `xmd train` or "
                                                                        "`xmd distill` (a run's checkpoints/best).")]


class EmbeddingFormat(str, Enum):
    npz = "npz"
    safetensors = "safetensors"
    ark = "ark"


class ExportFormat(str, Enum):
    torchscript = "torchscript"
    onnx = "onnx"


@app.command()
@user_errors
def embed(source: Annotated[Path, typer.Argument(help="What to embed: a prepared work directory, a Kaldi wav.scp "
                                                      "(*.scp), a file with one path a line, or a folder of audio "
                                                      "or images.", show_default=False)],
          checkpoint: CheckpointOpt,
          out_path: Annotated[Path, typer.Option("--out", "-o", help="Embedding file: .npz (ids, embeddings), "
                                                                     ".safetensors, or .ark (Kaldi, NAME.scp "
                                                                     "beside it).")],
          fmt: Annotated[Optional[EmbeddingFormat], typer.Option("--format", help="File format (default: from "
                                                                                  "the --out suffix).")] = None,
          split: Annotated[Optional[list[str]], typer.Option(help="With a work directory: only these splits "
                                                                  "(repeatable; default: all).")] = None,
          force: Annotated[bool, typer.Option("--force", help="Replace an existing --out (and its unfinished "
                                                              "parts) written by another run.")] = False,
          part_size: Annotated[int, typer.Option(min=1, help="Inputs a part: finished parts survive an "
                                                             "interruption, and a rerun embeds only the rest.")] = 256,
          workers: Annotated[int, typer.Option(min=0, help="Loader processes reading the inputs.")] = 0,
          device: DeviceOpt = Device.auto, json_: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False):
    """Embed many inputs with a student into one file; an interrupted run resumes where it stopped."""
    from xmd_cli.stages.embed import run_embed

    out = output(json_, verbose, quiet)
    out.result(run_embed(checkpoint, source, out_path, fmt=fmt.value if fmt else None, splits=split,
                         device=device.value, force=force, part_rows=part_size, num_workers=workers,
                         out=out))


@app.command("export")
@user_errors
def export(checkpoint: CheckpointOpt,
           out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for student.torchscript.pt, "
                                                                     "student.onnx and export.json.")],
           fmt: Annotated[Optional[list[ExportFormat]], typer.Option("--format", help="torchscript and/or onnx "
                                                                                     "(repeatable; default: "
                                                                                     "both).")] = None,
           tolerance: Annotated[float, typer.Option(min=0.0, help="Largest accepted |exported - eager| of "
                                                                  "unit-normalised embeddings on the probe "
                                                                  "inputs.")] = 1e-4,
           opset: Annotated[int, typer.Option(min=13, help="ONNX opset.")] = 17,
           json_: JsonOpt = False, verbose: VerboseOpt = 0, quiet: QuietOpt = False):
    """Export the whole student (waveform or image -> embedding) to TorchScript and ONNX, checked against eager."""
    from xmd_cli.stages.export import FORMATS, run_export

    out = output(json_, verbose, quiet)
    formats = tuple(dict.fromkeys(f.value for f in fmt)) if fmt else FORMATS
    out.result(run_export(checkpoint, out_dir, formats=formats, tolerance=tolerance, opset=opset, out=out))
