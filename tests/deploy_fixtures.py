"""Shared by test_embed, test_export and test_evaluate: the CLI runner, and checkpoints without training.

A randomly initialised student saved exactly as `xmd train` saves it is enough
where a test is about the plumbing around a student (embedding files, resuming,
export parity), not about what it learned; saving one takes a second, training one
a minute.
"""

import torch
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.models.distill import DistillationLoss
from xmd_cli.models.students import build_student
from xmd_cli.recipe import MethodConfig, StudentConfig
from xmd_cli.training.checkpoint import save_checkpoint
from xmd_cli.training.job import StudentWithMethod

runner = CliRunner()
TINY_ECAPA = dict(arch="ecapa", modality="speech", channels=[16, 16, 16, 16, 48], attention_channels=8,
                  embedding_dim=8)
TINY_RESNET = dict(arch="resnet34", modality="speech", width="quarter", embedding_dim=8)
TINY_CNN = dict(arch="image-cnn", modality="image", embedding_dim=8, image_size=32, image_channels=[4, 8])


def xmd(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    if code:
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    return result


def flat(text):
    return " ".join(text.split())


def random_checkpoint(directory, seed=0, **student):
    """A checkpoint directory as `xmd train` writes it, of a randomly initialised student."""
    torch.manual_seed(seed)
    config = StudentConfig(**student)
    model = StudentWithMethod(build_student(config), DistillationLoss.from_recipe(
        MethodConfig(), student_dim=config.embedding_dim, teacher_dim=None, classes=2))
    return save_checkpoint(directory, model, {}, {"task": "train", "student": config.model_dump(mode="json")})
