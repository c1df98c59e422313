"""What distill reads besides the student's input: teacher rows and quality scores, by sample id.

`DistillationInputs(indices)` returns, for a batch of dataset indices, the
teacher rows `t`, the mask `has_teacher` (False where the sample has no teacher
row or, with QAW on, no quality row: such a sample trains without the
distillation terms) and the two quality vectors. Once before training it also
gives the teacher's class means (the teacher-generated classifier) and the QAW
weights' effective sample size over the training set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xmd_cli.errors import XmdError
from xmd_cli.models.distill_config import QualityWeighting
from xmd_cli.models.distill_losses import effective_sample_size, qaw_weights
from xmd_cli.quality.store import quality_store
from xmd_cli.recipe import Recipe
from xmd_cli.shards import ShardReader
from xmd_cli.shards.locate import find_store
from xmd_cli.teachers import teacher_components


class DistillationInputs:
    def __init__(self, recipe: Recipe, manifest, dataset, *, allow_stale: bool = False, out=None):
        self.recipe, self.dataset = recipe, dataset
        workdir = manifest.workdir
        expected = teacher_components(recipe.teacher, manifest)
        self.teacher_path = find_store(workdir, "teacher", expected, allow_stale=allow_stale,
                                       stage="extract-teacher", out=out)
        self.teacher = ShardReader(self.teacher_path, expect_fingerprint=expected, allow_stale=allow_stale)
        self.teacher_dim = self.teacher.dim
        ids = [s.id for s in dataset.samples]
        present = set(ids) - set(self.teacher.missing(ids))
        self.with_teacher = set(present)  # a teacher row, whatever the quality stores hold
        self.quality: dict[str, ShardReader] = {}
        qaw = recipe.method.qaw
        if qaw.enabled:
            for side, exponent in (("teacher", qaw.alpha), ("student", qaw.beta)):
                if exponent == 0:
                    continue
                config = getattr(recipe.quality, side)
                reader = quality_store(config, manifest, allow_stale=allow_stale, out=out)
                self.quality[side] = reader
                present &= set(ids) - set(reader.missing(ids))
        self.present = present
        # Distill reads every row each epoch: hash them all now (a few s a GB, once) so that a damaged
        # store stops the run before training, not at some step of epoch one.
        for reader in (self.teacher, *self.quality.values()):
            reader.verify_all()
        absent = [i for i in ids if i not in present]
        if absent:  # a store that lost rows must not quietly become a smaller experiment
            missing_rows_policy(recipe.method.missing, absent, len(ids), "training samples",
                                "teacher or quality row" if self.quality else "teacher row", self.teacher_path, out)
        if not present:
            raise XmdError(f"none of the {len(ids)} training samples has a teacher row"
                           + (" and quality rows" if self.quality else ""),
                           hint="check that extract-teacher (and score-quality) ran on this work directory")

    def provenance(self) -> dict:
        return {"teacher_store": str(Path(self.teacher_path).resolve()),
                "teacher_fingerprint": self.teacher.meta["fingerprint"],
                "quality_stores": {side: str(Path(r.directory).resolve()) for side, r in self.quality.items()}}

    def __call__(self, indices: torch.Tensor) -> dict:
        ids = [self.dataset.samples[i].id for i in indices.tolist()]
        mask = np.array([i in self.present for i in ids], dtype=bool)
        known = [i for i, ok in zip(ids, mask) if ok]
        teacher = np.zeros((len(ids), self.teacher_dim), np.float32)
        # A store of every frame: one frame at random, seeded by (seed, epoch, batch) so a resumed run
        # draws the same frames.
        rng = np.random.default_rng([self.recipe.seed, getattr(self.dataset, "epoch", 0), int(indices[0])])
        if known:
            teacher[mask] = self.teacher.get(known, pick="random" if self.teacher.frames == "all" else "mean",
                                             rng=rng)
        side = {"t": torch.from_numpy(teacher), "has_teacher": torch.from_numpy(mask)}
        for name, reader in self.quality.items():
            quality = np.ones(len(ids), np.float32)
            if known:
                quality[mask] = reader.get(known)[:, 0]  # column 0: the combined score
            side[f"{name}_quality"] = torch.from_numpy(quality)
        return side

    def class_means(self, dataset, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """([classes, teacher_dim] mean teacher row of each class over `dataset`'s samples, [classes] whether
        the class has any row). Read once before training; the means never change during it."""
        pairs = [(s.id, target) for s, target in zip(dataset.samples, dataset.targets) if s.id in self.with_teacher]
        sums, counts = np.zeros((classes, self.teacher_dim)), np.zeros(classes, np.int64)
        for start in range(0, len(pairs), CHUNK):  # in chunks: a large training set need not fit in memory twice
            chunk = pairs[start:start + CHUNK]
            targets = np.array([p[1] for p in chunk], np.int64)
            np.add.at(sums, targets, self.teacher.get([p[0] for p in chunk], pick="mean").astype(np.float64))
            counts += np.bincount(targets, minlength=classes)
        means = sums / np.maximum(counts, 1)[:, None]
        return torch.from_numpy(means.astype(np.float32)), torch.from_numpy(counts > 0)

    def qaw_effective(self, dataset) -> dict | None:
        """The QAW weights' effective sample size over `dataset`'s samples that have every row; None with QAW off."""
        if not self.recipe.method.qaw.enabled:
            return None
        ids = [s.id for s in dataset.samples if s.id in self.present]
        return qaw_effective(self.recipe.method.qaw, quality_columns(self.quality, ids), len(ids))


CHUNK = 4096


def quality_columns(readers: dict, ids: list[str]) -> dict[str, np.ndarray]:
    """side -> column 0 (the combined score) of that side's quality store for `ids`."""
    return {side: reader.get(ids)[:, 0] if ids else np.zeros(0, np.float32) for side, reader in readers.items()}


