"""Checkpoint bookkeeping: what a checkpoint's trainer state holds, and which checkpoints an epoch writes."""

from __future__ import annotations

from xmd_cli.training.rng import rng_state, set_rng_state


def trainer_state(trainer) -> dict:
    """Everything besides the weights that an exact resume needs."""
    return {"optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(),
            "rng": rng_state(), "epoch": trainer.epoch, "step_in_epoch": trainer.step_in_epoch,
            "global_step": trainer.global_step, "best": trainer.best, "metrics_bytes": trainer.metrics.sync()}


def restore_trainer_state(trainer, state: dict) -> None:
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    trainer.epoch, trainer.step_in_epoch = state["epoch"], state["step_in_epoch"]
    trainer.global_step, trainer.best = state["global_step"], state["best"]


def epoch_checkpoints(epoch: int, epochs: int, every: int, value: float | None,
                      best: float | None, *, lower_is_better: bool = False) -> tuple[list[str], float | None]:
    """The checkpoints to write after finishing epoch `epoch` (1-based), in order, and the new best value.

    `last` always; `best` when the validation value improved (higher accuracy, or lower EER with
    `lower_is_better`; or, without validation, at the end); `epoch-NNN` every `every` epochs.
    """
    improved = value is not None and (best is None or (value < best if lower_is_better else value > best))
    names = ["last"]
    if improved or (value is None and epoch == epochs):
        names.append("best")
    if epoch % every == 0:
        names.append(f"epoch-{epoch:03d}")
    return names, (value if improved else best)
