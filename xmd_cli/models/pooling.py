"""Statistics pooling over time, masked to each utterance's true length."""

from __future__ import annotations

import torch


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
