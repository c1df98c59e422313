"""Issue 16's switches through the real CLI on tiny synthetic-persons data: augmentation, init from
each published layout, the margin schedule, keep-last, averaging and large-margin fine-tuning."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_pretrained import WeSpeakerNamed, _randomise
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.data.synthetic.noise_rir import write_noise_rir

pytestmark = pytest.mark.slow

runner = CliRunner()
TINY = ["--set", "training.epochs=1", "--set", "training.batch_size=8", "--set", "student.crop_seconds=0.5",
        "--set", "student.embedding_dim=32", "--set", "student.n_mels=40"]
ECAPA = ["--set", "student.arch=ecapa", "--set", "student.channels=[32,32,32,32,96]",
         "--set", "student.attention_channels=16", *TINY]
RESNET = ["--set", "student.arch=resnet34", "--set", "student.width=quarter", *TINY]
# docs/training.md, "Large-margin fine-tuning": the overrides of the last stage.
LMFT = ["--set", "student.init_layout=xmd", "--set", "student.crop_seconds=1.0",
        "--set", "method.classifier.angular_margin=0.5", "--set", "training.lr=1e-4",
        "--set", "training.warmup_steps=0"]


def xmd(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("persons")
    xmd("prepare", "synthetic-persons", "--tiny", "-w", work, "-q")
    return work


def _parameters_equal(run_weights: dict, prefix: str, reference: dict, rename=lambda k: k):
    # Frozen parameters are unchanged; BatchNorm running statistics still move in train mode.
    checked = 0
    for key, value in reference.items():
        if "running_" in key or "num_batches" in key:
            continue
        assert torch.equal(run_weights[prefix + rename(key)], value), key
        checked += 1
    return checked


def test_augmentation_switches_train_on_tiny_data(work, tmp_path):
    noise_dir, rir_dir = write_noise_rir(tmp_path / "aug", noises=4, rirs=2, seconds=1.0)
    xmd("train", "-w", work, "--device", "cpu", "--set", "name=aug", *ECAPA,
        "--set", f"training.augment.noise_dir={noise_dir}", "--set", f"training.augment.rir_dir={rir_dir}",
        "--set", "training.augment.speed=[0.9,1.0,1.1]", "--set", "training.augment.drop_chunk=true",
        "--set", "training.augment.drop_freq=true", "-q")
    lines = [json.loads(line) for line in (work / "runs" / "aug" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(line["loss/total"]) for line in lines if "loss/total" in line)


def test_init_from_speechbrain_ecapa_lands_every_parameter(work, tmp_path):
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    torch.manual_seed(0)
    theirs = _randomise(ECAPA_TDNN(input_size=40, lin_neurons=32, channels=[32, 32, 32, 32, 96],
                                   attention_channels=16)).state_dict()
    torch.save(theirs, tmp_path / "embedding_model.ckpt")
    xmd("train", "-w", work, "--device", "cpu", "--set", "name=sb", *ECAPA,
        "--set", f"student.init={tmp_path / 'embedding_model.ckpt'}",
        "--set", "training.freeze=[student.encoder]", "-q")
    weights = load_file(str(work / "runs" / "sb" / "checkpoints" / "last" / "weights.safetensors"))
    assert _parameters_equal(weights, "student.encoder.net.", theirs) > 50


def test_init_from_wespeaker_resnet34_lands_every_parameter(work, tmp_path):
    torch.manual_seed(1)
    theirs = _randomise(WeSpeakerNamed(m=8, n_mels=40, dim=32)).state_dict()
    torch.save({f"front.{k}": v for k, v in theirs.items()}, tmp_path / "avg_model.pt")
    xmd("train", "-w", work, "--device", "cpu", "--set", "name=ws", *RESNET,
        "--set", f"student.init={tmp_path / 'avg_model.pt'}", "--set", "student.init_layout=wespeaker-resnet34",
        "--set", "training.freeze=[student.encoder]", "-q")
    weights = load_file(str(work / "runs" / "ws" / "checkpoints" / "last" / "weights.safetensors"))
    from xmd_cli.models.pretrained import map_wespeaker

    mapped = map_wespeaker(theirs)
    assert _parameters_equal(weights, "student.encoder.", mapped) == len(list(WeSpeakerNamed(8, 40, 32).parameters()))


def test_margin_schedule_keep_last_and_averaging(work):
    xmd("train", "-w", work, "--device", "cpu", "--set", "name=sched", *ECAPA, "--set", "training.epochs=3",
        "--set", "method.classifier.margin_warmup_end_epoch=2", "--set", "training.keep_last=2",
        "--set", "training.average_last=2", "--set", "training.log_every=1", "-q")
    run = work / "runs" / "sched"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {line["epoch"]: line["margin"] for line in lines if "margin" in line} == pytest.approx(
        {0: 0.0, 1: 0.1, 2: 0.2})
    names = sorted(p.name for p in (run / "checkpoints").iterdir() if not p.name.startswith("."))
    assert names == ["averaged", "best", "epoch-002", "epoch-003", "last"]
    a, b, mean = (load_file(str(run / "checkpoints" / n / "weights.safetensors"))
                  for n in ("epoch-002", "epoch-003", "averaged"))
    for key in mean:
        if mean[key].is_floating_point():
            assert torch.allclose(mean[key], (a[key] + b[key]) / 2, atol=1e-6), key


def test_large_margin_fine_tuning_starts_from_the_run_with_the_new_margin_and_crop(work):
    from xmd_cli.data.datasets import build_dataset
    from xmd_cli.data.manifest import read_manifest
    from xmd_cli.recipe import load_recipe
    from xmd_cli.stages.fit import training_labels

    xmd("train", "-w", work, "--device", "cpu", "--set", "name=base", *ECAPA, "-q")
    base = work / "runs" / "base" / "checkpoints" / "last"
    xmd("train", "-w", work, "--device", "cpu", "--set", "name=lmft", *ECAPA, *LMFT,
        "--set", f"student.init={base}", "--set", "training.freeze=[student.encoder.net.blocks.0]", "-q")
    run = work / "runs" / "lmft"
    recipe = load_recipe(run / "recipe.resolved.yaml")
    assert recipe.method.classifier.angular_margin == 0.5 and recipe.student.crop_seconds == 1.0
    manifest = read_manifest(work)
    dataset = build_dataset(manifest, "train", recipe.student, train=True, labels=training_labels(manifest))
    assert dataset[0][0].shape == (16000,)
    start = load_file(str(base / "weights.safetensors"))
    tuned = load_file(str(run / "checkpoints" / "last" / "weights.safetensors"))
    frozen = {k: v for k, v in start.items() if k.startswith("student.encoder.net.blocks.0.")}
    assert frozen and _parameters_equal(tuned, "", frozen)
