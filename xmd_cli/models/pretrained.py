"""Published speaker encoders as a student's starting point: their parameter names mapped onto ours.

Three layouts (`student.init_layout`):
  speechbrain-ecapa    speechbrain's `embedding_model.ckpt`: a state dict of its ECAPA_TDNN, which
                       `EcapaEncoder` wraps as `.net` (same module, so the names map one to one).
  wespeaker-resnet34   WeSpeaker's `avg_model.pt` / `final_model.pt`: its ResNet34 (conv1/bn1 stem,
                       layer1..layer4, TSTP pooling, seg_1), mapped onto `SpeakerResNet34`
                       (stem.0/stem.1, layers.N, embedding); the training head (projection.*) is left out.
  xmd                  a run's checkpoint folder (or its weights.safetensors): the `student.*` part.
Only weights travel: a file whose structure or shapes differ from the student the recipe builds is
refused with the first difference, never loaded in part. `load_initial_weights` is the entry point.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from xmd_cli.errors import XmdError

# WeSpeaker's ResNet34 stages, in order: blocks per stage as in models/resnet34.py.
RESNET34_BLOCKS = (3, 4, 6, 3)
# Prefixes wrappers put in front of WeSpeaker's names: DDP's "module.", and "front." of exports
# that nest the ResNet under a front end attribute.
WESPEAKER_WRAPPERS = ("module.", "front.")
WESPEAKER_HEAD = ("projection.",)  # the margin softmax head of WeSpeaker's training: classes differ, not used


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file, an xmd checkpoint folder, or a torch.save'd state dict (no pickle code)."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "weights.safetensors"
    if not path.is_file():
        raise XmdError(f"student.init {path}: no such file",
                       hint="a local embedding_model.ckpt, avg_model.pt, or an xmd run's checkpoints/last folder")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # weights_only: a crafted file runs no code
    except Exception as e:
        raise XmdError(f"student.init {path}: not a torch state dict ({str(e).splitlines()[0][:120]})") from None
    for key in ("state_dict", "model"):  # training checkpoints that nest the weights one level down
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise XmdError(f"student.init {path}: not a state dict of tensors")
    return state


def detect_layout(state: dict[str, torch.Tensor]) -> str:
    """The layout a state dict's names are in, from names only one of them uses."""
    names = set(state)
    if any(n.startswith("student.") for n in names):
        return "xmd"
    bare = {_strip(n, WESPEAKER_WRAPPERS) for n in names}
    if {"conv1.weight", "seg_1.weight"} <= bare and any(n.startswith("layer1.") for n in bare):
        return "wespeaker-resnet34"
    if any(n.startswith("blocks.0.") for n in names) and any(n.startswith(("mfa.", "asp.")) for n in names):
        return "speechbrain-ecapa"
    raise XmdError(f"student.init: cannot tell the layout of a state dict with keys like {sorted(names)[:3]}",
                   hint="set student.init_layout to speechbrain-ecapa, wespeaker-resnet34 or xmd")


def _strip(name: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _wespeaker_block_index(stage: int, block: int) -> int:
    """WeSpeaker's layer{stage}.{block} -> our flat layers.{index}."""
    if block >= RESNET34_BLOCKS[stage - 1]:
        raise XmdError(f"student.init: layer{stage}.{block} is past ResNet34's {RESNET34_BLOCKS[stage - 1]} "
                       f"blocks in stage {stage}: not a ResNet34 (ResNet18/50/... are not mapped)")
    return sum(RESNET34_BLOCKS[:stage - 1]) + block


def map_wespeaker(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """WeSpeaker ResNet34 names -> SpeakerResNet34 names; parameters we have no place for are refused."""
    mapped = {}
    for name, tensor in state.items():
        bare = _strip(name, WESPEAKER_WRAPPERS)
        if bare.startswith(WESPEAKER_HEAD):
            continue
        mapped[_wespeaker_name(bare)] = tensor
    return mapped


def _wespeaker_name(bare: str) -> str:
    stem = {"conv1.": "stem.0.", "bn1.": "stem.1.", "seg_1.": "embedding."}
    for old, new in stem.items():
        if bare.startswith(old):
            return new + bare[len(old):]
    match = re.match(r"layer(\d)\.(\d+)\.(.*)", bare)
    if match:
        stage, block, rest = int(match[1]), int(match[2]), match[3]
        return f"layers.{_wespeaker_block_index(stage, block)}.{rest}"
    if bare.startswith("pool."):
        raise XmdError(f"student.init: {bare}: WeSpeaker pooling with parameters (ASTP, MHASTP, ...) has no "
                       "counterpart in xmd's ResNet34, which pools mean and std (TSTP)",
                       hint="use a WeSpeaker ResNet34 trained with pooling_func TSTP")
    if bare.startswith(("seg_2.", "seg_bn_1.")):
        raise XmdError(f"student.init: {bare}: a WeSpeaker model with two_emb_layer=True has a second "
                       "embedding layer xmd's ResNet34 lacks", hint="use a model trained with two_emb_layer false")
    raise XmdError(f"student.init: WeSpeaker parameter {bare!r} has no counterpart in xmd's ResNet34 "
                   "(a front end or another architecture)")


def map_speechbrain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """speechbrain ECAPA_TDNN names -> EcapaEncoder names (it holds the same module as `.net`)."""
    return {f"net.{name}": tensor for name, tensor in state.items()}


def load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load all of `state` into all of `module`, or refuse naming the first name or shape that differs."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise XmdError(f"student.init {source}: the structure differs from the student the recipe builds "
                       f"(missing {missing[:3]}, unexpected {unexpected[:3]})",
                       hint="set student.arch, channels/width and attention_channels to the published model's")
    for key, tensor in state.items():
        if own[key].shape != tensor.shape:
            raise XmdError(f"student.init {source}: {key} has shape {tuple(tensor.shape)}, the student's "
                           f"{tuple(own[key].shape)}",
                           hint="set student.channels/width, n_mels and embedding_dim to the published model's")
    module.load_state_dict(state)


def load_initial_weights(student: nn.Module, path: str | Path, layout: str = "detect") -> str:
    """Initialise `student` (a speech student or, for xmd, any student) from `path`; returns the layout used."""
    state = read_state_dict(Path(path))
    layout = detect_layout(state) if layout == "detect" else layout
    source = str(path)
    if layout == "xmd":
        part = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.")}
        if not part:
            raise XmdError(f"student.init {source}: no student.* weights (not an xmd checkpoint)",
                           hint="set student.init_layout to the file's layout, or detect")
        load_into(student, part, source)
        return layout
    encoder = getattr(student, "encoder", None)
    expected = {"speechbrain-ecapa": "EcapaEncoder", "wespeaker-resnet34": "SpeakerResNet34"}[layout]
    if type(encoder).__name__ != expected:
        raise XmdError(f"student.init_layout {layout} initialises a {expected} encoder, but student.arch builds "
                       f"{type(encoder).__name__ if encoder is not None else type(student).__name__}",
                       hint="set student.arch=" + ("ecapa" if layout == "speechbrain-ecapa" else "resnet34"))
    mapped = map_speechbrain(state) if layout == "speechbrain-ecapa" else map_wespeaker(state)
    load_into(encoder, mapped, source)
    return layout
