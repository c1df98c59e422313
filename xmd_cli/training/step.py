"""One optimisation step: forward, the NaN/Inf guard, backward, clipping, optimizer and schedule."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from xmd_cli.errors import XmdError


def check_finite(terms: dict, step: int, last_checkpoint: Path) -> None:
    """Stop at the first loss term that is NaN/Inf, naming the step and the term."""
    for name, value in terms.items():
        if not torch.isfinite(value.detach()).all():
            raise XmdError(f"step {step}: loss term '{name}' is {value.item()}",
                           hint="lower training.lr, set training.grad_clip, or check the inputs; "
                                "the last good checkpoint is in " + str(last_checkpoint))


def train_step(trainer, inputs, labels, side: dict, lengths):
    """Run one step on a batch already on the device; returns (loss terms, gradient norm or None)."""
    cfg = trainer.job.config
    with torch.autocast(trainer.ctx.device.type, dtype=torch.bfloat16, enabled=trainer.autocast):
        terms = trainer.net(inputs, labels, side, lengths)
    check_finite(terms, trainer.global_step + 1, trainer.checkpoints / "last")
    trainer.optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    grad_norm = nn.utils.clip_grad_norm_(trainer.model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
    trainer.optimizer.step()
    trainer.scheduler.step()
    return terms, grad_norm
