"""Teachers: frozen networks that turn a sample's strong modality into embeddings.

Each teacher splits its work in two so that extraction can overlap I/O and compute:
`load(sample, root)` reads and preprocesses one sample (runs in DataLoader
workers, CPU only), `embed(items)` runs the network on a batch. A sample that
cannot be embedded (unreadable file, no face found) becomes a `SampleFailure`
with a reason; it gets no row in the store.

Every kind (`teacher.kind`) is one entry of `TEACHERS`: how to describe it for
its store's fingerprint and how to build it. Control teachers (class-mean,
shuffled, random) are described like the others but built from a real
teacher's store by `xmd extract-teacher` (`xmd_cli.teachers.controls`).
"""

from __future__ import annotations

from xmd_cli import __version__
from xmd_cli.data.manifest import Manifest
from xmd_cli.errors import XmdError
from xmd_cli.recipe import TeacherConfig
from xmd_cli.registry import Registry
from xmd_cli.teachers.base import SampleFailure, Teacher, TeacherKind
from xmd_cli.vocab import CONTROL_TEACHERS

__all__ = ["TEACHERS", "SampleFailure", "Teacher", "TeacherKind", "build_teacher", "teacher_components",
           "teacher_description"]

# Entries load on first use: the face teacher pulls in facenet-pytorch.
TEACHERS: Registry[TeacherKind] = Registry("teacher", key="teacher.kind")
TEACHERS.add("face", "xmd_cli.teachers.face:FACE_TEACHER")
TEACHERS.add("text", "xmd_cli.teachers.text:TEXT_TEACHER")
TEACHERS.add("checkpoint", "xmd_cli.teachers.checkpoint:CHECKPOINT_TEACHER")
TEACHERS.add("dlib", "xmd_cli.teachers.dlib_face:DLIB_TEACHER")  # pip install 'xmd[dlib]'

for _control in CONTROL_TEACHERS:
    TEACHERS.add(_control, "xmd_cli.teachers.controls:CONTROL_TEACHER")


def build_teacher(config: TeacherConfig, device) -> Teacher:
    """The network of `config.kind`, ready to embed on `device`."""
    kind = TEACHERS.get(config.kind)
    if kind.build is None:
        raise XmdError(f"teacher.kind {config.kind!r} makes no network: control teachers are derived "
                       "from a real teacher's store")
    return kind.build(config, device)


def teacher_description(config: TeacherConfig, manifest: Manifest | None = None) -> dict:
    """The teacher's own part of the fingerprint: kind, weights hash, preprocessing.

    A control teacher's part names its kind, seed and its source store's fingerprint,
    which depends on the manifest: controls need `manifest`.
    """
    return TEACHERS.get(config.kind).describe(config, manifest)


def teacher_components(config: TeacherConfig, manifest: Manifest, description: dict | None = None) -> dict:
    """Everything that determines a teacher store's values: what its consumers expect of it."""
    return {**(description or teacher_description(config, manifest)), "manifest_sha256": manifest.fingerprint,
            "dtype": config.dtype, "frames": config.frames, "xmd_version": __version__}
