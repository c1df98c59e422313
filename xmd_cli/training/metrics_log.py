"""metrics.jsonl (one JSON record a line) and, optionally, TensorBoard scalars."""

from __future__ import annotations

import json
import os
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

    def sync(self) -> int:
        """fsync what is logged so far and return its length: a checkpoint records it, so that a resume
        can cut metrics.jsonl back to exactly the records of the steps the checkpoint holds."""
        if not self.path.exists():
            return 0
        with self.path.open("rb+") as f:
            os.fsync(f.fileno())
            return f.seek(0, os.SEEK_END)

    def cut(self, length: int) -> None:
        """Drop what was logged after the checkpoint being resumed (steps that will be run again)."""
        if self.path.exists() and self.path.stat().st_size > length:
            with self.path.open("rb+") as f:
                f.truncate(length)
                os.fsync(f.fileno())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()
