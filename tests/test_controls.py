"""Control teachers (random, class-mean, shuffled): the documented rows, and real stores distill can find."""

import json
from collections import Counter

import numpy as np
import pytest
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.console import Output
from xmd_cli.data.manifest import Sample, read_manifest, write_manifest
from xmd_cli.recipe import load_recipe
from xmd_cli.shards import ShardReader, ShardWriter, store_dir
from xmd_cli.shards.locate import find_store
from xmd_cli.teachers import teacher_components
from xmd_cli.teachers.controls import (
    class_mean_rows,
    random_rows,
    run_control,
    shuffled_donors,
)

runner = CliRunner()
LABELS = ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"]
SPLITS = ["train", "train", "train", "validation", "test", "train", "train", "train", "test",
          "train", "train", "train", "train"]


def test_random_rows_one_fixed_vector_per_class():
    rows = random_rows(LABELS, 16, seed=3, scale=2.5)
    for label in set(LABELS):
        members = rows[[i for i, x in enumerate(LABELS) if x == label]]
        assert np.all(members == members[0])
    firsts = {label: rows[LABELS.index(label)] for label in set(LABELS)}
    assert np.allclose([np.linalg.norm(r) for r in firsts.values()], 2.5, rtol=1e-5)
    cos = max(abs(firsts[x] @ firsts[y]) / 6.25 for x in firsts for y in firsts if x < y)
    assert cos < 0.9
    assert np.array_equal(random_rows(LABELS, 16, seed=3, scale=2.5), rows)
    assert not np.allclose(random_rows(LABELS, 16, seed=4, scale=2.5), rows)
    # A class's vector depends on (seed, label) only: other classes do not move it.
    assert np.array_equal(random_rows(["b", "z"], 16, seed=3, scale=2.5)[0], firsts["b"])


def test_class_mean_uses_train_rows_only():
    rng = np.random.default_rng(0)
    source = rng.normal(size=(len(LABELS), 6)).astype(np.float32)
    rows, origin = class_mean_rows(source, LABELS, SPLITS)
    labels, splits = np.array(LABELS), np.array(SPLITS)
    for label in ("a", "b", "c", "d"):
        train = (labels == label) & (splits == "train")
        assert np.allclose(rows[labels == label], source[train].mean(axis=0), atol=1e-6)
        assert origin[label] == "train"
    rows, origin = class_mean_rows(source, LABELS, ["test"] * 5 + SPLITS[5:])  # class a: no train sample
    assert origin["a"] == "own samples" and np.allclose(rows[:5], source[:5].mean(axis=0), atol=1e-6)


def test_shuffled_is_a_permutation_within_class_and_split():
    donor = shuffled_donors(LABELS, SPLITS, seed=0)
    groups = {}
    for i, key in enumerate(zip(LABELS, SPLITS)):
        groups.setdefault(key, []).append(i)
    for members in groups.values():
        assert sorted(donor[members]) == sorted(members)  # the group's rows, each used once
        if len(members) > 1:
            assert np.all(donor[members] != members)  # every row moved
        else:
            assert donor[members[0]] == members[0]  # nobody to swap with
    assert np.array_equal(shuffled_donors(LABELS, SPLITS, seed=0), donor)
    assert not np.array_equal(shuffled_donors(LABELS, SPLITS, seed=1), donor)


def test_shuffled_store_of_every_frame_moves_whole_samples(tmp_path):
    """A source store with several frames a sample: a shuffled sample gets all of its donor's frames."""
    samples = [Sample(id=f"s{i}", label=label, split=split, text="x")
               for i, (label, split) in enumerate(zip(LABELS, SPLITS))]
    write_manifest(tmp_path, samples, root=tmp_path, adapter="table")
    manifest = read_manifest(tmp_path)
    recipe = load_recipe(None, [], {"teacher": {"kind": "shuffled", "source_kind": "text", "frames": "all",
                                                "dtype": "float32", "control_seed": 5}})
    source_recipe = load_recipe(None, [], {"teacher": {"kind": "text", "frames": "all", "dtype": "float32"}})
    components = teacher_components(source_recipe.teacher, manifest)
    rng = np.random.default_rng(1)
    counts = [1 + i % 3 for i in range(len(samples))]
    frames = rng.normal(size=(sum(counts), 4)).astype(np.float32)
    with ShardWriter(store_dir(tmp_path, "teacher", components), components, dim=4, dtype="float32",
                     frames="all") as writer:
        writer.add([s.id for s in samples], frames, counts=counts)
    summary = run_control(recipe, tmp_path, out=Output(verbosity=0))
    source, control = ShardReader(summary["source_store"]), ShardReader(summary["store"])
    donor = shuffled_donors(LABELS, SPLITS, seed=5)
    for i, sample in enumerate(samples):
        assert np.array_equal(control.frames_of(sample.id), source.frames_of(samples[donor[i]].id))
    assert summary["moved"] == sum(donor != np.arange(len(donor)))
    assert summary["kept_own_row"] == 4  # the groups of one: (a, validation), (a, test), (b, test), (d, train)


