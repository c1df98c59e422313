"""metrics.jsonl (one JSON record a line) and, optionally, TensorBoard scalars."""

from __future__ import annotations

import json
from pathlib import Path

from xmd_cli.errors import XmdError


def open_tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise XmdError("training.tensorboard is on but the tensorboard package is missing",
                       hint="pip install tensorboard, or --set training.tensorboard=false") from None
    return SummaryWriter(str(run_dir / "tensorboard"))


class MetricsLog:
    def __init__(self, path: Path, tensorboard=None):
        self.path, self.tensorboard = path, tensorboard

    def write(self, record: dict, default_step: int) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.tensorboard.add_scalar(key, value, record.get("step", default_step))

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()
