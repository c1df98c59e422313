"""The one training loop of `xmd train` and `xmd distill`.

What it guarantees:
- `resume=True` continues exactly: weights, optimizer, scheduler, RNG and the
  position inside the epoch come back, and the epoch order depends on (seed,
  epoch) alone, so a resumed CPU run ends with the same weights as an
  uninterrupted one.
- A loss term that turns NaN/Inf stops the run with the step and the term's name.
- Under torchrun the model runs in DistributedDataParallel, each rank takes its
  slice of every global batch, and only rank 0 writes files.

Its parts: job.py (what is trained), step.py (one step), validation.py,
bookkeeping.py (checkpoint contents and choice), metrics_log.py, batches.py, rng.py.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from xmd_cli.console import Output
from xmd_cli.errors import XmdError
from xmd_cli.training.averaging import AVERAGED, average_last, keep_newest
from xmd_cli.training.batches import make_loader, to_device
from xmd_cli.training.bookkeeping import epoch_checkpoints, restore_trainer_state, trainer_state
from xmd_cli.training.checkpoint import has_state, load_state, load_weights, save_checkpoint
from xmd_cli.training.distributed import DistContext
from xmd_cli.training.finetune import freeze, parameter_groups
from xmd_cli.training.job import StudentWithMethod, TrainJob
from xmd_cli.training.margin import margin_at, set_margin
from xmd_cli.training.metrics_log import MetricsLog, open_tensorboard
from xmd_cli.training.rng import seed_everything
from xmd_cli.training.sampler import EpochBatchSampler
from xmd_cli.training.schedule import warmup_cosine
from xmd_cli.training.step import train_step
from xmd_cli.training.validation import validate

__all__ = ["StudentWithMethod", "TrainJob", "Trainer", "seed_everything"]


def make_optimizer(params, cfg) -> torch.optim.Optimizer:
    """AdamW or SGD over `params` (tensors, or groups with their own lr: training/finetune.py)."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)


