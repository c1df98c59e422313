"""An example for every command's --help (its epilog), kept in one place.

Set on the registered commands by `attach` once every command module is imported,
so a command module does not carry its example text; `tests/test_cli_conventions.py`
fails for a command that has none.
"""

from __future__ import annotations

import typer

EXAMPLES = {
    "prepare": "xmd prepare voxceleb --root /data/vox2 --video-dir dev/mp4 --set data.audio_dir=dev/aac -w work",
    "demo": "xmd demo --tiny --set training.epochs=1",
    "extract-teacher": "xmd extract-teacher --recipe demo-persons -w w --set teacher.weights=w/runs/face-teacher/"
                       "checkpoints/best",
    "score-quality": "xmd score-quality --modality speech --recipe demo-persons -w w",
    "train": "xmd train --recipe face-teacher -w w --device cuda",
    "distill": "xmd distill --recipe speaker -w work --nproc 8",
    "evaluate": "xmd evaluate --task speaker-verification --recipe demo-persons -w w --trials trials.kaldi",
    "ablate": "xmd ablate --recipe demo-persons -w w --grid quick --seeds 2",
    "diagnose": "xmd diagnose --recipe demo-persons -w w",
    "embed": "xmd embed data/wav.scp -c w/runs/full/checkpoints/best -o emb.ark",
    "export": "xmd export -c w/runs/full/checkpoints/best -o deploy --format onnx",
    "shards info": "xmd shards info w/teacher/<fingerprint>",
    "shards verify": "xmd shards verify w/teacher/<fingerprint> --json",
    "shards repair": "xmd shards repair w/teacher/<fingerprint>",
    "shards export": "xmd shards export w/teacher/<fingerprint> --out teacher.npz",
    "recipes list": "xmd recipes list --json",
    "recipes show": "xmd recipes show speaker --set training.lr=0.01",
    "recipes validate": "xmd recipes validate my-recipe.yaml",
}


def attach(app: typer.Typer, prefix: str = "") -> None:
    """Put each command's example into its epilog (commands of groups too)."""
    for info in app.registered_commands:
        name = f"{prefix}{info.name or info.callback.__name__.replace('_', '-')}"
        if name in EXAMPLES and not info.epilog:
            info.epilog = f"Example: {EXAMPLES[name]}"
    for group in app.registered_groups:
        attach(group.typer_instance, f"{prefix}{group.name} ")
