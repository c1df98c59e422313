"""A small CPU-friendly image CNN student."""

from __future__ import annotations

import torch
from torch import nn

from xmd_cli.errors import XmdError


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
