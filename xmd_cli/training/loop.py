"""The one training loop of `xmd train` and `xmd distill`.

What it guarantees:
- `resume=True` continues exactly: weights, optimizer, scheduler, RNG and the
  position inside the epoch come back, and the epoch order depends on (seed,
  epoch) alone, so a resumed CPU run ends with the same weights as an
  uninterrupted one.
- A loss term that turns NaN/Inf stops the run with the step and the term's name.
- Under torchrun the model runs in DistributedDataParallel, each rank takes its
  slice of every global batch, and only rank 0 writes files.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.recipe import TrainingConfig
from xmd_cli.training.checkpoint import load_state, load_weights, save_checkpoint
from xmd_cli.training.distributed import DistContext
from xmd_cli.training.sampler import EpochBatchSampler
from xmd_cli.training.schedule import warmup_cosine


class StudentWithMethod(nn.Module):
    """The trainable whole: the student network plus the method's parts (projection, classifier).

    One module, so that DDP, the optimizer and checkpoints see every parameter once.
    """

    def __init__(self, student: nn.Module, method: nn.Module):
        super().__init__()
        self.student, self.method = student, method

    def embed(self, inputs, lengths=None):
        # Speech students take relative lengths of padded waveforms; others only inputs.
        return self.student(inputs) if lengths is None else self.student(inputs, lengths)

    def forward(self, inputs, labels, side: dict, lengths=None):
        return self.method(self.embed(inputs, lengths), labels=labels, **side)


@dataclass
class TrainJob:
    model: StudentWithMethod
    train_set: Dataset  # items (input, label, sample index)
    collate: Callable  # items -> (inputs, labels, indices[, lengths])
    config: TrainingConfig
    seed: int
    run_dir: Path
    meta: dict  # written with every checkpoint: task, modality, arch, dims, classes
    val_set: Dataset | None = None
    val_batch_size: int = 1  # 1 for whole utterances of different lengths; larger for images
    # Some batches may leave parameters unused (samples without a teacher row skip the projection):
    # DDP must then look for unused parameters, which costs a graph traversal a step.
    may_skip_parameters: bool = False
    # sample indices -> {"t", "has_teacher", "teacher_quality", "student_quality"} (tensors or None)
    side_info: Callable[[torch.Tensor], dict] = field(default=lambda indices: {})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to(value, device):
    return value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value


class _InOrder(torch.utils.data.Sampler):
    """Every index once, in order, in batches (the last one may be short)."""

    def __init__(self, size: int, batch: int):
        self.size, self.batch = size, batch

    def __len__(self):
        return -(-self.size // self.batch)

    def __iter__(self):
        for start in range(0, self.size, self.batch):
            yield list(range(start, min(self.size, start + self.batch)))


class Trainer:
    def __init__(self, job: TrainJob, context: DistContext, out: Output):
        self.job, self.ctx, self.out = job, context, out
        cfg = job.config
        self.model = job.model.to(context.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                             weight_decay=cfg.weight_decay, nesterov=True)
        if cfg.batch_size % context.world:
            raise XmdError(f"training.batch_size {cfg.batch_size} does not split evenly over {context.world} "
                           "processes", hint=f"set training.batch_size to a multiple of {context.world}")
        self.sampler = EpochBatchSampler(len(job.train_set), cfg.batch_size, seed=job.seed,
                                         rank=context.rank, world=context.world)
        if self.sampler.steps_per_epoch == 0:
            raise XmdError(f"training.batch_size {cfg.batch_size} is larger than the {len(job.train_set)} "
                           "training samples", hint="lower training.batch_size")
        self.total_steps = self.sampler.steps_per_epoch * cfg.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(cfg.warmup_steps, self.total_steps, cfg.min_lr_ratio))
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best: float | None = None
        self.checkpoints = job.run_dir / "checkpoints"
        self.metrics_path = job.run_dir / "metrics.jsonl"
        self.net = self.model
        if context.active:
            if context.device.type == "cuda":
                # One set of BatchNorm statistics over the global batch, as on one process
                # (SyncBatchNorm needs CUDA; on CPU each process normalises its own slice). Only
                # in the student: the projection head skips batches without teacher rows, and a
                # collective that one process skips would hang the others.
                self.model.student = nn.SyncBatchNorm.convert_sync_batchnorm(self.model.student)
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[context.device.index] if context.device.type == "cuda" else None,
                find_unused_parameters=job.may_skip_parameters)
        self.autocast = cfg.amp and context.device.type == "cuda"
        self.tensorboard = self._tensorboard() if cfg.tensorboard and context.is_main else None

    # ------------------------------------------------------------ state
    def _state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "rng": _rng_state(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step, "best": self.best}

    def save(self, name: str) -> None:
        if self.ctx.is_main:
            meta = {**self.job.meta, "epoch": self.epoch, "global_step": self.global_step,
                    "best_val_accuracy": self.best}
            save_checkpoint(self.checkpoints / name, self.model, self._state(), meta)

    def resume(self) -> bool:
        """Continue from checkpoints/last if it exists; returns whether it did."""
        last = self.checkpoints / "last"
        if not (last / "state.pt").exists():
            return False
        load_weights(last, self.model)
        state = load_state(last)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.best = state["global_step"], state["best"]
        self.out.note(f"resumed from {last} at epoch {self.epoch}, step {self.global_step}")
        return True

    # ------------------------------------------------------------ logging
    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise XmdError("training.tensorboard is on but the tensorboard package is missing",
                           hint="pip install tensorboard, or --set training.tensorboard=false") from None
        return SummaryWriter(str(self.job.run_dir / "tensorboard"))

    def log(self, record: dict) -> None:
        if not self.ctx.is_main:
            return
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.tensorboard.add_scalar(key, value, record.get("step", self.global_step))

    # ------------------------------------------------------------ the loop
    def _loader(self, dataset, batch_sampler, collate, epoch: int):
        # An explicit generator: creating the iterator must not draw from the global RNG,
        # or a resumed run would see other random numbers than an uninterrupted one.
        generator = torch.Generator().manual_seed(self.job.seed * 1000 + epoch)
        return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate,
                          num_workers=self.job.config.num_workers, generator=generator,
                          persistent_workers=False)

    def _check_finite(self, terms: dict) -> None:
        for name, value in terms.items():
            if not torch.isfinite(value.detach()).all():
                raise XmdError(f"step {self.global_step + 1}: loss term '{name}' is {value.item()}",
                               hint="lower training.lr, set training.grad_clip, or check the inputs; "
                                    "the last good checkpoint is in " + str(self.checkpoints / "last"))

    def fit(self, resume: bool = False) -> dict:
        cfg, job = self.job.config, self.job
        if self.ctx.is_main:
            job.run_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.resume()
        elif self.ctx.is_main and self.metrics_path.exists():
            self.metrics_path.unlink()
        started, samples_seen = time.perf_counter(), 0
        with self.out.progress() as progress:
            while self.epoch < cfg.epochs:
                if hasattr(job.train_set, "epoch"):
                    job.train_set.epoch = self.epoch  # per-epoch augmentation seeds
                self.sampler.set_epoch(self.epoch, skip=self.step_in_epoch)
                self.model.train()
                for inputs, labels, indices, *rest in self._loader(job.train_set, self.sampler, job.collate,
                                                                   self.epoch):
                    side = {k: _to(v, self.ctx.device) for k, v in job.side_info(indices).items()}
                    inputs, labels = _to(inputs, self.ctx.device), _to(labels, self.ctx.device)
                    lengths = _to(rest[0], self.ctx.device) if rest else None
                    with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                        terms = self.net(inputs, labels, side, lengths)
                    self._check_finite(terms)
                    self.optimizer.zero_grad(set_to_none=True)
                    terms["total"].backward()
                    grad_norm = (nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                                 if cfg.grad_clip else None)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.global_step += 1
                    self.step_in_epoch += 1
                    samples_seen += labels.shape[0] * self.ctx.world
                    rate = samples_seen / max(1e-9, time.perf_counter() - started)
                    values = {k: self.ctx.mean(v.item()) for k, v in terms.items()}
                    if self.global_step % cfg.log_every == 0 or self.step_in_epoch == self.sampler.steps_per_epoch:
                        record = {"step": self.global_step, "epoch": self.epoch, "lr": self.scheduler.get_last_lr()[0],
                                  **{f"loss/{k}": v for k, v in values.items()}, "samples_per_s": rate}
                        if grad_norm is not None:
                            record["grad_norm"] = float(grad_norm)
                        self.log(record)
                    info = " ".join(f"{k} {v:.3f}" for k, v in values.items()) + f"  {rate:.0f} samples/s"
                    progress(f"epoch {self.epoch + 1}/{cfg.epochs}", self.step_in_epoch,
                             self.sampler.steps_per_epoch, info)
                    if cfg.checkpoint_every_steps and self.global_step % cfg.checkpoint_every_steps == 0:
                        self.save("last")
                self._end_epoch()
        if self.tensorboard:
            self.tensorboard.close()
        return {"steps": self.global_step, "epochs": cfg.epochs, "best_val_accuracy": self.best,
                "run_dir": str(job.run_dir), "checkpoint": str(self.checkpoints / "best")}

    def _end_epoch(self) -> None:
        cfg = self.job.config
        finished = self.epoch
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        validation = self.validate()
        if validation:
            self.log({"step": self.global_step, "epoch": finished, **validation})
            self.out.note(f"epoch {finished + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in validation.items()))
        accuracy = validation.get("val/accuracy") if validation else None
        improved = accuracy is not None and (self.best is None or accuracy > self.best)
        if improved:
            self.best = accuracy
        self.save("last")
        if improved or (accuracy is None and self.epoch == cfg.epochs):
            self.save("best")
        if self.epoch % cfg.checkpoint_every == 0:
            self.save(f"epoch-{self.epoch:03d}")
        self.ctx.barrier()

    @torch.no_grad()
    def validate(self) -> dict:
        """Closed-set accuracy and classification loss of the student on the validation split."""
        job = self.job
        if job.val_set is None or len(job.val_set) == 0 or not self.ctx.is_main:
            return {}
        self.model.eval()
        batch = max(1, min(job.val_batch_size, len(job.val_set)))
        sampler = _InOrder(len(job.val_set), batch)
        correct, loss_sum, count = 0, 0.0, 0
        classifier = self.model.method.classifier
        for inputs, labels, _, *rest in self._loader(job.val_set, sampler, job.collate, 0):
            inputs, labels = _to(inputs, self.ctx.device), _to(labels, self.ctx.device)
            embedding = self.model.embed(inputs, _to(rest[0], self.ctx.device) if rest else None)
            logits = classifier.logits(embedding)
            loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
            count += labels.shape[0]
        return {"val/accuracy": correct / count, "val/loss": loss_sum / count}
