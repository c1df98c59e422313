"""Open-set validation (EER on unseen identities picks `best`) and embedding in same-length batches."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.data.buckets import embed_dataset, same_shape_batches
from xmd_cli.data.manifest import Sample
from xmd_cli.data.pairs import generated_trials
from xmd_cli.errors import XmdError
from xmd_cli.models.students import build_student
from xmd_cli.recipe import StudentConfig
from xmd_cli.training.bookkeeping import epoch_checkpoints

runner = CliRunner()
ECAPA = ["--set", "student.arch=ecapa", "--set", "student.modality=speech",
         "--set", "student.channels=[32,32,32,32,96]", "--set", "student.attention_channels=16",
         "--set", "student.embedding_dim=32", "--set", "training.batch_size=8", "--set", "student.crop_seconds=0.5"]


def xmd(*args, code=0):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def _samples(per_label: dict[str, int]) -> list[Sample]:
    return [Sample(id=f"{label}/{k}", label=label, split="validation") for label, n in per_label.items()
            for k in range(n)]


def test_generated_trials_are_every_pair_or_a_seeded_balanced_draw():
    small = generated_trials(_samples({"a": 3, "b": 2}), seed=0)
    assert len(small) == 10 and sum(t.target for t in small) == 4  # C(5,2); 3 + 1 target pairs
    big = _samples({f"p{i}": 6 for i in range(20)})  # 7140 pairs, 300 of them targets
    drawn = generated_trials(big, seed=3, limit=400)
    assert sum(t.target for t in drawn) == 200 and len(drawn) == 400
    assert len({(t.enroll, t.test) for t in drawn}) == 400
    assert all((t.target == 1) == (t.enroll.split("/")[0] == t.test.split("/")[0]) for t in drawn)
    assert drawn == generated_trials(list(reversed(big)), seed=3, limit=400)  # input order never matters
    assert drawn != generated_trials(big, seed=4, limit=400)
    with pytest.raises(XmdError, match="2\\+ identities"):
        generated_trials(_samples({"a": 4}), seed=0)


def test_lower_validation_eer_is_better():
    assert epoch_checkpoints(1, 3, 5, 0.30, None, lower_is_better=True) == (["last", "best"], 0.30)
    assert epoch_checkpoints(2, 3, 5, 0.35, 0.30, lower_is_better=True) == (["last"], 0.30)
    assert epoch_checkpoints(3, 3, 5, 0.20, 0.30, lower_is_better=True) == (["last", "best"], 0.20)
    assert epoch_checkpoints(2, 3, 5, 0.35, 0.30) == (["last", "best"], 0.35)


def test_same_shape_batches_never_mix_lengths_and_bound_memory():
    lengths = [5, 7, 5, 9, 7, 5, 5, 9, 11]
    items = [(torch.zeros(n), 0, i) for i, n in enumerate(lengths)]
    groups = list(same_shape_batches(items, batch=3))
    assert sorted(i for g in groups for _, _, i in g) == list(range(len(lengths)))
    assert all(len({x.shape for x, _, _ in g}) == 1 and len(g) <= 3 for g in groups)
    # With at most 12 numbers held, groups leave early (short batches), still one length each.
    tight = list(same_shape_batches(items, batch=3, max_held=12))
    assert sorted(i for g in tight for _, _, i in g) == list(range(len(lengths))) and len(tight) > len(groups)
    assert all(len({x.shape for x, _, _ in g}) == 1 for g in tight)


@pytest.mark.slow
def test_batched_embeddings_equal_one_at_a_time():
    torch.manual_seed(0)
    config = StudentConfig(arch="ecapa", modality="speech", channels=[16, 16, 16, 16, 48], attention_channels=8,
                           embedding_dim=8)
    student = build_student(config).eval()
    rng = np.random.default_rng(0)
    lengths = [8000, 4000, 8000, 6000, 4000, 8000, 8000, 6000, 5000]
    dataset = [(torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)), 0, i) for i, n in enumerate(lengths)]
    batched = embed_dataset(student, dataset, torch.device("cpu"), batch=4)
    with torch.no_grad():
        alone = np.stack([student(x[None]).double().numpy()[0] for x, _, _ in dataset])
    # Float tolerance: a batched convolution may sum in another order; nothing else may differ.
    np.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)


def _move_splits(work, moves: dict[str, str]) -> None:
    """Rewrite manifest.jsonl with samples moved between splits (by their current split)."""
    path = work / "manifest.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        line["split"] = moves.get(line["split"], line["split"])
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.mark.slow
def test_open_set_validation_selects_best_by_eer(tmp_path):
    work = tmp_path / "w"
    xmd("prepare", "synthetic-persons", "--tiny", "-w", work, "-q")
    # Validation identities unseen in training: the test identities become the validation split.
    _move_splits(work, {"validation": "train", "test": "validation"})
    xmd("train", "-w", work, "--device", "cpu", "--set", "name=open", *ECAPA, "--set", "training.epochs=2", "-q")
    records = [json.loads(line) for line in (work / "runs" / "open" / "metrics.jsonl").read_text().splitlines()]
    eers = [r["val/eer"] for r in records if "val/eer" in r]
    assert len(eers) == 2 and all(0 <= e <= 1 for e in eers)
    assert not any("val/accuracy" in r for r in records)
    best = json.loads((work / "runs" / "open" / "checkpoints" / "best" / "meta.json").read_text())
    assert best["best_val_eer"] == min(eers) and best["epoch"] == 1 + eers.index(min(eers))

    # A named trial list must name validation samples only; one over them is used as given.
    manifest = [json.loads(line) for line in (work / "manifest.jsonl").read_text().splitlines()]
    val = [m for m in manifest if m["split"] == "validation"]
    train = next(m for m in manifest if m["split"] == "train")
    trials = tmp_path / "val-trials.txt"
    trials.write_text(f"1 {val[0]['id']} {train['id']}\n")
    result = xmd("train", "-w", work, "--device", "cpu", "--set", "name=named", *ECAPA, "--set", "training.epochs=1",
                 "--set", f"training.validation_trials={trials}", code=1)
    assert "training.validation_trials must name validation samples" in " ".join(result.output.split())
    same = [m for m in val if m["label"] == val[0]["label"]]
    other = next(m for m in val if m["label"] != val[0]["label"])
    trials.write_text(f"1 {same[0]['id']} {same[1]['id']}\n0 {same[0]['id']} {other['id']}\n")
    xmd("train", "-w", work, "--device", "cpu", "--set", "name=named", *ECAPA, "--set", "training.epochs=1",
        "--set", f"training.validation_trials={trials}", "-q")
    assert "val/eer" in (work / "runs" / "named" / "metrics.jsonl").read_text()

    # A validation split of seen and unseen identities at once is refused, naming both.
    val[0]["split"] = "train"  # val[0]'s identity becomes a training class; the others stay unseen
    (work / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    result = xmd("train", "-w", work, "--device", "cpu", "--set", "name=mixed", *ECAPA, code=1)
    assert "training identities" in result.output
