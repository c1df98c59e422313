"""Teachers: frozen networks that turn a sample's strong modality into embeddings.

Each teacher splits its work in two so that extraction can overlap I/O and compute:
`load(sample, root)` reads and preprocesses one sample (runs in DataLoader
workers, CPU only), `embed(items)` runs the network on a batch. A sample that
cannot be embedded (unreadable file, no face found) becomes a `SampleFailure`
with a reason; it gets no row in the store.
"""

from __future__ import annotations

from xmd_cli.errors import XmdError
from xmd_cli.recipe import TeacherConfig
from xmd_cli.teachers.base import SampleFailure, Teacher

__all__ = ["SampleFailure", "Teacher", "build_teacher"]


def build_teacher(config: TeacherConfig, device) -> Teacher:
    if config.kind == "face":
        from xmd_cli.teachers.face import FaceTeacher
        return FaceTeacher(config.weights or "vggface2", device)
    if config.kind == "text":
        from xmd_cli.teachers.text import TextTeacher
        return TextTeacher(config.weights, device)
    if config.kind == "checkpoint":
        from xmd_cli.teachers.checkpoint import CheckpointTeacher
        if not config.weights:
            raise XmdError("teacher.kind checkpoint needs teacher.weights: a checkpoint directory from `xmd train`",
                           hint="e.g. --set teacher.weights=WORKDIR/runs/face-teacher/checkpoints/best")
        return CheckpointTeacher(config.weights, device)
    raise XmdError(f"teacher.kind {config.kind!r} makes no network: control teachers are derived "
                   "from a real teacher's store")
