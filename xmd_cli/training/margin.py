"""The AAM margin schedule (as WeSpeaker's margin scheduler, linear): 0, then rising, then the full margin.

Training from scratch with the full margin from the first step can keep an AAM softmax from
converging; the margin is therefore 0 until `start` epochs, rises linearly to its full value at
`end`, and stays there. Set once per epoch from the epoch number alone, so a resumed run sees
the margins of the uninterrupted one.
"""

from __future__ import annotations

from torch import nn


def margin_at(epoch: int, start: int, end: int, full: float) -> float:
    """The margin in epoch `epoch` (0-based)."""
    if epoch < start:
        return 0.0
    if epoch >= end:
        return full
    return full * (epoch - start) / (end - start)


def set_margin(module: nn.Module, value: float) -> int:
    """Set the margin of every AAM classifier inside `module`; returns how many there were."""
    from xmd_cli.models.distill_heads import AAMClassifier

    heads = [m for m in module.modules() if isinstance(m, AAMClassifier)]
    for head in heads:
        head.margin = float(value)
    return len(heads)
