"""A speech student: its own fbank front end, then a speaker encoder."""

from __future__ import annotations

import torch
from torch import nn

from xmd_cli.models.fbank import SpeechFeatures


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
