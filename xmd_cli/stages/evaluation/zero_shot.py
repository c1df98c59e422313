"""Zero-shot classification of held-out classes: student embeddings against projected teacher prototypes.

A class's prototype is the normalised P(mean teacher row of the class's samples),
P the checkpoint's projection head (teacher space -> student space). Every class
of the manifest that the checkpoint trained on or that is held out gets one; each
held-out test image is given the class whose prototype is nearest by cosine.
The teacher rows come from the store the checkpoint was distilled with (located as
cross-modal matching locates it: `matching.teacher_store`).
"""

from __future__ import annotations

import numpy as np
import torch

from xmd_cli.data.manifest import Manifest
from xmd_cli.errors import XmdError
from xmd_cli.inference import CheckpointModel, embed_samples
from xmd_cli.metrics.bootstrap_accuracy import accuracy_interval
from xmd_cli.metrics.classification import class_means, cosine_scores, true_class_rank
from xmd_cli.recipe import Recipe
from xmd_cli.shards.format import read_meta

METRIC = "zero_shot_top1@held-out"
NEEDS = "needs a distilled checkpoint (this checkpoint has no projection head)"


def prototype_scores(student, teacher_rows, row_classes, n_classes: int, project) -> np.ndarray:
    """(samples x classes) cosines between each student embedding and each class's prototype.

    Parameters
    ----------
    student : array_like
        (samples x student dim) embeddings of the images to classify.
    teacher_rows : array_like
        (rows x teacher dim) teacher rows, one a sample of the class it belongs to.
    row_classes : array_like of int
        The class index of each teacher row; every class 0..n_classes-1 needs a row.
    project : callable
        Maps (classes x teacher dim) class means to (classes x student dim): the projection head P.

    Examples
    --------
    >>> rows = [[1.0, 0.0], [0.0, 1.0], [0.0, 3.0]]
    >>> swap = lambda x: x[:, ::-1]  # a P that swaps the two axes
    >>> prototype_scores([[0.0, 2.0], [1.0, 1.0]], rows, [0, 1, 1], 2, swap).round(4).tolist()
    [[1.0, 0.0], [0.7071, 0.7071]]
    """
    means = class_means(teacher_rows, row_classes, n_classes)
    return cosine_scores(student, np.asarray(project(means), dtype=np.float64))


def zero_shot_held_out(recipe: Recipe, manifest: Manifest, model: CheckpointModel, held_out: list, *,
                       allow_stale: bool, out) -> tuple[dict, dict, dict]:
    """(metrics, protocol facts, fingerprints) of the zero-shot top-1 on the held-out test samples.

    A checkpoint without a projection head (`xmd train`) gets no metric, and a
    protocol entry saying why.
    """
    from xmd_cli.stages.evaluation.matching import teacher_rows

    method = model.meta.get("method") or {}
    if model.meta.get("task") != "distill" or "projection" not in method or not model.part("method.projection."):
        model.notes.append(f"zero-shot accuracy on held-out classes {NEEDS}")
        return {}, {"zero_shot": NEEDS}, {}
    projection = model.projection()
    classes = list(model.classes) + sorted({s.label for s in held_out} - set(model.classes))
    position = {name: i for i, name in enumerate(classes)}
    of_classes = [s for s in manifest.samples if s.label in position]
    path, members, rows, missing = teacher_rows(model, manifest, of_classes, allow_stale=allow_stale)
    lacking = sorted(set(classes) - {s.label for s in members})
    if lacking:
        raise XmdError(f"{path}: {len(lacking)} class(es) have no teacher row to form a prototype from "
                       f"(first: {', '.join(map(repr, lacking[:3]))})",
                       hint="run `xmd extract-teacher` on the whole data set")
    student = embed_samples(model, manifest, held_out, stage="held-out test samples",
                            num_workers=recipe.training.num_workers, out=out)

    def project(means: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return projection(torch.from_numpy(means).float().to(model.device)).double().cpu().numpy()

    scores = prototype_scores(student, rows, [position[s.label] for s in members], len(classes), project)
    labels = np.array([position[s.label] for s in held_out], dtype=np.int64)
    correct = true_class_rank(scores, labels) < 1  # ties count against
    value = float(correct.mean())
    resamples = recipe.evaluation.bootstrap
    entry = (value if resamples == 0 else
             {**accuracy_interval(correct, labels, resamples=resamples, seed=recipe.seed),
              "chance": 1 / len(classes), "n": int(labels.size)})
    protocol = {"zero_shot": {"samples": int(labels.size), "held_out_classes": len(set(labels.tolist())),
                              "prototypes": len(classes),
                              "prototype": "normalised P(mean teacher row of every manifest sample of the class)",
                              "left_out_without_teacher_row": missing}}
    return {METRIC: entry}, protocol, {"teacher_store": read_meta(path)["fingerprint"]}
