"""Student networks: every one maps a batch to embeddings (B, embedding_dim).

`build_student(config)` returns a module called as `student(x, lengths=None)`:
  speech (ecapa, resnet34): x is a waveform batch (B, samples) at
      `config.sample_rate`; the fbank front end (`xmd_cli.features.SpeechFeatures`)
      is the student's first layer, so a deployed student takes raw audio and the
      features run on the student's device. `lengths` are relative lengths in
      (0, 1] of zero-padded utterances (speechbrain's convention); padded frames
      are masked out of normalisation and pooling, so whole utterances of any
      length can be scored in one padded batch.
  image (image-cnn, resnet18): x is a normalised image batch (B, 3, H, W);
      `lengths` is accepted and ignored.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from xmd_cli.errors import XmdError
from xmd_cli.features import SpeechFeatures

SPEECH_ARCHS = ("ecapa", "resnet34")
IMAGE_ARCHS = ("image-cnn", "resnet18")
RESNET34_BASE_CHANNELS = {"quarter": 8, "half": 16, "full": 32}


def is_speech_student(config) -> bool:
    return config.arch in SPEECH_ARCHS


def masked_mean_std(x: torch.Tensor, lengths: torch.Tensor | None, eps: float = 1e-7) -> torch.Tensor:
    """Statistics pooling of (B, C, T) over time -> (B, 2C): mean and standard deviation.

    With relative `lengths`, only the first ceil(length * T) frames of each row count.
    """
    if lengths is None:
        mean = x.mean(dim=-1)
        std = torch.sqrt(x.var(dim=-1, unbiased=False).clamp(min=eps))
        return torch.cat([mean, std], dim=1)
    steps = x.shape[-1]
    valid = torch.clamp(torch.ceil(lengths.to(x.device).float() * steps - 1e-4), 1, steps)
    mask = (torch.arange(steps, device=x.device)[None, :] < valid[:, None]).to(x.dtype).unsqueeze(1)
    count = valid.to(x.dtype)[:, None]
    mean = (x * mask).sum(dim=-1) / count
    var = ((x - mean.unsqueeze(-1)).square() * mask).sum(dim=-1) / count
    return torch.cat([mean, torch.sqrt(var.clamp(min=eps))], dim=1)


# ---------------------------------------------------------------- speech
class EcapaEncoder(nn.Module):
    """speechbrain's ECAPA-TDNN on fbank (B, T, n_mels) -> (B, D)."""

    def __init__(self, n_mels: int, embedding_dim: int, channels: list[int], attention_channels: int):
        super().__init__()
        from speechbrain.lobes.models.ECAPA_TDNN import (
            ECAPA_TDNN,  # heavy import: only when built
        )

        if len(channels) != 5:
            raise XmdError(f"student.channels: ECAPA-TDNN needs 5 values (4 blocks + the aggregation), "
                           f"got {len(channels)}", hint="e.g. [512, 512, 512, 512, 1536] or [64, 64, 64, 64, 192]")
        if any(c % 8 for c in channels[1:4]):
            # Res2Net blocks split channels into 8 groups (res2net_scale=8).
            raise XmdError(f"student.channels {channels}: the middle three must be multiples of 8")
        self.net = ECAPA_TDNN(input_size=n_mels, lin_neurons=embedding_dim, channels=list(channels),
                              attention_channels=attention_channels)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(feats, lengths=lengths).squeeze(1)


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SpeakerResNet34(nn.Module):
    """The r-vector / WeSpeaker ResNet34: fbank (B, T, n_mels) -> (B, D).

    A 3x3 stem, BasicBlocks [3, 4, 6, 3] at widths m, 2m, 4m, 8m (strides 1, 2, 2, 2)
    over the (frequency, time) plane, then mean and standard deviation over time of
    every (channel, frequency) row, and a linear layer to the embedding.
    """

    def __init__(self, n_mels: int, embedding_dim: int, base_channels: int = 32,
                 blocks: tuple[int, ...] = (3, 4, 6, 3)):
        super().__init__()
        m = base_channels
        self.stem = nn.Sequential(nn.Conv2d(1, m, 3, 1, 1, bias=False), nn.BatchNorm2d(m), nn.ReLU())
        layers, in_channels = [], m
        for index, count in enumerate(blocks):
            channels, stride = m * 2 ** index, (1 if index == 0 else 2)
            for block in range(count):
                layers.append(BasicBlock(in_channels, channels, stride if block == 0 else 1))
                in_channels = channels
        self.layers = nn.Sequential(*layers)
        freq_out = n_mels
        for _ in blocks[1:]:
            freq_out = (freq_out - 1) // 2 + 1  # a 3x3 conv with stride 2 and padding 1
        self.embedding = nn.Linear(2 * in_channels * freq_out, embedding_dim)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = self.layers(self.stem(feats.transpose(1, 2).unsqueeze(1)))  # (B, C, F', T')
        x = x.flatten(1, 2)  # (B, C * F', T')
        return self.embedding(masked_mean_std(x, lengths))


