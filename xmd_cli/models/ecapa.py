"""ECAPA-TDNN (Desplanques et al., 2020), speechbrain's implementation, as a speaker encoder."""

from __future__ import annotations

import torch
from torch import nn

from xmd_cli.errors import XmdError


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
