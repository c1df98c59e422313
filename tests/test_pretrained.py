"""Published weights as a student's start: every parameter of each foreign layout lands in our model.

The foreign models here are randomly initialised stand-ins with the publishers' parameter
names and structure (speechbrain's own ECAPA_TDNN; a ResNet34 named as WeSpeaker names its
modules), saved as the publishers save them; loading through the mapping must reproduce the
stand-in's outputs exactly.
"""

import pytest
import torch
from torch import nn

from xmd_cli.errors import XmdError
from xmd_cli.models.ecapa import EcapaEncoder
from xmd_cli.models.pooling import masked_mean_std
from xmd_cli.models.pretrained import detect_layout, load_initial_weights, read_state_dict
from xmd_cli.models.resnet34 import SpeakerResNet34

N_MELS, DIM, M = 24, 16, 8
SMALL_ECAPA = dict(channels=[32, 32, 32, 32, 96], attention_channels=16)


class _WeBlock(nn.Module):
    """A basic residual block with WeSpeaker's attribute names (conv1, bn1, conv2, bn2, shortcut)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + self.shortcut(x))


class WeSpeakerNamed(nn.Module):
    """ResNet34 laid out as WeSpeaker names it: conv1, bn1, layer1..layer4, seg_1 (TSTP pooling, no params)."""

    def __init__(self, m=M, n_mels=N_MELS, dim=DIM):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, m, 3, 1, 1, bias=False), nn.BatchNorm2d(m)
        cin = m
        for stage, count in enumerate((3, 4, 6, 3), start=1):
            cout = m * 2 ** (stage - 1)
            blocks = [_WeBlock(cin if b == 0 else cout, cout, (1 if stage == 1 else 2) if b == 0 else 1)
                      for b in range(count)]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            cin = cout
        self.seg_1 = nn.Linear(2 * cin * (n_mels // 8), dim)

    def forward(self, feats):
        x = torch.relu(self.bn1(self.conv1(feats.transpose(1, 2).unsqueeze(1))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.seg_1(masked_mean_std(x.flatten(1, 2), None))


def _randomise(module):
    # Non-default BN statistics too, so running buffers are checked as well as weights.
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.1)
    return module.eval()


def test_speechbrain_ecapa_checkpoint_lands_in_every_parameter(tmp_path):
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    torch.manual_seed(0)
    theirs = _randomise(ECAPA_TDNN(input_size=N_MELS, lin_neurons=DIM, **SMALL_ECAPA))
    path = tmp_path / "embedding_model.ckpt"
    torch.save(theirs.state_dict(), path)
    ours = nn.Module()
    ours.encoder = EcapaEncoder(N_MELS, DIM, **SMALL_ECAPA)
    assert load_initial_weights(ours, path) == "speechbrain-ecapa"
    feats = torch.randn(2, 50, N_MELS)
    assert torch.equal(ours.encoder.eval()(feats), theirs(feats).squeeze(1))


@pytest.mark.parametrize("wrapper", ["", "front."])
def test_wespeaker_resnet34_names_map_onto_every_parameter(tmp_path, wrapper):
    torch.manual_seed(1)
    theirs = _randomise(WeSpeakerNamed())
    state = {wrapper + k: v for k, v in theirs.state_dict().items()}
    state["projection.weight"] = torch.randn(10, DIM)  # WeSpeaker's training head: left out
    path = tmp_path / "avg_model.pt"
    torch.save(state, path)
    assert detect_layout(read_state_dict(path)) == "wespeaker-resnet34"
    ours = nn.Module()
    ours.encoder = SpeakerResNet34(N_MELS, DIM, M)
    load_initial_weights(ours, path, "wespeaker-resnet34")
    feats = torch.randn(2, 40, N_MELS)
    assert torch.equal(ours.encoder.eval()(feats), theirs(feats))


def test_foreign_structures_and_shapes_are_refused_with_the_difference(tmp_path):
    theirs = WeSpeakerNamed().state_dict()
    ours = nn.Module()
    ours.encoder = SpeakerResNet34(N_MELS, DIM, 2 * M)  # another width
    torch.save(theirs, tmp_path / "w.pt")
    with pytest.raises(XmdError, match="shape"):
        load_initial_weights(ours, tmp_path / "w.pt")
    torch.save({**theirs, "pool.attention.weight": torch.zeros(3)}, tmp_path / "astp.pt")
    with pytest.raises(XmdError, match="TSTP"):
        load_initial_weights(ours, tmp_path / "astp.pt")
    torch.save({**theirs, "layer1.3.conv1.weight": torch.zeros(3)}, tmp_path / "deeper.pt")
    with pytest.raises(XmdError, match="not a ResNet34"):
        load_initial_weights(ours, tmp_path / "deeper.pt")
    ecapa = nn.Module()
    ecapa.encoder = EcapaEncoder(N_MELS, DIM, **SMALL_ECAPA)
    with pytest.raises(XmdError, match="student.arch=resnet34"):
        load_initial_weights(ecapa, tmp_path / "w.pt", "wespeaker-resnet34")
    with pytest.raises(XmdError, match="no such file"):
        load_initial_weights(ecapa, tmp_path / "missing.ckpt")
