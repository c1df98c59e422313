"""Fine-tuning practice: freeze parameters by name prefix, a lower learning rate for the student.

The student (`student.*`) is what a published initialisation (student.init) brings; the method's
heads (`method.*`: projection, classifier) start afresh, so they keep the full learning rate.
"""

from __future__ import annotations

from torch import nn

from xmd_cli.errors import XmdError

ENCODER_PREFIX = "student."


def freeze(model: nn.Module, prefixes: list[str]) -> int:
    """Set requires_grad=False on every parameter whose name starts with one of `prefixes`; returns how many.

    A prefix that names no parameter is an error: a typo would otherwise train what was meant frozen.
    """
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(name.startswith(prefix) for name in names):
            tops = sorted({".".join(name.split(".")[:3]) for name in names})
            raise XmdError(f"training.freeze: {prefix!r} is the start of no parameter name",
                           hint="names look like " + ", ".join(tops[:6]))
    frozen = 0
    for name, parameter in model.named_parameters():
        if any(name.startswith(prefix) for prefix in prefixes):
            parameter.requires_grad_(False)
            frozen += 1
    return frozen


def parameter_groups(model: nn.Module, lr: float, encoder_lr_scale: float) -> list[dict]:
    """Trainable parameters in two optimizer groups: the student at lr * scale, the rest at lr.

    With scale 1 it is one group, so the optimizer state of a default run is what it always was.
    """
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise XmdError("training.freeze leaves no parameter to train", hint="freeze fewer prefixes")
    if encoder_lr_scale == 1.0:
        return [{"params": [p for _, p in trainable], "lr": lr}]
    encoder = [p for name, p in trainable if name.startswith(ENCODER_PREFIX)]
    heads = [p for name, p in trainable if not name.startswith(ENCODER_PREFIX)]
    return [group for group in ({"params": encoder, "lr": lr * encoder_lr_scale}, {"params": heads, "lr": lr})
            if group["params"]]
