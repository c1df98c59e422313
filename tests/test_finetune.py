"""Training practice: margin schedule, freezing, encoder lr, keep-last, averaging, file modes."""

import json
import os
import stat

import pytest
import torch
from safetensors.torch import load_file
from test_trainer import make_job, run

from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.training.distributed import DistContext
from xmd_cli.training.loop import Trainer
from xmd_cli.training.margin import margin_at


@pytest.mark.parametrize("epoch, margin", [(0, 0.0), (1, 0.0), (2, 0.1), (3, 0.2), (4, 0.3), (9, 0.3)])
def test_margin_rises_linearly_between_start_and_end(epoch, margin):
    assert margin_at(epoch, 1, 4, 0.3) == pytest.approx(margin)


@pytest.mark.slow
def test_the_trainer_sets_each_epochs_margin(tmp_path):
    job = make_job(tmp_path, epochs=3)
    job.margin_schedule = (0, 2, 0.2)
    run(job)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    by_epoch = {line["epoch"]: line["margin"] for line in lines if "margin" in line}
    assert by_epoch == pytest.approx({0: 0.0, 1: 0.1, 2: 0.2})
    assert job.model.method.classifier.margin == pytest.approx(0.2)


@pytest.mark.slow
def test_frozen_parameters_stay_and_the_student_gets_the_scaled_lr(tmp_path):
    job = make_job(tmp_path, epochs=1, freeze=["student.0."], encoder_lr_scale=0.1)
    before = {k: v.clone() for k, v in job.model.state_dict().items()}
    trainer = Trainer(job, DistContext(), Output(verbosity=0))
    assert [g["initial_lr"] for g in trainer.optimizer.param_groups] == pytest.approx([0.001, 0.01])
    summary = trainer.fit()
    after = job.model.state_dict()
    assert torch.equal(before["student.0.weight"], after["student.0.weight"])
    assert not torch.equal(before["student.3.weight"], after["student.3.weight"])
    assert summary["steps"] > 0
    with pytest.raises(XmdError, match="training.freeze: 'student.9' is the start of no parameter"):
        Trainer(make_job(tmp_path / "b", freeze=["student.9"]), DistContext(), Output(verbosity=0))


@pytest.mark.slow
def test_keep_last_keeps_the_newest_epochs_without_optimizer_state(tmp_path):
    run(make_job(tmp_path, epochs=4, keep_last=2))
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("epoch-*")) == ["epoch-003", "epoch-004"]
    assert not (checkpoints / "epoch-004" / "trainer.json").exists()
    assert (checkpoints / "last" / "trainer.json").exists()
    # the versions behind removed names are gone too: two epoch versions remain on disk
    assert len([p for p in checkpoints.glob(".epoch-*") if p.is_dir()]) == 2


@pytest.mark.slow
def test_averaged_checkpoint_is_the_mean_of_the_last_epochs(tmp_path):
    run(make_job(tmp_path, epochs=3, average_last=2))
    checkpoints = tmp_path / "checkpoints"
    a, b = (load_file(str(checkpoints / n / "weights.safetensors")) for n in ("epoch-002", "epoch-003"))
    averaged = load_file(str(checkpoints / "averaged" / "weights.safetensors"))
    for key, value in averaged.items():
        if value.is_floating_point():
            assert torch.allclose(value, (a[key] + b[key]) / 2, atol=1e-6), key
        else:
            assert torch.equal(value, b[key])
    assert json.loads((checkpoints / "averaged" / "meta.json").read_text())["averaged_from"] == \
        ["epoch-002", "epoch-003"]
    with pytest.raises(XmdError, match="keep_last 1 keeps fewer"):
        run(make_job(tmp_path / "b", keep_last=1, average_last=2))


@pytest.mark.slow
def test_checkpoint_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        run(make_job(tmp_path, epochs=1))
    finally:
        os.umask(old)
    last = (tmp_path / "checkpoints" / "last").resolve()
    assert stat.S_IMODE(last.stat().st_mode) == 0o750
    assert stat.S_IMODE((last / "weights.safetensors").stat().st_mode) == 0o640
