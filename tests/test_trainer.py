"""The training loop on a tiny vector task: learning, exact resume, NaN guard, checkpoints."""

import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.models.distill import DistillationLoss
from xmd_cli.recipe import MethodConfig, TrainingConfig
from xmd_cli.training.checkpoint import read_meta
from xmd_cli.training.distributed import DistContext
from xmd_cli.training.loop import StudentWithMethod, Trainer, TrainJob, seed_everything

# Every test here runs training steps.
pytestmark = pytest.mark.slow


class Blobs(Dataset):
    """Four classes of 8-d Gaussian blobs; a teacher row per sample (its class centre plus noise)."""

    def __init__(self, n=96, poison_index=None):
        g = torch.Generator().manual_seed(0)
        self.centres = torch.randn(4, 8, generator=g) * 2
        self.labels = torch.arange(n) % 4
        self.x = self.centres[self.labels] + torch.randn(n, 8, generator=g)
        self.teacher = self.centres[self.labels] + 0.1 * torch.randn(n, 8, generator=g)
        if poison_index is not None:
            self.x[poison_index] = float("inf")

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i], int(self.labels[i]), i


def collate(items):
    xs, ys, idx = zip(*items)
    return torch.stack(xs), torch.tensor(ys), torch.tensor(idx)


def make_job(tmp_path, data=None, epochs=3, crash_at=None, **training):
    seed_everything(0)
    data = data or Blobs()
    student = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 6))
    method = DistillationLoss.from_recipe(MethodConfig(qaw={"enabled": False}), student_dim=6, teacher_dim=8, classes=4)
    calls = {"n": 0}

    def side_info(indices):
        calls["n"] += 1
        if crash_at is not None and calls["n"] > crash_at:
            raise RuntimeError("simulated crash")
        return {"t": data.teacher[indices]}

    config = TrainingConfig(epochs=epochs, batch_size=16, lr=0.01, warmup_steps=3, log_every=1, **training)
    return TrainJob(model=StudentWithMethod(student, method), train_set=data, collate=collate, config=config,
                    seed=7, run_dir=tmp_path, meta={"task": "test"}, val_set=Blobs(32), val_batch_size=8,
                    side_info=side_info)


def run(job, resume=False):
    return Trainer(job, DistContext(), Output(verbosity=0)).fit(resume=resume)


def test_losses_fall_and_checkpoints_are_written(tmp_path):
    run(make_job(tmp_path, epochs=4))
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [l for l in lines if "loss/total" in l]
    assert {"loss/cls_student", "loss/feat", "loss/cls_teacher", "lr"} <= set(steps[0])
    first, last = steps[0]["loss/total"], steps[-1]["loss/total"]
    assert last < 0.7 * first
    assert any("val/accuracy" in l for l in lines)
    for name in ("last", "best", "epoch-001", "epoch-004"):
        assert (tmp_path / "checkpoints" / name / "weights.safetensors").exists()
    assert read_meta(tmp_path / "checkpoints" / "last")["global_step"] == 4 * 6


def test_resume_after_crash_ends_with_identical_weights(tmp_path):
    straight = make_job(tmp_path / "a")
    run(straight)
    crashed = make_job(tmp_path / "b", crash_at=10, checkpoint_every_steps=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(crashed)
    resumed = make_job(tmp_path / "b", checkpoint_every_steps=4)
    run(resumed, resume=True)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_nan_guard_names_step_and_term(tmp_path):
    job = make_job(tmp_path, data=Blobs(poison_index=5), epochs=1)
    with pytest.raises(XmdError, match=r"step \d+: loss term '\w+' is (nan|inf)"):
        run(job)


def test_batch_larger_than_data_is_a_clear_error(tmp_path):
    job = make_job(tmp_path)
    job.config = TrainingConfig(batch_size=1000)
    with pytest.raises(XmdError, match="training.batch_size"):
        Trainer(job, DistContext(), Output(verbosity=0))
