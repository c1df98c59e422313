"""Student networks: shapes for each arch and width, variable-length utterances, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xmd_cli.errors import XmdError
from xmd_cli.models.pooling import masked_mean_std
from xmd_cli.models.students import build_student, parameter_count
from xmd_cli.recipe import StudentConfig

SMALL_ECAPA = dict(arch="ecapa", channels=[64] * 4 + [192], attention_channels=32)
RATE = 16000


def _speech(batch=2, seconds=1.0, seed=0):
    noise = np.random.default_rng(seed).standard_normal((batch, int(seconds * RATE))).astype(np.float32)
    return torch.from_numpy(noise * 0.1)


@pytest.mark.parametrize("options, dim", [
    (SMALL_ECAPA, 192),
    (dict(arch="resnet34", width="quarter"), 64),
    (dict(arch="resnet34", width="half"), 128),
    (dict(arch="resnet34", width="full"), 256),
])
def test_speech_students_map_waveforms_to_embeddings(options, dim):
    torch.manual_seed(0)
    student = build_student(StudentConfig(embedding_dim=dim, **options))
    out = student(_speech(seconds=0.3))
    assert out.shape == (2, dim) and torch.isfinite(out).all()
    out.sum().backward()  # the whole student trains, front end excluded (it has no parameters)
    assert all(p.grad is not None for p in student.parameters())


@pytest.mark.parametrize("arch, modality, size", [("image-cnn", "face", 128), ("image-cnn", "image", 64),
                                                  ("resnet18", "face", 64)])
def test_image_students_map_images_to_embeddings(arch, modality, size):
    student = build_student(StudentConfig(arch=arch, modality=modality, embedding_dim=32, image_size=size))
    out = student(torch.randn(2, 3, size, size))
    assert out.shape == (2, 32) and torch.isfinite(out).all()


def test_parameter_counts_match_the_reference_models():
    # ECAPA-TDNN (C=512) is 6.2 M (speechbrain); WeSpeaker's ResNet34 (32 channels, 256-d) is 6.6 M.
    assert 6.1e6 < parameter_count(build_student(StudentConfig(arch="ecapa"))) < 6.3e6
    counts = {w: parameter_count(build_student(StudentConfig(arch="resnet34", width=w, embedding_dim=256)))
              for w in ("quarter", "half", "full")}
    assert 6.5e6 < counts["full"] < 6.7e6
    assert counts["quarter"] < counts["half"] < counts["full"]
    assert parameter_count(build_student(StudentConfig(arch="image-cnn", modality="face"))) < 1e6


@pytest.mark.parametrize("options", [SMALL_ECAPA, dict(arch="resnet34", width="quarter")])
def test_whole_utterances_of_different_lengths_share_a_padded_batch(options):
    torch.manual_seed(0)
    student = build_student(StudentConfig(**options))
    # Train mode briefly so BatchNorm statistics are not the identity, then evaluate.
    student.train()
    student(_speech(4, 0.5, seed=1))
    student.eval()
    long, short = _speech(1, 1.5, seed=2)[0], _speech(1, 0.7, seed=3)[0]
    padded = torch.zeros(2, long.numel())
    padded[0], padded[1, :short.numel()] = long, short
    lengths = torch.tensor([1.0, short.numel() / long.numel()])
    with torch.no_grad():
        batch = student(padded, lengths)
        alone = torch.cat([student(long[None]), student(short[None])])
        unmasked = student(padded)
    similarity = F.cosine_similarity(batch, alone)
    assert similarity.min() > 0.99
    # Without lengths the padding changes the short utterance's embedding more than masking does.
    assert F.cosine_similarity(unmasked[1:], alone[1:]) < similarity[1]


def test_masked_statistics_pooling_ignores_padding():
    x = torch.randn(2, 3, 10)
    pooled = masked_mean_std(x, torch.tensor([1.0, 0.6]))
    torch.testing.assert_close(pooled[1, :3], x[1, :, :6].mean(dim=-1))
    torch.testing.assert_close(pooled[1, 3:], x[1, :, :6].std(dim=-1, unbiased=False), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pooled[0], masked_mean_std(x[:1], None)[0])


def test_image_cnn_learns_to_separate_two_classes():
    # A real training signal through the student: loss falls on two separable classes.
    torch.manual_seed(0)
    student = build_student(StudentConfig(arch="image-cnn", modality="image", embedding_dim=2,
                                          image_channels=[8, 16], image_size=16))
    images = torch.randn(16, 3, 16, 16) * 0.3
    labels = torch.arange(16) % 2
    images[labels == 1, 0] += 1.0  # class 1 is redder
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = F.cross_entropy(student(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.slow
def test_resnet18_loads_local_weights_and_never_downloads(tmp_path):
    import torchvision

    torch.manual_seed(1)
    source = torchvision.models.resnet18(weights=None)
    torch.save(source.state_dict(), tmp_path / "resnet18.pth")
    student = build_student(StudentConfig(arch="resnet18", modality="image", embedding_dim=16,
                                          weights=str(tmp_path / "resnet18.pth")))
    torch.testing.assert_close(student.net.conv1.weight, source.conv1.weight)
    assert student.net.fc.out_features == 16

    (tmp_path / "bad.pth").write_text("not a checkpoint")
    with pytest.raises(XmdError, match="student.weights: cannot load"):
        build_student(StudentConfig(arch="resnet18", modality="image", weights=str(tmp_path / "bad.pth")))
    with pytest.raises(XmdError, match="is not a file"):
        build_student(StudentConfig(arch="resnet18", modality="image", weights=str(tmp_path / "none.pth")))
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(XmdError, match="not a torchvision resnet18"):
        build_student(StudentConfig(arch="resnet18", modality="image", weights=str(tmp_path / "other.pth")))


def test_bad_configurations_are_clear_errors():
    with pytest.raises(XmdError, match="student.modality"):
        build_student(StudentConfig(arch="ecapa", modality="face"))
    with pytest.raises(XmdError, match="student.modality"):
        build_student(StudentConfig(arch="image-cnn", modality="speech"))
    with pytest.raises(XmdError, match="5 values"):
        build_student(StudentConfig(arch="ecapa", channels=[64, 64, 192]))
    with pytest.raises(XmdError, match="multiples of 8"):
        build_student(StudentConfig(arch="ecapa", channels=[64, 60, 64, 64, 192]))
    with pytest.raises(XmdError, match="image_channels is empty"):
        build_student(StudentConfig(arch="image-cnn", modality="image", image_channels=[]))
