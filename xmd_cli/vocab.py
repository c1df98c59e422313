"""The words xmd's recipes and flags accept, each list written once.

The recipe schema (`Literal[...]`), the CLI's choices and the stages all derive
from these tuples, so adding a teacher kind or a task is one edit here plus its
registry entry, and a typo can never be accepted in one place and refused in
another.
"""

from __future__ import annotations

# What a sample can carry, and what a teacher, scorer or student can take.
MODALITIES = ("face", "speech", "image", "text")

# What the face quality scorer gives a photo where MTCNN finds no face: the whole
# frame's image statistics, capped (docs/quality.md), or 0.
FACE_FALLBACKS = ("image-stats", "none")

# Teachers with a network of their own, and control teachers derived from a real
# teacher's store (label-only, shuffled or random vectors: docs/diagnose.md).
REAL_TEACHERS = ("face", "text", "checkpoint", "dlib")
CONTROL_TEACHERS = ("class-mean", "shuffled", "random")
TEACHER_KINDS = REAL_TEACHERS + CONTROL_TEACHERS

# Student architectures by the input they take.
SPEECH_ARCHS = ("ecapa", "resnet34")
IMAGE_ARCHS = ("image-cnn", "resnet18")
STUDENT_ARCHS = SPEECH_ARCHS + IMAGE_ARCHS

# How a student.init file names its parameters (xmd_cli.models.pretrained maps each).
INIT_LAYOUTS = ("detect", "xmd", "speechbrain-ecapa", "wespeaker-resnet34")

# Dataset adapters `xmd prepare` reads (xmd_cli.data.adapters.ADAPTERS loads each).
ADAPTER_NAMES = ("voxceleb", "kaldi", "imagefolder", "table", "synthetic-persons", "synthetic-captions")

# What `xmd evaluate` measures.
TASKS = ("speaker-verification", "classification", "cross-modal-matching")


def is_speech_arch(arch: str) -> bool:
    """True for students that take waveforms (and compute their own fbank)."""
    return arch in SPEECH_ARCHS
