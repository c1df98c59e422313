"""Classification per group (info.group), held-out classes left out, zero-shot on held-out classes.

A fake checkpoint with a 2-D classifier and hand-placed embeddings goes through the real
stage (evaluate_classification), the real scores.npz and the real paired comparisons.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from deploy_fixtures import xmd

from xmd_cli.data.manifest import Sample
from xmd_cli.errors import XmdError
from xmd_cli.metrics.ablation import seed_paired
from xmd_cli.metrics.bootstrap_accuracy import accuracy_interval
from xmd_cli.metrics.classification import group_top1, true_class_rank
from xmd_cli.metrics.evidence import add_group_accuracies, load_evidence, paired_comparison
from xmd_cli.shards.format import read_meta
from xmd_cli.shards.writer import ShardWriter
from xmd_cli.stages.evaluation import closed_set, zero_shot
from xmd_cli.stages.evaluation.closed_set import evaluate_classification, split_held_out
from xmd_cli.stages.evaluation.zero_shot import prototype_scores

# Classifier weights: a -> +x, b -> +y, c -> -x. Classes a, b carry no mark (head), c is tail, d held out.
WEIGHT = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
EMBEDDINGS = {"a/0": [1.0, 0.1], "a/1": [0.1, 1.0],   # a/1 lands on b: wrong
              "b/0": [0.0, 1.0], "b/1": [0.2, 1.0],
              "c/0": [-1.0, 0.0], "c/1": [1.0, 0.0],  # c/1 lands on a: wrong
              "d/0": [2.0, 1.2], "d/1": [1.0, 0.0]}
GROUPS = {"c": "tail", "d": "held-out"}


def _sample(sample_id, split="test"):
    label = sample_id.split("/")[0]
    info = {"group": GROUPS[label]} if label in GROUPS else {}
    return Sample(id=sample_id, label=label, split=split, images=[f"{sample_id}.png"], info=info)


class FakeModel:
    def __init__(self, task="distill", weight=WEIGHT):
        self.meta = {"task": task, "classes": ["a", "b", "c"], "teacher_dim": 2,
                     **({"method": {"projection": "linear"}} if task == "distill" else {})}
        self.classes, self.weight = ["a", "b", "c"], weight
        self.describe, self.directory, self.notes = "fake checkpoint", Path("fake"), []
        self.config = SimpleNamespace(arch="image-cnn", embedding_dim=2)
        self.device = torch.device("cpu")

    def classifier_weight(self):
        return self.weight

    def part(self, prefix):
        return {"weight": torch.zeros(1)} if self.meta["task"] == "distill" else {}

    def projection(self):
        return lambda x: x.flip(1)  # P swaps the two axes


@pytest.fixture
def world(tmp_path, monkeypatch):
    train = [_sample(f"{label}/9", "train") for label in "abc"]
    test = [_sample(i) for i in EMBEDDINGS]
    manifest = SimpleNamespace(workdir=tmp_path, fingerprint="m" * 64, samples=train + test,
                               split=lambda name: test if name == "test" else train)
    embed = lambda model, manifest, samples, **_: np.array([EMBEDDINGS[s.id] for s in samples])  # noqa: E731
    monkeypatch.setattr(closed_set, "embed_samples", embed)
    monkeypatch.setattr(zero_shot, "embed_samples", embed)
    monkeypatch.setattr(closed_set, "describe_embedding", lambda model: "fake")
    # Teacher rows (before P swaps the axes): a -> (0, 1), b -> (1, 0), c -> (0, -1); d's two captions
    # average to (1, 2), so d's prototype is P(1, 2) = (2, 1).
    store = tmp_path / "teacher" / "store"
    rows = {"a/9": [0, 1], "b/9": [1, 0], "c/9": [0, -1], "d/0": [1, 1], "d/1": [1, 3]}
    with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
        writer.add(list(rows), np.array(list(rows.values()), dtype=np.float32))
    monkeypatch.setattr("xmd_cli.stages.evaluation.matching.teacher_store", lambda *a, **k: store)
    recipe = SimpleNamespace(evaluation=SimpleNamespace(bootstrap=300), seed=0,
                             training=SimpleNamespace(num_workers=0))
    return recipe, manifest, store


def test_group_top1_on_a_hand_made_score_matrix():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]])
    labels, groups = np.array([0, 1, 1, 2, 0]), np.array(["head", "head", "head", "tail", "tail"])
    correct = true_class_rank(scores, labels) < 1  # the tie on the last row counts against
    assert correct.tolist() == [True, True, False, True, False]
    assert group_top1(correct, groups) == {"top1@head": pytest.approx(2 / 3), "top1@tail": 0.5}
    metrics, protocol = {}, {}
    add_group_accuracies(metrics, protocol, correct, labels, groups, resamples=400, seed=3)
    tail = accuracy_interval(correct[3:], labels[3:], resamples=400, seed=3)
    assert metrics["top1@tail"] == {**tail, "chance": 1 / 3, "n": 2}
    assert metrics["top1@head"]["value"] == pytest.approx(2 / 3) and protocol["groups"] == {"head": 3, "tail": 2}
    add_group_accuracies(metrics, {}, correct, labels, groups, resamples=0, seed=3)
    assert metrics["top1@tail"] == 0.5


def test_held_out_classes_are_left_out_and_unmarked_unknown_ones_stop():
    kept, left = split_held_out([_sample(i) for i in EMBEDDINGS], {"a", "b", "c"}, "fake")
    assert [s.label for s in left] == ["d", "d"] and "d" not in {s.label for s in kept}
    unmarked = Sample(id="e/0", label="e", split="test", images=["e.png"], info={"group": "tail"})
    with pytest.raises(XmdError, match="1 test label\\(s\\) are not among them \\(first: 'e'\\)"):
        split_held_out([*kept, unmarked], {"a", "b", "c"}, "fake")


def test_classification_reports_groups_leaves_held_out_out_and_classifies_it_zero_shot(world, tmp_path):
    recipe, manifest, store = world
    model = FakeModel()
    parts = evaluate_classification(recipe, manifest, model, out_dir=tmp_path / "r1", allow_stale=False, out=None)
    metrics, protocol = parts["metrics"], parts["protocol"]
    assert metrics["top1"]["value"] == pytest.approx(4 / 6) and protocol["n_samples"] == 6
    assert metrics["top1@head"]["value"] == 0.75 and metrics["top1@tail"]["value"] == 0.5
    assert metrics["top1@tail"]["ci_low"] <= 0.5 <= metrics["top1@tail"]["ci_high"]
    assert protocol["left_out_held_out"]["samples"] == 2 and protocol["left_out_held_out"]["classes"] == 1
    assert any("left out of the closed-set numbers" in note for note in model.notes)
    # Zero-shot: d/0 (2, 1.2) is nearest d's prototype (2, 1); d/1 (1, 0) is nearest a's (1, 0).
    entry = metrics["zero_shot_top1@held-out"]
    assert entry["value"] == 0.5 and entry["n"] == 2 and entry["chance"] == 0.25
    assert protocol["zero_shot"]["prototypes"] == 4
    assert parts["fingerprints"]["teacher_store"] == read_meta(store)["fingerprint"]
    assert load_evidence(tmp_path / "r1")["groups"].tolist() == ["head"] * 4 + ["tail"] * 2
    # A student-only checkpoint has no projection head: the closed-set numbers, and a note why no zero-shot.
    trained = FakeModel(task="train", weight=torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))  # c -> a's place
    other = evaluate_classification(recipe, manifest, trained, out_dir=tmp_path / "r2", allow_stale=False, out=None)
    assert "zero_shot_top1@held-out" not in other["metrics"]
    assert other["protocol"]["zero_shot"].startswith("needs a distilled checkpoint")
    # Paired: c's weight now equals a's, so a/0, c/1 tie between a and c (ties count against) and c/0 lands on b:
    # head 3/4 -> 2/4, tail 1/2 -> 0.
    reports = [{"metrics": parts["metrics"], "protocol": {"bootstrap": 200}}, {"metrics": other["metrics"]}]
    paired = paired_comparison([tmp_path / "r1", tmp_path / "r2"], reports)
    assert other["metrics"]["top1@tail"]["value"] == 0.0
    assert paired["metrics"]["top1@tail"][0]["difference"] == -0.5
    assert paired["metrics"]["top1@head"][0]["difference"] == -0.25
    assert paired["metrics"]["top1"][0]["difference"] == pytest.approx(-2 / 6)
    # xmd ablate's pairing over seeds gives the tail difference too.
    runs = {"none": [load_evidence(tmp_path / "r1")], "full": [load_evidence(tmp_path / "r2")]}
    result = seed_paired(runs, "none", sources={"none": ["r1"], "full": ["r2"]}, resamples=100)
    assert result["full"]["top1@tail"]["difference"] == -0.5
    assert result["full"]["top1"]["difference"] == pytest.approx(-2 / 6)


def test_an_unmarked_unknown_class_still_stops_the_stage(world, tmp_path):
    recipe, manifest, _ = world
    for sample in manifest.split("test"):
        if sample.label == "d":
            del sample.info["group"]  # d is unknown to the classifier, and no longer marked held-out
    with pytest.raises(XmdError, match="test label\\(s\\) are not among them"):
        evaluate_classification(recipe, manifest, FakeModel(), out_dir=tmp_path / "r", allow_stale=False, out=None)


def test_prototypes_are_projected_class_means():
    # Class 0: rows (2, 0) and (0, 2) -> mean (1, 1); class 1: (0, 4). P doubles the first axis.
    scores = prototype_scores([[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 2.0], [0.0, 4.0]], [0, 0, 1], 2,
                              lambda x: x * np.array([2.0, 1.0]))
    expected = np.array([[2 / np.sqrt(5), 0.0], [1 / np.sqrt(5), 1.0]])
    assert scores == pytest.approx(expected)
    with pytest.raises(XmdError, match="class 1 has no rows"):
        prototype_scores([[1.0, 0.0]], [[1.0, 0.0]], [0], 2, lambda x: x)


def test_ablation_summary_shows_the_tail_beside_the_headline(tmp_path):
    from xmd_cli.console import Output
    from xmd_cli.stages.ablate import _write

    results = [{"row": row, "seed": 0, "run": f"r-{row}", "top1": top1, "top1@head": top1, "top1@tail": tail}
               for row, top1, tail in (("none", 0.5, 0.2), ("full", 0.6, 0.4))]
    entry = {"difference": 0.2, "ci_low": 0.05, "ci_high": 0.35, "verdict": "better", "seeds": 1}
    paired = {"full": {"top1": {**entry, "difference": 0.1}, "top1@head": entry, "top1@tail": entry}}
    _write(results, paired, "", tmp_path, "classification", 1, [], Output(verbosity=0))
    table = (tmp_path / "summary.md").read_text()
    assert "| row | top1 | top1@tail | top1 - none (95 % CI) | verdict | top1@tail - none (95 % CI) |" in table
    assert "| full | 0.6000 ± 0.0000 | 0.4000 ± 0.0000 | +0.1000 [+0.0500, +0.3500] | better | +0.2000" in table
    assert "top1@tail_verdict" in (tmp_path / "summary.csv").read_text()


@pytest.mark.slow
def test_a_world_with_a_tail_and_held_out_classes_end_to_end(tmp_path):
    world = ["--set", "data.captions_data.class_attributes=[colour,shape]", "--set",
             "data.captions_data.values_per_attribute=2", "--set", "data.captions_data.held_out_combinations=1",
             "--set", "data.captions_data.tail_classes=2"]
    tiny = ["--set", "student.image_size=32", "--set", "student.image_channels=[8,8,16,16]", "--set",
            "student.embedding_dim=16", "--set", "training.epochs=1", "--set", "training.batch_size=8",
            "--set", "method.qaw.enabled=false"]
    xmd("prepare", "synthetic-captions", "--tiny", "-w", tmp_path, "-q", *world)
    xmd("extract-teacher", "-r", "demo-captions", "-w", tmp_path, "--device", "cpu", "-q")
    xmd("distill", "-r", "demo-captions", "-w", tmp_path, "--device", "cpu", "--set", "name=dc", *tiny, "-q")
    xmd("train", "-r", "demo-captions", "-w", tmp_path, "--device", "cpu", "--set", "name=cls", *tiny, "-q")
    reports = {}
    for name in ("cls", "dc"):
        result = xmd("evaluate", "-r", "demo-captions", "-w", tmp_path, "--set", f"name={name}", "--device", "cpu",
                     "--task", "classification", "--set", "evaluation.bootstrap=100", "--json")
        reports[name] = json.loads(result.stdout)
    dc, cls = reports["dc"], reports["cls"]
    assert dc["protocol"]["left_out_held_out"]["classes"] == 1 and dc["protocol"]["groups"]["tail"] > 0
    assert {"top1@head", "top1@tail", "zero_shot_top1@held-out"} <= set(dc["metrics"])
    assert cls["protocol"]["zero_shot"].startswith("needs a distilled checkpoint")
    compared = json.loads(xmd("evaluate", "--compare", tmp_path / "reports" / "cls-classification",
                              tmp_path / "reports" / "dc-classification", "--json").stdout)
    assert compared["paired"]["metrics"]["top1@tail"][0]["verdict"] in {"better", "worse", "not resolved"}
