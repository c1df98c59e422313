"""Classification of the test split with the checkpoint's own classifier.

The classifier is the AAM head the run trained (`method.classifier.weight`). Its
margin only applies to the true class during training, so at test time a
sample's class scores are the plain cosines between its embedding and each class
weight (the logits are these times a constant scale, which ranks the same).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from xmd_cli.data.manifest import Manifest
from xmd_cli.errors import XmdError
from xmd_cli.inference import CheckpointModel, describe_embedding, embed_samples
from xmd_cli.metrics import evidence
from xmd_cli.metrics.classification import classification_summary, group_names, true_class_rank
from xmd_cli.recipe import Recipe
from xmd_cli.stages.evaluation.model import check_fits
from xmd_cli.stages.evaluation.zero_shot import zero_shot_held_out

BACKEND = "classifier-cosine"
HELD_OUT = "held-out"  # the info.group mark of a class no image of which is a training image


def split_held_out(test: list, classes: set[str], describe: str) -> tuple[list, list]:
    """(samples the classifier can name, held-out samples to leave out of the closed-set numbers).

    A test sample whose class the classifier never trained on is left out when it is
    marked `info.group: held-out`; any other unknown class is an XmdError, as before.

    Examples
    --------
    >>> from xmd_cli.data.manifest import Sample
    >>> a = Sample(id="a/0", label="a", split="test", images=["a.png"])
    >>> new = Sample(id="b/0", label="b", split="test", images=["b.png"], info={"group": "held-out"})
    >>> [[s.id for s in part] for part in split_held_out([a, new], {"a"}, "model")]
    [['a/0'], ['b/0']]
    """
    kept = [s for s in test if s.label in classes or s.info.get("group") != HELD_OUT]
    held_out = [s for s in test if s.label not in classes and s.info.get("group") == HELD_OUT]
    unknown = sorted({s.label for s in kept} - classes)
    if unknown:
        raise XmdError(f"{describe} knows {len(classes)} classes, but {len(unknown)} test label(s) are "
                       f"not among them (first: {', '.join(map(repr, unknown[:3]))})",
                       hint="classification needs test classes seen in training (or marked info.group held-out, "
                            "which are left out); for identities unseen in training use --task "
                            "speaker-verification or cross-modal-matching")
    return kept, held_out


def evaluate_classification(recipe: Recipe, manifest: Manifest, model: CheckpointModel, *, out_dir: Path,
                            allow_stale: bool, out, trials: None = None) -> dict:
    from xmd_cli.metrics.plots import confusion_matrix_png

    test = manifest.split("test")
    if not test:
        raise XmdError(f"{manifest.workdir}: the manifest has no test split to classify",
                       hint="prepare the data set with a test split")
    classes = model.classes
    test, held_out = split_held_out(test, set(classes), model.describe)
    if held_out:
        names = sorted({s.label for s in held_out})
        model.notes.append(f"{len(held_out)} test sample(s) of {len(names)} held-out class(es) the classifier never "
                           "trained on (info.group held-out) are left out of the closed-set numbers")
    if not test:
        raise XmdError(f"{manifest.workdir}: every test sample is of a held-out class the classifier never trained "
                       "on; no closed-set number can be formed",
                       hint="prepare the data set with trained classes in the test split too")
    weight = model.classifier_weight()
    if weight.shape != (len(classes), model.config.embedding_dim):
        raise XmdError(f"{model.directory}: classifier weight {tuple(weight.shape)} does not fit "
                       f"{len(classes)} classes x {model.config.embedding_dim} dims of its meta.json")
    facts = check_fits(model, "classification", manifest, {s.label for s in test}, allow_stale=allow_stale)
    if held_out:
        facts["left_out_held_out"] = {"samples": len(held_out), "classes": len({s.label for s in held_out}),
                                      "why": "info.group held-out and not among the classifier's classes"}
    rows = embed_samples(model, manifest, test, stage="test samples", num_workers=recipe.training.num_workers,
                         out=out)
    with torch.no_grad():
        embedding = torch.nn.functional.normalize(torch.from_numpy(rows).float(), dim=1)
        scores = (embedding @ torch.nn.functional.normalize(weight.cpu(), dim=1).T).double().numpy()
    position = {name: i for i, name in enumerate(classes)}
    labels = np.array([position[s.label] for s in test], dtype=np.int64)
    summary = classification_summary(scores, labels, classes)
    confusion = confusion_matrix_png(out_dir / "confusion.png", summary["confusion"], classes,
                                     title=f"{model.meta.get('recipe', '')}: test split")
    protocol = {"split": "test", "n_samples": summary.pop("n_samples"), "n_classes": summary.pop("n_classes"),
                "embedding": describe_embedding(model), **facts}
    correct = true_class_rank(scores, labels) < 1  # top-1 with ties counted against, as summary["top1"]
    evidence.add_accuracy_interval(summary, protocol, correct, labels, resamples=recipe.evaluation.bootstrap,
                                   seed=recipe.seed)
    groups = group_names([s.info.get("group") for s in test]) if any(s.info.get("group") for s in test) else None
    if groups is not None:
        evidence.add_group_accuracies(summary, protocol, correct, labels, groups,
                                      resamples=recipe.evaluation.bootstrap, seed=recipe.seed)
    evidence.save_classification(out_dir, correct, labels, evidence.samples_fingerprint([s.id for s in test]),
                                 groups=groups)
    fingerprints = {}
    if held_out:  # the held-out classes by their nearest projected teacher prototype (zero_shot.py)
        zero_shot, facts, fingerprints = zero_shot_held_out(recipe, manifest, model, held_out,
                                                            allow_stale=allow_stale, out=out)
        summary.update(zero_shot)
        protocol.update(facts)
    return {"backend": BACKEND, "metrics": summary, "protocol": protocol, "fingerprints": fingerprints,
            "plots": {"confusion": confusion.name}}
