"""The r-vector / WeSpeaker ResNet34 speaker encoder over the (frequency, time) plane."""

from __future__ import annotations

import torch
from torch import nn

from xmd_cli.models.pooling import masked_mean_std

# student.width -> the first stage's channels (WeSpeaker's ResNet34 is "full": 32).
BASE_CHANNELS = {"quarter": 8, "half": 16, "full": 32}


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
