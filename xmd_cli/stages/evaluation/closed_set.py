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
from xmd_cli.metrics.classification import classification_summary, true_class_rank
from xmd_cli.recipe import Recipe
from xmd_cli.stages.evaluation.model import check_fits

BACKEND = "classifier-cosine"


def evaluate_classification(recipe: Recipe, manifest: Manifest, model: CheckpointModel, *, out_dir: Path,
                            allow_stale: bool, out, trials: None = None) -> dict:
    from xmd_cli.metrics.plots import confusion_matrix_png

    test = manifest.split("test")
    if not test:
        raise XmdError(f"{manifest.workdir}: the manifest has no test split to classify",
                       hint="prepare the data set with a test split")
    classes = model.classes
    unknown = sorted({s.label for s in test} - set(classes))
    if unknown:
        raise XmdError(f"{model.describe} knows {len(classes)} classes, but {len(unknown)} test label(s) are "
                       f"not among them (first: {', '.join(map(repr, unknown[:3]))})",
                       hint="classification needs test classes seen in training; for identities unseen in "
                            "training use --task speaker-verification or cross-modal-matching")
    weight = model.classifier_weight()
    if weight.shape != (len(classes), model.config.embedding_dim):
        raise XmdError(f"{model.directory}: classifier weight {tuple(weight.shape)} does not fit "
                       f"{len(classes)} classes x {model.config.embedding_dim} dims of its meta.json")
    facts = check_fits(model, "classification", manifest, {s.label for s in test}, allow_stale=allow_stale)
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
    evidence.save_classification(out_dir, correct, labels, evidence.samples_fingerprint([s.id for s in test]))
    return {"backend": BACKEND, "metrics": summary, "protocol": protocol, "fingerprints": {},
            "plots": {"confusion": confusion.name}}
