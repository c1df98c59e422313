"""Control teachers: stores derived from a real teacher's store, to tell where a gain comes from.

An ablation that puts these beside the real teacher separates three explanations
of a distillation gain (docs/diagnose.md):
  random      a fixed random vector per class (unit direction drawn from the seed and
              the label, scaled to the source rows' mean norm, or 1 without a source):
              a label-embedding regulariser that knows nothing. If it gains as much as
              the real teacher, the gain is regularisation, not knowledge.
  class-mean  every sample gets its class's mean source row: the teacher's knowledge
              of how classes relate, without anything per-sample.
  shuffled    source rows permuted among samples of the same class and split: the
              same per-class distribution of rows, but tied to the wrong sample, so
              whatever the teacher says about *this* sample is lost.

Leakage: class means use the train split's rows only. A class with no train
sample (an identity held out for open-set testing) gets the mean over its own
samples; that row is label-derived (it uses the test labels) and says so in
control.json. distill never reads such samples; an evaluation that reads teacher
rows of unseen classes (cross-modal matching) is not a fair measurement with a
class-mean control. Shuffling stays within (class, split), so no row crosses
splits.

A control materialises as an ordinary store, `WORKDIR/teacher/<fp>/`, written by
`xmd extract-teacher` when teacher.kind is a control; its fingerprint names the
control kind, the seed and the source store's fingerprint, so distill finds and
checks it like any other store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from xmd_cli.console import Output
from xmd_cli.data.manifest import Manifest, read_manifest
from xmd_cli.errors import XmdError
from xmd_cli.io import write_json
from xmd_cli.recipe import Recipe, TeacherConfig, save_resolved
from xmd_cli.shards import Fingerprint, ShardReader, ShardWriter, store_dir
from xmd_cli.shards.locate import find_store
from xmd_cli.teachers import teacher_components
from xmd_cli.teachers.base import TeacherKind

CONTROL_FILE = "control.json"


# ---------------------------------------------------------------- the rows (pure numpy)
def _key(text: str) -> int:
    """A stable 63-bit integer of a string, for seeding (Python's hash() changes per process)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def random_rows(labels: list[str], dim: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """One fixed random vector per class, of norm `scale`; every sample of a class gets it.

    Each class's vector depends only on (seed, label), not on which other classes exist,
    so adding a class or a sample never changes another class's vector.
    """
    vectors = {}
    for label in sorted(set(labels)):
        v = np.random.default_rng([int(seed) & (2**63 - 1), _key(label)]).standard_normal(dim)
        vectors[label] = (scale * v / np.linalg.norm(v)).astype(np.float32)
    return np.stack([vectors[label] for label in labels]) if labels else np.zeros((0, dim), np.float32)


def class_mean_rows(rows: np.ndarray, labels: list[str], splits: list[str]) -> tuple[np.ndarray, dict[str, str]]:
    """Each sample gets its class's mean row: over the train split, else over its own samples.

    Returns the rows and, per class, where its mean came from ("train" or "own samples").
    """
    labels_a, train = np.asarray(labels), np.asarray(splits) == "train"
    out = np.empty_like(rows, dtype=np.float32)
    origin = {}
    for label in sorted(set(labels)):
        members = labels_a == label
        basis = members & train
        origin[label] = "train" if basis.any() else "own samples"
        out[members] = rows[basis if basis.any() else members].mean(axis=0)
    return out, origin


def shuffled_donors(labels: list[str], splits: list[str], seed: int) -> np.ndarray:
    """donor[i]: the sample whose row sample i gets; a permutation within each (class, split).

    Within a group of n >= 2 the permutation is a random cyclic shift of a random order,
    so no sample keeps its own row; a group of one keeps it (there is no one to swap with).
    """
    donor = np.arange(len(labels))
    groups: dict[tuple[str, str], list[int]] = {}
    for i, group in enumerate(zip(labels, splits)):
        groups.setdefault(group, []).append(i)
    for (label, split), members in groups.items():
        if len(members) < 2:
            continue
        rng = np.random.default_rng([int(seed) & (2**63 - 1), _key(label), _key(split)])
        order = np.asarray(members)[rng.permutation(len(members))]
        donor[order] = np.roll(order, -1)
    return donor


# ---------------------------------------------------------------- fingerprint
def source_config(config: TeacherConfig) -> TeacherConfig:
    """The real teacher a control derives from, with the control's storage settings."""
    return config.model_copy(update={"kind": config.source_kind, "weights": config.source_weights,
                                     "source_kind": None, "source_weights": None})


def _check(config: TeacherConfig) -> None:
    if config.kind in ("class-mean", "shuffled") and not config.source_kind:
        raise XmdError(f"teacher.kind {config.kind} is derived from a real teacher's store: set teacher.source_kind",
                       hint=f"e.g. --set teacher.kind={config.kind} --set teacher.source_kind=text, after "
                            "`xmd extract-teacher --set teacher.kind=text` wrote that store")
    if config.kind == "random" and not config.source_kind and not config.control_dim:
        raise XmdError("teacher.kind random needs a dimension: set teacher.control_dim, or teacher.source_kind "
                       "to take the dimension (and the sample ids) from a real teacher's store",
                       hint="e.g. --set teacher.control_dim=384")


def describe_control(config: TeacherConfig, manifest: Manifest | None) -> dict:
    """A control's part of the fingerprint: its kind, seed and its source store's fingerprint."""
    _check(config)
    if manifest is None:
        raise ValueError("a control teacher's fingerprint depends on the manifest: pass it")
    description: dict = {"teacher": config.kind}
    if config.kind != "class-mean":  # the class mean draws nothing at random
        description["control_seed"] = config.control_seed
    else:
        description["class_means_from"] = "train split; own samples for classes without train samples"
    if config.source_kind:
        source = teacher_components(source_config(config), manifest)
        description.update(source_teacher=config.source_kind, source_fingerprint=Fingerprint(source).digest)
    else:
        description["dim"] = config.control_dim
    return description


# ---------------------------------------------------------------- the stage
def _source(config: TeacherConfig, manifest: Manifest, workdir: Path):
    expected = teacher_components(source_config(config), manifest)
    stage = f"extract-teacher --set teacher.kind={config.source_kind}" + \
        (f" --set teacher.weights={config.source_weights}" if config.source_weights else "")
    path = find_store(workdir, "teacher", expected, allow_stale=False, stage=stage)
    return ShardReader(path, expect_fingerprint=expected)


def run_control(recipe: Recipe, workdir: Path, *, force: bool = False, out: Output | None = None) -> dict:
    """Write the control teacher's store; a rerun on the same inputs is a no-op."""
    out = out or Output()
    if int(os.environ.get("RANK", "0")) != 0:
        return {}  # a control is a few array operations: rank 0 writes it alone
    workdir = Path(workdir)
    manifest = read_manifest(workdir)
    config = recipe.teacher
    components = teacher_components(config, manifest)
    store = store_dir(workdir, "teacher", components)
    source = _source(config, manifest, workdir) if config.source_kind else None
    samples = manifest.samples
    if source is not None:
        absent = set(source.missing([s.id for s in samples]))
        samples = [s for s in samples if s.id not in absent]  # the real teacher's failures stay failures
    ids, labels, splits = [s.id for s in samples], [s.label for s in samples], [s.split for s in samples]
    rows = source.get(ids) if source is not None else None
    dim = source.dim if source is not None else int(config.control_dim)
    counts, detail = None, {}
    if config.kind == "random":
        scale = float(np.linalg.norm(rows, axis=1).mean()) if rows is not None and len(rows) else 1.0
        new_rows = random_rows(labels, dim, config.control_seed, scale)
        detail = {"norm": round(scale, 6)}
    elif config.kind == "class-mean":
        new_rows, origin = class_mean_rows(rows, labels, splits)
        detail = {"classes_from_train": sum(v == "train" for v in origin.values()),
                  "classes_from_own_samples": sorted(k for k, v in origin.items() if v != "train")}
    else:
        donor = shuffled_donors(labels, splits, config.control_seed)
        kept = int((donor == np.arange(len(donor))).sum())
        detail = {"moved": len(donor) - kept, "kept_own_row": kept}
        if source.frames == "all" and config.frames == "all":  # move every frame of the donor
            frames = [source.frames_of(ids[d]) for d in donor]
            counts = [len(f) for f in frames]
            new_rows = np.concatenate(frames) if frames else np.zeros((0, dim), np.float32)
        else:
            new_rows = rows[donor]
    save_resolved(recipe, store.parent / f"{store.name}.recipe.yaml")
    with ShardWriter(store, components, dim, config.dtype, config.shard_rows, frames=config.frames,
                     force=force) as writer:
        pending = set(writer.pending_ids(ids))
        _write(writer, ids, new_rows, counts, pending, config.shard_rows)
    control = {"kind": config.kind, "source_store": str(source.directory) if source else None,
               "source_fingerprint": source.meta["fingerprint"] if source else None, **detail}
    if config.kind != "class-mean":
        control["seed"] = config.control_seed
    write_json(store / CONTROL_FILE, control)
    summary = {"store": str(store), "rows": len(ShardReader(store)), "samples": len(manifest.samples),
               "embedded_now": len(pending), "failures": len(manifest.samples) - len(ids), "dim": dim,
               "teacher": config.kind, **{k: v for k, v in control.items() if k != "kind"}}
    out.table(f"extract-teacher (control: {config.kind})", [(k, v) for k, v in summary.items()], ("", "value"))
    return summary


def _write(writer: ShardWriter, ids, rows, counts, pending: set[str], chunk: int) -> None:
    """Add the pending ids' rows (all of an id's frames when `counts` is given), a chunk at a time."""
    starts = np.concatenate([[0], np.cumsum(counts)]) if counts is not None else np.arange(len(ids) + 1)
    batch_ids, batch_rows, batch_counts = [], [], []
    for k, sample_id in enumerate(ids):
        if sample_id not in pending:
            continue
        batch_ids.append(sample_id)
        batch_rows.append(rows[starts[k]:starts[k + 1]])
        batch_counts.append(int(starts[k + 1] - starts[k]))
        if len(batch_ids) >= chunk or k == len(ids) - 1:
            writer.add(batch_ids, np.concatenate(batch_rows), counts=batch_counts)
            batch_ids, batch_rows, batch_counts = [], [], []
    if batch_ids:
        writer.add(batch_ids, np.concatenate(batch_rows), counts=batch_counts)


# A control has no network: `xmd extract-teacher` derives its store (run_control).
CONTROL_TEACHER = TeacherKind(describe=describe_control)
