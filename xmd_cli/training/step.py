"""One optimisation step: forward, the NaN/Inf guard, backward, clipping, optimizer and schedule."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from xmd_cli.errors import XmdError

SHOWN_IDS = 8  # sample ids a message lists before "and N more"


def _listed(ids: list[str]) -> str:
    more = f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else ""
    return ", ".join(ids[:SHOWN_IDS]) + more


def check_inputs(inputs: torch.Tensor, ids: list[str], step: int) -> None:
    """Stop before the forward pass when a sample's input holds NaN/Inf, naming those samples.

    Damaged media decoded without an error would otherwise show up only as a NaN
    loss of the whole batch, with no sample to blame.
    """
    if not inputs.is_floating_point():
        return
    finite = torch.isfinite(inputs.detach().reshape(len(inputs), -1)).all(dim=1)
    if bool(finite.all()):
        return
    bad = [ids[k] for k in torch.nonzero(~finite).flatten().tolist()]
    raise XmdError(f"step {step}: the input of sample(s) {_listed(bad)} holds NaN or infinite values",
                   hint="their media files are damaged: re-export them, or rerun `xmd prepare` (it leaves such "
                        "files out) and start the run over")


def check_finite(terms: dict, step: int, last_checkpoint: Path, ids: list[str] | None = None) -> None:
    """Stop at the first loss term that is NaN/Inf, naming the step, the term and the batch's samples."""
    for name, value in terms.items():
        if not torch.isfinite(value.detach()).all():
            batch = f" on the batch of sample(s) {_listed(ids)}" if ids else ""
            raise XmdError(f"step {step}: loss term '{name}' is {value.item()}{batch}",
                           hint="lower training.lr, set training.grad_clip, or check the inputs; "
                                "the last good checkpoint is in " + str(last_checkpoint))


def train_step(trainer, inputs, labels, side: dict, lengths, ids: list[str] | None = None):
    """Run one step on a batch already on the device; returns (loss terms, gradient norm or None).

    `ids`: the batch's sample ids, named when an input or a loss term is NaN/Inf.
    """
    cfg = trainer.job.config
    step = trainer.global_step + 1
    if ids is not None:
        check_inputs(inputs, ids, step)
    with torch.autocast(trainer.ctx.device.type, dtype=torch.bfloat16, enabled=trainer.autocast):
        terms = trainer.net(inputs, labels, side, lengths)
    check_finite(terms, step, trainer.checkpoints / "last", ids)
    trainer.optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    grad_norm = nn.utils.clip_grad_norm_(trainer.model.parameters(), cfg.grad_clip) if cfg.grad_clip else None
    trainer.optimizer.step()
    trainer.scheduler.step()
    return terms, grad_norm