class SpeechStudent(nn.Module):
    """Waveform (B, samples) -> fbank -> encoder -> (B, D)."""

    def __init__(self, features: SpeechFeatures, encoder: nn.Module):
        super().__init__()
        self.features = features
        self.encoder = encoder

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        feats = self.features(wave, lengths)
        frame_lengths = None
        if lengths is not None:
            # The encoder masks frames: convert sample-relative lengths to frame-relative ones.
            samples = torch.round(lengths.to(wave.device).float() * wave.shape[1])
            frames = torch.clamp(self.features.num_frames(samples.long()), min=1)
            frame_lengths = frames.float() / feats.shape[1]
        return self.encoder(feats, frame_lengths)


# ---------------------------------------------------------------- images
class ImageCNN(nn.Module):
    """A small CPU-friendly CNN: (B, 3, H, W) -> (B, D).

    One conv-BN-ReLU per block; the first has stride 2 and every block but the
    last is followed by 2x2 max pooling, then global average pooling and a linear
    layer. At 128x128 with [32, 64, 128, 256] it costs about 60 M multiply-adds an
    image (a ResNet-18 costs 0.6 G at that size).
    """

    def __init__(self, embedding_dim: int, channels: list[int]):
        super().__init__()
        if not channels:
            raise XmdError("student.image_channels is empty; give the channels of each block, e.g. [32, 64, 128, 256]")
        layers, in_channels = [], 3
        for index, width in enumerate(channels):
            stride = 2 if index == 0 else 1
            layers += [nn.Conv2d(in_channels, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if index < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            in_channels = width
        self.body = nn.Sequential(*layers)
        self.embedding = nn.Linear(in_channels, embedding_dim)

    def forward(self, images: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.embedding(self.body(images).mean(dim=(2, 3)))


class ResNet18(nn.Module):
    """torchvision's ResNet-18 with its classifier replaced by a linear layer to the embedding."""

    def __init__(self, embedding_dim: int, weights: str | None = None):
        super().__init__()
        import torchvision

        self.net = torchvision.models.resnet18(weights=None)  # never download
        if weights:
            _load_local_weights(self.net, Path(weights))
        self.net.fc = nn.Linear(self.net.fc.in_features, embedding_dim)

    def forward(self, images: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(images)


def _load_local_weights(net: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise XmdError(f"student.weights: {path} is not a file",
                       hint="give a torchvision resnet18 state dict saved with torch.save (e.g. resnet18-f37072fd.pth)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types on a bad file
        raise XmdError(f"student.weights: cannot load {path} ({type(e).__name__}: {e})",
                       hint="expected a state dict saved with torch.save") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise XmdError(f"student.weights: {path} does not hold a state dict (name -> tensor)")
    # The classifier head is replaced anyway; other keys must match exactly.
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    wanted = {k: v.shape for k, v in net.state_dict().items() if not k.startswith("fc.")}
    wrong_shape = [k for k, v in state.items() if k in wanted and tuple(v.shape) != tuple(wanted[k])]
    missing, unexpected = sorted(set(wanted) - set(state)), sorted(set(state) - set(wanted))
    if missing or unexpected or wrong_shape:
        raise XmdError(f"student.weights: {path} is not a torchvision resnet18 state dict "
                       f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong_shape[:3]})")
    net.load_state_dict(state, strict=False)


# ---------------------------------------------------------------- the one entry point
def build_student(config) -> nn.Module:
    """The student named by `config` (a `StudentConfig`), randomly initialised (or from `weights`)."""
    if config.arch in SPEECH_ARCHS and config.modality != "speech":
        raise XmdError(f"student.arch {config.arch!r} takes speech, but student.modality is {config.modality!r}",
                       hint="set student.modality=speech, or an image arch (image-cnn, resnet18)")
    if config.arch in IMAGE_ARCHS and config.modality not in ("image", "face"):
        raise XmdError(f"student.arch {config.arch!r} takes images, but student.modality is {config.modality!r}",
                       hint="set student.modality=image or face, or a speech arch (ecapa, resnet34)")
    if config.arch == "ecapa":
        encoder = EcapaEncoder(config.n_mels, config.embedding_dim, config.channels, config.attention_channels)
    elif config.arch == "resnet34":
        encoder = SpeakerResNet34(config.n_mels, config.embedding_dim, RESNET34_BASE_CHANNELS[config.width])
    elif config.arch == "image-cnn":
        return ImageCNN(config.embedding_dim, config.image_channels)
    elif config.arch == "resnet18":
        return ResNet18(config.embedding_dim, config.weights)
    else:
        raise XmdError(f"student.arch {config.arch!r} is unknown; use one of {', '.join(SPEECH_ARCHS + IMAGE_ARCHS)}")
    return SpeechStudent(SpeechFeatures(config.sample_rate, config.n_mels), encoder)


def build_student_for_checkpoint(config) -> nn.Module:
    """The architecture of a saved student, to load its weights into: the initial weights
    file the run started from (student.weights) is neither needed nor read."""
    return build_student(config.model_copy(update={"weights": None}))


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