def invoke(*args):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_extract_teacher_writes_control_stores_after_the_text_teacher(tmp_path):
    """End to end on synthetic-captions tiny: text teacher, then shuffled, class-mean and random controls."""
    w = str(tmp_path)
    assert runner.invoke(app, ["prepare", "synthetic-captions", "--tiny", "-w", w, "-q"]).exit_code == 0
    # Before the real teacher ran, a control says which command makes its source.
    result = runner.invoke(app, ["extract-teacher", "-w", w, "--set", "teacher.kind=shuffled",
                                 "--set", "teacher.source_kind=text"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "xmd extract-teacher --set teacher.kind=text" in result.output
    result = runner.invoke(app, ["extract-teacher", "-w", w, "--set", "teacher.kind=class-mean"])
    assert result.exit_code == 1 and "teacher.source_kind" in result.output and "Traceback" not in result.output

    text = invoke("extract-teacher", "-w", w, "--set", "teacher.kind=text", "--device", "cpu", "-q")
    control = ["--set", "teacher.source_kind=text"]
    shuffled = invoke("extract-teacher", "-w", w, "--set", "teacher.kind=shuffled", *control)
    manifest = read_manifest(tmp_path)
    ids = [s.id for s in manifest.samples]
    source, rows = ShardReader(text["store"]), ShardReader(shuffled["store"])
    original, moved = source.get(ids), rows.get(ids)
    groups = {}
    for k, s in enumerate(manifest.samples):
        groups.setdefault((s.label, s.split), []).append(k)
    for members in groups.values():
        as_bytes = lambda a: Counter(r.tobytes() for r in a)  # noqa: E731
        assert as_bytes(original[members]) == as_bytes(moved[members])  # the same rows per class and split
    assert shuffled["moved"] >= len(ids) - len(groups) and not np.array_equal(original, moved)
    meta = rows.meta["components"]
    assert meta["teacher"] == "shuffled" and meta["control_seed"] == 0
    assert meta["source_fingerprint"] == source.meta["fingerprint"]
    # distill finds the control store exactly as it finds any teacher store.
    recipe = load_recipe(None, ["teacher.kind=shuffled", "teacher.source_kind=text"])
    found = find_store(tmp_path, "teacher", teacher_components(recipe.teacher, manifest), allow_stale=False,
                       stage="extract-teacher")
    assert str(found) == shuffled["store"]
    again = invoke("extract-teacher", "-w", w, "--set", "teacher.kind=shuffled", *control)
    assert again["embedded_now"] == 0 and again["store"] == shuffled["store"]  # a rerun is a no-op
    other_seed = invoke("extract-teacher", "-w", w, "--set", "teacher.kind=shuffled", "--set",
                        "teacher.control_seed=1", *control)
    assert other_seed["store"] != shuffled["store"]

    means = ShardReader(invoke("extract-teacher", "-w", w, "--set", "teacher.kind=class-mean", *control)["store"])
    train = [k for k, s in enumerate(manifest.samples) if s.split == "train"]
    for label in {s.label for s in manifest.samples}:
        members = [k for k, s in enumerate(manifest.samples) if s.label == label]
        expected = original[[k for k in train if manifest.samples[k].label == label]].mean(axis=0)
        # float16 store: compare to the rounding of a unit-scale row
        np.testing.assert_allclose(means.get([ids[k] for k in members]), np.tile(expected, (len(members), 1)),
                                   atol=2e-3)

    random = invoke("extract-teacher", "-w", w, "--set", "teacher.kind=random", *control)
    vectors = ShardReader(random["store"]).get(ids)
    assert random["dim"] == 384 == vectors.shape[1]
    for label in {s.label for s in manifest.samples}:
        members = [k for k, s in enumerate(manifest.samples) if s.label == label]
        assert np.all(vectors[members] == vectors[members[0]])
    assert np.linalg.norm(vectors[0]) == pytest.approx(np.linalg.norm(original, axis=1).mean(), rel=1e-2)
