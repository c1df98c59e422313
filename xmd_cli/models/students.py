"""Student networks: every one maps a batch to embeddings (B, embedding_dim).

`build_student(config)` returns a module called as `student(x, lengths=None)`:
  speech (ecapa, resnet34): x is a waveform batch (B, samples) at
      `config.sample_rate`; the fbank front end (`xmd_cli.models.fbank.SpeechFeatures`)
      is the student's first layer, so a deployed student takes raw audio and the
      features run on the student's device. `lengths` are relative lengths in
      (0, 1] of zero-padded utterances (speechbrain's convention); padded frames
      are masked out of normalisation and pooling, so whole utterances of any
      length can be scored in one padded batch.
  image (image-cnn, resnet18): x is a normalised image batch (B, 3, H, W);
      `lengths` is accepted and ignored.

Each architecture is one module of `xmd_cli.models` taking explicit constructor
arguments; `STUDENTS` maps `student.arch` to the function that reads those
arguments from a `StudentConfig`.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from xmd_cli.errors import XmdError
from xmd_cli.registry import Registry
from xmd_cli.vocab import IMAGE_ARCHS, SPEECH_ARCHS

STUDENTS: Registry[Callable[..., nn.Module]] = Registry("student", key="student.arch")


def _speech_student(config, encoder: nn.Module) -> nn.Module:
    from xmd_cli.models.fbank import SpeechFeatures
    from xmd_cli.models.speech import SpeechStudent

    return SpeechStudent(SpeechFeatures(config.sample_rate, config.n_mels), encoder)


@STUDENTS.register("ecapa")
def _ecapa(config) -> nn.Module:
    from xmd_cli.models.ecapa import EcapaEncoder

    return _speech_student(config, EcapaEncoder(config.n_mels, config.embedding_dim, config.channels,
                                                config.attention_channels))


@STUDENTS.register("resnet34")
def _resnet34(config) -> nn.Module:
    from xmd_cli.models.resnet34 import BASE_CHANNELS, SpeakerResNet34

    return _speech_student(config, SpeakerResNet34(config.n_mels, config.embedding_dim, BASE_CHANNELS[config.width]))


@STUDENTS.register("image-cnn")
def _image_cnn(config) -> nn.Module:
    from xmd_cli.models.image_cnn import ImageCNN

    return ImageCNN(config.embedding_dim, config.image_channels)


@STUDENTS.register("resnet18")
def _resnet18(config) -> nn.Module:
    from xmd_cli.models.resnet18 import ResNet18

    return ResNet18(config.embedding_dim, config.weights)


def build_student(config) -> nn.Module:
    """The student named by `config` (a `StudentConfig`), randomly initialised (or from `weights`),
    then loaded from `config.init` when set (published weights: `xmd_cli.models.pretrained`)."""
    if config.arch in SPEECH_ARCHS and config.modality != "speech":
        raise XmdError(f"student.arch {config.arch!r} takes speech, but student.modality is {config.modality!r}",
                       hint="set student.modality=speech, or an image arch (" + ", ".join(IMAGE_ARCHS) + ")")
    if config.arch in IMAGE_ARCHS and config.modality not in ("image", "face"):
        raise XmdError(f"student.arch {config.arch!r} takes images, but student.modality is {config.modality!r}",
                       hint="set student.modality=image or face, or a speech arch (" + ", ".join(SPEECH_ARCHS) + ")")
    student = STUDENTS.get(config.arch)(config)
    init = getattr(config, "init", None)
    if init:
        from xmd_cli.models.pretrained import load_initial_weights

        load_initial_weights(student, init, getattr(config, "init_layout", "detect"))
    return student


def build_student_for_checkpoint(config) -> nn.Module:
    """The architecture of a saved student, to load its weights into: the initial weights
    files the run started from (student.weights, student.init) are neither needed nor read."""
    return build_student(config.model_copy(update={"weights": None, "init": None}))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