def qaw_effective(qaw, quality: dict[str, np.ndarray], samples: int) -> dict:
    """Kish's effective sample size of the QAW weights (`method.qaw`) over a set of samples, and its share.

    The weights are the recipe's, normalised over the whole set instead of a batch (the ratio
    does not depend on that scale). A share below `method.qaw.min_effective_share` is flagged.
    """
    if samples == 0:
        return {"samples": 0, "skipped": "no sample has every quality row"}
    as_tensor = {side: torch.from_numpy(np.asarray(values, np.float32)) for side, values in quality.items()}
    weights = qaw_weights(QualityWeighting.from_config(qaw), as_tensor.get("teacher"), as_tensor.get("student"),
                          samples)
    size = effective_sample_size(weights)
    share = size / samples
    return {"samples": samples, "effective_size": size, "effective_share": share,
            "min_effective_share": qaw.min_effective_share, "below": share < qaw.min_effective_share}


def describe_qaw_effective(summary: dict) -> str:
    """One line for the console: the size, the share, and what a low share means."""
    text = (f"QAW effective sample size {summary['effective_size']:.1f} of {summary['samples']} training samples "
            f"({100 * summary['effective_share']:.0f} %)")
    if summary["below"]:
        text = (f"[yellow]{text}: below method.qaw.min_effective_share {summary['min_effective_share']:g}[/yellow]; "
                "a few samples carry the teacher terms (lower method.qaw.gamma, raise method.qaw.tau, or check "
                "the quality scores)")
    return text


def missing_rows_policy(policy: str, absent: list[str], total: int, what: str, rows: str, store, out=None) -> None:
    """method.missing: "stop" raises, naming the count, a few ids and the key; otherwise say how many."""
    if policy == "stop":
        raise XmdError(f"{len(absent)} of {total} {what} have no {rows} in {store} "
                       f"(e.g. {', '.join(absent[:3])}); method.missing is stop",
                       hint="rerun `xmd extract-teacher` (and `xmd score-quality`) to compute them, or set "
                            "method.missing=drop (leave them out) or method.missing=no-distill (train them "
                            "without the teacher)")
    if out is not None:
        out.note(f"[yellow]{len(absent)} of {total} {what} have no {rows}[/yellow] "
                 f"(method.missing={policy}: {'left out' if policy == 'drop' else 'trained without the teacher'})")