class Trainer:
    def __init__(self, job: TrainJob, context: DistContext, out: Output):
        self.job, self.ctx, self.out = job, context, out
        cfg = job.config
        self.model = job.model.to(context.device)
        freeze(self.model, cfg.freeze)
        if cfg.keep_last and cfg.average_last and cfg.keep_last < cfg.average_last:
            raise XmdError(f"training.keep_last {cfg.keep_last} keeps fewer epoch checkpoints than "
                           f"training.average_last {cfg.average_last} averages", hint="raise keep_last")
        self.optimizer = make_optimizer(parameter_groups(self.model, cfg.lr, cfg.encoder_lr_scale), cfg)
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
        # What `best` is chosen by: the validation EER when validating open-set, else accuracy.
        self.selection = "val/eer" if job.val_trials is not None else "val/accuracy"
        self.checkpoints = job.run_dir / "checkpoints"
        self.metrics_path = job.run_dir / "metrics.jsonl"
        self.net = self._parallel() if context.active else self.model
        self.autocast = cfg.amp and context.device.type == "cuda"
        tensorboard = open_tensorboard(job.run_dir) if cfg.tensorboard and context.is_main else None
        self.metrics = MetricsLog(self.metrics_path, tensorboard)

    def _parallel(self) -> nn.Module:
        if self.ctx.device.type == "cuda":
            # One set of BatchNorm statistics over the global batch, as on one process
            # (SyncBatchNorm needs CUDA; on CPU each process normalises its own slice). Only
            # in the student: the projection head skips batches without teacher rows, and a
            # collective that one process skips would hang the others.
            self.model.student = nn.SyncBatchNorm.convert_sync_batchnorm(self.model.student)
        return nn.parallel.DistributedDataParallel(
            self.model, device_ids=[self.ctx.device.index] if self.ctx.device.type == "cuda" else None,
            find_unused_parameters=self.job.may_skip_parameters)

    # ------------------------------------------------------------ checkpoints
    def save(self, name: str) -> None:
        if self.ctx.is_main:
            meta = {**self.job.meta, "epoch": self.epoch, "global_step": self.global_step,
                    self._best_key: self.best}
            # epoch-NNN: weights and meta only; the optimizer state is needed only to continue, from last.
            state = None if name.startswith("epoch-") else trainer_state(self)
            save_checkpoint(self.checkpoints / name, self.model, state, meta)

    @property
    def _best_key(self) -> str:
        return "best_" + self.selection.replace("/", "_")  # best_val_accuracy or best_val_eer

    def resume(self) -> bool:
        """Continue from checkpoints/last if it exists; returns whether it did."""
        last = self.checkpoints / "last"
        if not has_state(last):
            return False
        state = load_state(last)  # first: an old pickled state is refused before anything changes
        load_weights(last, self.model)
        restore_trainer_state(self, state)
        if self.ctx.is_main:
            self.metrics.cut(state["metrics_bytes"])
        self.out.note(f"resumed from {last} at epoch {self.epoch}, step {self.global_step}")
        return True

    def log(self, record: dict) -> None:
        if self.ctx.is_main:
            self.metrics.write(record, self.global_step)

    # ------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> dict:
        cfg, job = self.job.config, self.job
        if self.ctx.is_main:
            job.run_dir.mkdir(parents=True, exist_ok=True)
        # Without a checkpoint to continue from, the run starts at step 0: so must its log.
        if not (resume and self.resume()) and self.ctx.is_main:
            self.metrics.clear()
        clock = {"started": time.perf_counter(), "samples": 0}
        with self.out.progress() as progress:
            while self.epoch < cfg.epochs:
                self._run_epoch(progress, clock)
                self._end_epoch()
        if cfg.average_last and self.ctx.is_main:
            weights, meta = average_last(self.checkpoints, cfg.average_last)
            save_checkpoint(self.checkpoints / AVERAGED, weights, None, meta)
        self.metrics.close()
        return {"steps": self.global_step, "epochs": cfg.epochs, self._best_key: self.best,
                "run_dir": str(job.run_dir), "checkpoint": str(self.checkpoints / "best")}

    def _run_epoch(self, progress, clock: dict) -> None:
        cfg, job, device = self.job.config, self.job, self.ctx.device
        if hasattr(job.train_set, "epoch"):
            job.train_set.epoch = self.epoch  # per-epoch augmentation seeds
        self.sampler.set_epoch(self.epoch, skip=self.step_in_epoch)
        self._schedule_margin()
        self.model.train()
        loader = make_loader(job.train_set, self.sampler, job.collate, seed=job.seed, epoch=self.epoch,
                             num_workers=cfg.num_workers)
        for inputs, labels, indices, *rest in loader:
            side = {k: to_device(v, device) for k, v in job.side_info(indices).items()}
            inputs, labels = to_device(inputs, device), to_device(labels, device)
            lengths = to_device(rest[0], device) if rest else None
            terms, grad_norm = train_step(self, inputs, labels, side, lengths, self._batch_ids(indices))
            self.global_step += 1
            self.step_in_epoch += 1
            clock["samples"] += labels.shape[0] * self.ctx.world
            rate = clock["samples"] / max(1e-9, time.perf_counter() - clock["started"])
            values = {k: self.ctx.mean(v.item()) for k, v in terms.items()}
            self._log_step(values, grad_norm, rate)
            info = " ".join(f"{k} {v:.3f}" for k, v in values.items()) + f"  {rate:.0f} samples/s"
            progress(f"epoch {self.epoch + 1}/{cfg.epochs}", self.step_in_epoch, self.sampler.steps_per_epoch, info)
            if cfg.checkpoint_every_steps and self.global_step % cfg.checkpoint_every_steps == 0:
                self.save("last")

    def _schedule_margin(self) -> None:
        """method.classifier.margin_warmup_*: this epoch's AAM margin, from the epoch number alone."""
        schedule = self.job.margin_schedule
        if schedule is not None:
            self.margin = margin_at(self.epoch, *schedule)
            set_margin(self.model.method, self.margin)

    def _batch_ids(self, indices) -> list[str] | None:
        """Sample ids of a batch (for messages), when the dataset keeps its samples."""
        samples = getattr(self.job.train_set, "samples", None)
        return [str(samples[i].id) for i in indices.tolist()] if samples is not None else None

    def _log_step(self, values: dict, grad_norm, rate: float) -> None:
        if self.global_step % self.job.config.log_every and self.step_in_epoch != self.sampler.steps_per_epoch:
            return
        record = {"step": self.global_step, "epoch": self.epoch, "lr": self.scheduler.get_last_lr()[0],
                  **{f"loss/{k}": v for k, v in values.items()}, "samples_per_s": rate}
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
        if self.job.margin_schedule is not None:
            record["margin"] = self.margin
        self.log(record)

    def _end_epoch(self) -> None:
        finished = self.epoch
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        validation = self.validate()
        record = {**validation, **self.job.epoch_metrics}
        if record and self.ctx.is_main:
            self.log({"step": self.global_step, "epoch": finished, **record})
            self.out.note(f"epoch {finished + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in record.items()))
        value = validation.get(self.selection) if validation else None
        cfg = self.job.config
        names, self.best = epoch_checkpoints(self.epoch, cfg.epochs, cfg.checkpoint_every, value, self.best,
                                             lower_is_better=self.selection == "val/eer")
        for name in names:
            self.save(name)
        if cfg.keep_last and self.ctx.is_main:
            keep_newest(self.checkpoints, cfg.keep_last)
        self.ctx.barrier()

    def validate(self) -> dict:
        """Closed-set accuracy and loss, or open-set EER, of the student on the validation split."""
        job = self.job
        if job.val_set is None or len(job.val_set) == 0 or not self.ctx.is_main:
            return {}
        return validate(self.model, job, self.ctx.device)
