"""torchvision's ResNet-18 as an image student, optionally from a local state-dict file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from xmd_cli.errors import XmdError


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
