"""`xmd diagnose`: each diagnostic gives the expected verdict on constructed data with a known answer.

Constructed teachers (6 classes x 16 samples, 24-d, seeded):
  one-hot   3 * one-hot(label) + N(0, 0.15^2): restates the label
  attribute one-hot + 2 * e(colour) + N(0, 0.3^2), colour drawn per sample independently of the class
  noise     N(0, 1), unrelated to the labels
"""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from xmd_cli.cli import app
from xmd_cli.data.manifest import Sample, read_manifest, write_manifest
from xmd_cli.diagnose import verdicts as v
from xmd_cli.diagnose.beyond_label import (
    beyond_label,
    flatten_attributes,
    within_class_share,
)
from xmd_cli.diagnose.cka import cka_report, linear_cka
from xmd_cli.diagnose.common import encode
from xmd_cli.diagnose.quality_reliability import centroid_distances, quality_reliability
from xmd_cli.diagnose.separability import cosine_summary, separability
from xmd_cli.quality.store import quality_components
from xmd_cli.recipe import QualitySideConfig, TeacherConfig
from xmd_cli.shards import ShardWriter, store_dir
from xmd_cli.teachers import teacher_components

runner = CliRunner()
K, PER, DIM = 6, 16, 24
COLOURS = ("red", "green", "blue")


def constructed(kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(K), PER)
    labels = [f"class{c}" for c in codes]
    colour = rng.integers(0, len(COLOURS), len(codes))
    infos = [{"attributes": {"colour": COLOURS[c], "shape": label, "nested": {"size": int(rng.integers(0, 2))}}}
             for c, label in zip(colour, labels)]
    onehot = 3.0 * np.eye(DIM)[codes]
    if kind == "one-hot":
        rows = onehot + rng.normal(0, 0.15, onehot.shape)
    elif kind == "attribute":
        rows = onehot + 2.0 * np.eye(DIM)[10 + colour] + rng.normal(0, 0.3, onehot.shape)
    else:
        rows = rng.normal(0, 1, onehot.shape)
    return rows.astype(np.float32), labels, infos


# ---------------------------------------------------------------- linear CKA
def hsic_cka(x, y):
    """The textbook form: HSIC of centred Gram matrices, tr(K H L H) / (n - 1)^2, normalised."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n

    def hsic(k, m):
        return np.trace(k @ h @ m @ h) / (n - 1) ** 2
    k, m = x @ x.T, y @ y.T
    return hsic(k, m) / np.sqrt(hsic(k, k) * hsic(m, m))


def test_linear_cka_matches_the_hsic_formula_and_its_invariances():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 7))
    y = x[:, :5] @ rng.normal(size=(5, 5)) + rng.normal(size=(30, 5))
    assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y), rel=1e-10)
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert linear_cka(x, 3.0 * y @ rotation + 2.0) == pytest.approx(linear_cka(x, y), rel=1e-10)
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(30, 5))) < 0.6 * linear_cka(x, y)


# ---------------------------------------------------------------- separability
def test_cosine_summary_equals_the_pairwise_means():
    rows, labels, _ = constructed("attribute")
    codes, rows = encode(labels)[0], rows.astype(np.float64)
    x = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cos = x @ x.T
    same, off = codes[:, None] == codes[None, :], ~np.eye(len(x), dtype=bool)
    got = cosine_summary(rows, codes)
    assert got["within_cosine"] == pytest.approx(cos[same & off].mean(), abs=1e-9)
    assert got["between_cosine"] == pytest.approx(cos[~same].mean(), abs=1e-9)


@pytest.mark.parametrize("kind, expected", [("one-hot", "separates"), ("attribute", "separates"),
                                            ("noise", "does-not-separate")])
def test_separability_verdicts(kind, expected):
    rows, labels, _ = constructed(kind)
    measured = separability(rows, labels, seed=0)
    assert v.separability_verdict(measured)["code"] == expected
    assert measured["folds"] == 5 and measured["chance"] == pytest.approx(1 / K)
    if kind == "noise":
        assert measured["linear_probe_accuracy"] < 0.4 and abs(measured["cosine_gap"]) < 0.1
    else:
        assert measured["nearest_centroid_accuracy"] > 0.95 and measured["cosine_gap"] > 0.3


# ---------------------------------------------------------------- beyond the label
def test_within_class_share_is_zero_for_one_point_per_class_and_flatten_attributes():
    rows, labels, infos = constructed("one-hot")
    codes = encode(labels)[0]
    means = np.stack([rows[codes == c].mean(axis=0) for c in range(K)])
    assert within_class_share(means[codes], codes) == pytest.approx(0.0, abs=1e-12)
    assert 0.02 < within_class_share(rows, codes) < 0.1
    flat = flatten_attributes(infos[:2] + [{}])
    assert set(flat) == {"colour", "shape", "nested.size"} and flat["colour"][2] is None


def test_table_columns_reach_the_attribute_probe():
    """A table's extra columns (info["columns"], text values) are probed like generated attributes."""
    rows, labels, infos = constructed("attribute")
    columns = [{"columns": {"colour": i["attributes"]["colour"], "age": str(20 + n % 7)}} for n, i in enumerate(infos)]
    flat = flatten_attributes(columns[:2] + [{"attributes": {"age": 1}}])
    assert flat["age"] == [None, None, 1] and flat["columns.age"] == [20.0, 21.0, None]  # numbers when all read so
    assert flatten_attributes([{"columns": {"id2": "7"}}, {"columns": {"id2": "b"}}])["id2"] == ["7", "b"]
    measured = beyond_label(rows, labels, columns, seed=0)
    by_name = {a["attribute"]: a for a in measured["attributes"]}
    assert by_name["colour"]["p"] <= 0.05 and by_name["colour"]["score"] > 0.9
    assert v.beyond_label_verdict(measured)["code"] == "structured"


def test_diagnose_reports_the_qaw_effective_sample_size(tmp_path):
    from xmd_cli.recipe import load_recipe
    from xmd_cli.stages.diagnose import _qaw_effective

    write_constructed_workdir(tmp_path, "attribute")
    manifest = read_manifest(tmp_path)
    recipe = load_recipe(None, ["quality.teacher.modality=text", "method.qaw.beta=0"])
    measured = _qaw_effective(recipe, manifest, False, None)
    quality = 1 - centroid_distances(*constructed("attribute")[:2])  # what the store holds, as float32
    w = quality.astype(np.float32).astype(np.float64)
    assert measured["samples"] == K * PER
    assert measured["effective_size"] == pytest.approx(w.sum() ** 2 / (w ** 2).sum(), rel=1e-5)
    assert v.qaw_effective_verdict(measured)["code"] == ("concentrated" if measured["below"] else "spread")
    strict = load_recipe(None, ["quality.teacher.modality=text", "method.qaw.beta=0",
                                "method.qaw.min_effective_share=1"])
    assert v.qaw_effective_verdict(_qaw_effective(strict, manifest, False, None))["code"] == "concentrated"
    assert "quality.student" in _qaw_effective(load_recipe(None, ["quality.teacher.modality=text"]), manifest, False,
                                       None)["skipped"]  # beta 1 needs the speech store, which is missing


@pytest.mark.parametrize("kind, expected", [("one-hot", "restates-label"), ("attribute", "structured"),
                                            ("noise", "noise")])
def test_beyond_label_verdicts(kind, expected):
    rows, labels, infos = constructed(kind)
    measured = beyond_label(rows, labels, infos, seed=0)
    verdict = v.beyond_label_verdict(measured)
    assert verdict["code"] == expected, (verdict, measured)
    by_name = {a["attribute"]: a for a in measured["attributes"]}
    assert "skipped" in by_name["shape"]  # constant within each class: invisible in a residual
    if kind == "attribute":
        assert by_name["colour"]["score"] > 0.9 and by_name["colour"]["p"] == pytest.approx(0.05)
        assert "colour" in verdict["text"] and "nested.size" not in v.structured_attributes(measured)
        assert measured["shared_directions"]["explained"] > 1.5 * measured["shared_directions"]["null_mean"]
    else:
        assert by_name["colour"]["p"] > 0.05


def test_recurring_directions_without_a_matching_attribute_are_unexplained():
    """A shuffled teacher keeps the within-class directions but loses the tie to the sample."""
    rows, labels, infos = constructed("attribute")
    measured = beyond_label(rows, labels, None, seed=0)
    assert v.beyond_label_verdict(measured)["code"] == "unexplained"
    codes, rng = encode(labels)[0], np.random.default_rng(3)
    shuffled = rows.copy()
    for c in range(K):
        members = np.flatnonzero(codes == c)
        shuffled[members] = rows[rng.permutation(members)]
    measured = beyond_label(shuffled, labels, infos, seed=0)
    assert v.beyond_label_verdict(measured)["code"] == "unexplained"
    assert not v.structured_attributes(measured)


# ---------------------------------------------------------------- CKA verdicts
@pytest.mark.parametrize("student_kind, expected", [("per-sample", "shared-per-sample"),
                                                    ("class-only", "shared-classes-only"), ("noise", "none")])
def test_cka_verdicts(student_kind, expected):
    rows, labels, _ = constructed("attribute")
    rng = np.random.default_rng(5)
    codes = encode(labels)[0]
    if student_kind == "per-sample":  # a linear view of the whole teacher, colour included
        student = rows @ rng.normal(size=(DIM, 8)) + rng.normal(0, 0.5, (len(rows), 8))
    elif student_kind == "class-only":  # the same classes, its own noise within them
        student = 2.0 * rng.normal(size=(K, 8))[codes] + rng.normal(0, 0.5, (len(rows), 8))
    else:
        student = rng.normal(size=(len(rows), 8))
    measured = cka_report(rows, student, labels, permutations=99, seed=0)
    assert v.cka_verdict(measured)["code"] == expected, measured
    assert 0 <= measured["within_class"]["cka"] <= 1 and len(measured["overall"]["null"]) == 99


# ---------------------------------------------------------------- quality vs reliability
def test_centroid_distance_leaves_the_sample_out():
    rows, labels, _ = constructed("attribute")
    codes, rows = encode(labels)[0], rows.astype(np.float64)
    x = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    others = x[codes == codes[7]].sum(axis=0) - x[7]
    expected = 1 - x[7] @ others / np.linalg.norm(others)
    assert centroid_distances(rows, labels)[7] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("relation, expected", [("far-is-poor", "informative"), ("random", "uninformative"),
                                                ("far-is-good", "inverted")])
def test_quality_verdicts(relation, expected):
    rows, labels, _ = constructed("attribute")
    rng = np.random.default_rng(2)
    distance = centroid_distances(rows, labels)
    quality = {"far-is-poor": -distance, "far-is-good": distance, "random": rng.uniform(size=len(rows))}[relation]
    measured = quality_reliability(quality + rng.normal(0, 0.01 * distance.std(), len(rows)), rows, labels)
    assert v.quality_verdict(measured)["code"] == expected
    if expected == "informative":
        assert measured["distance_low_quality"] > measured["distance_high_quality"]


def test_a_weak_but_significant_relation_is_weak():
    rows, labels, _ = constructed("attribute", seed=4)
    rng = np.random.default_rng(4)
    rows, labels = np.tile(rows, (8, 1)), labels * 8  # 768 samples: a small rho is significant
    distance = centroid_distances(rows, labels)
    quality = -distance / distance.std() + rng.normal(0, 8, len(distance))
    measured = quality_reliability(quality, rows, labels)
    assert measured["p"] < 0.05 and -0.2 < measured["spearman_rho"] < 0
    assert v.quality_verdict(measured)["code"] == "weak"


# ---------------------------------------------------------------- the stage, through the CLI
def write_constructed_workdir(workdir, kind: str, quality_relation: str | None = "far-is-poor"):
    rows, labels, infos = constructed(kind)
    samples = [Sample(id=f"s{i:03d}", label=label, split="train", text="x", info=info)
               for i, (label, info) in enumerate(zip(labels, infos))]
    write_manifest(workdir, samples, root=workdir, adapter="table")
    manifest = read_manifest(workdir)
    ids = [s.id for s in samples]
    components = teacher_components(TeacherConfig(kind="text"), manifest)
    with ShardWriter(store_dir(workdir, "teacher", components), components, dim=DIM, dtype="float32") as writer:
        writer.add(ids, rows)
    if quality_relation:
        from xmd_cli.quality import default_signals

        side = QualitySideConfig(modality="text")
        signals = [s.name for s in default_signals("text")]
        q_components = quality_components(side, manifest, signals)
        quality = 1 - centroid_distances(rows, labels)
        table = np.column_stack([quality] + [np.zeros(len(ids))] * len(signals)).astype(np.float32)
        with ShardWriter(store_dir(workdir, "quality", q_components), q_components, dim=table.shape[1],
                         dtype="float32") as writer:
            writer.add(ids, table)
    return ids


@pytest.mark.slow
def test_diagnose_command_writes_the_report_with_verdicts(tmp_path):
    write_constructed_workdir(tmp_path, "attribute")
    args = ["diagnose", "-w", str(tmp_path), "--set", "teacher.kind=text", "--set", "quality.teacher.modality=text",
            "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {k: x["code"] for k, x in report["verdicts"].items()} == {
        "separability": "separates", "beyond_label": "structured", "class_attributes": "no-attributes",
        "cka": "not-measured", "quality_reliability": "informative",
        "qaw_effective": "not-measured"}  # no speech quality store; no shared.* attribute
    class_level = {a["attribute"]: a for a in report["class_attributes"]["attributes"]}
    assert report["class_attributes"]["classes"] == K and "varies within a class" in class_level["colour"]["skipped"]
    assert "fewer than two values held by 3" in class_level["shape"]["skipped"]  # one class per shape
    out = tmp_path / "reports" / "run" / "diagnose"
    assert json.loads((out / "report.json").read_text())["verdicts"] == report["verdicts"]
    markdown = (out / "report.md").read_text()
    assert report["headline"] in markdown and "| colour | balanced_accuracy |" in markdown
    assert "## Attributes predicted from the class means" in markdown and "| shape | | | | | 6 | fewer" in markdown
    assert "Class-level attributes" in markdown and "| class-level attributes | 6 class means;" in markdown
    assert (out / "separability.png").stat().st_size > 1000 and (out / "quality-reliability.png").exists()
    assert report["samples"] == K * PER and report["teacher_kind"] == "text"


@pytest.mark.slow
def test_diagnose_says_what_to_run_when_a_store_is_missing(tmp_path):
    write_constructed_workdir(tmp_path, "one-hot", quality_relation=None)
    result = runner.invoke(app, ["diagnose", "-w", str(tmp_path), "--set", "teacher.kind=text", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdicts"]["beyond_label"]["code"] == "restates-label"
    assert report["headline"].startswith("The teacher mostly restates the label")
    assert report["verdicts"]["quality_reliability"]["code"] == "not-measured"
    assert "score-quality --modality face" in report["quality_reliability"]["skipped"]
    empty = tmp_path / "empty"
    write_manifest(empty, [Sample(id="a", label="x", split="train")], root=empty, adapter="table")
    result = runner.invoke(app, ["diagnose", "-w", str(empty), "--set", "teacher.kind=text"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no teacher store yet" in result.output and "xmd extract-teacher" in result.output


@pytest.mark.slow
def test_diagnose_with_a_student_alone_checkpoint(tmp_path):
    """Real path: synthetic-captions tiny, a tiny image student trained alone, CKA against a constructed teacher."""
    import torch

    from xmd_cli.console import Output
    from xmd_cli.inference import student_embeddings
    from xmd_cli.recipe import load_recipe
    from xmd_cli.stages.diagnose import run_diagnose
    from xmd_cli.stages.fit import run_fit
    from xmd_cli.stages.prepare import run_prepare
    from xmd_cli.teachers.checkpoint import CheckpointTeacher

    quiet = Output(verbosity=0)
    recipe = load_recipe(None, [], {
        "name": "alone", "data": {"adapter": "synthetic-captions", "tiny": True},
        "teacher": {"kind": "text"},
        "student": {"arch": "image-cnn", "modality": "image", "image_size": 32, "image_channels": [8, 16],
                    "embedding_dim": 16},
        "training": {"epochs": 1, "batch_size": 8, "warmup_steps": 1}})
    run_prepare(recipe, tmp_path)
    manifest = read_manifest(tmp_path)
    rng = np.random.default_rng(0)
    shapes = sorted({s.label for s in manifest.samples})
    colours = sorted({s.info["attributes"]["colour"] for s in manifest.samples})
    rows = np.stack([3 * np.eye(DIM)[shapes.index(s.label)] + 2 * np.eye(DIM)[8 + colours.index(
        s.info["attributes"]["colour"])] for s in manifest.samples]) + rng.normal(0, 0.3, (len(manifest.samples), DIM))
    components = teacher_components(recipe.teacher, manifest)
    with ShardWriter(store_dir(tmp_path, "teacher", components), components, dim=DIM, dtype="float32") as writer:
        writer.add([s.id for s in manifest.samples], rows)
    run_fit(recipe, tmp_path, kind="train", device="cpu", out=quiet)
    checkpoint = tmp_path / "runs" / "alone" / "checkpoints" / "best"

    report = run_diagnose(recipe, tmp_path, checkpoint=checkpoint, device="cpu", out=quiet)
    cka = report["cka"]
    assert cka["samples"] == len(manifest.samples) and cka["checkpoint_task"] == "train"
    assert cka["student_dim"] == 16 and 0 <= cka["overall"]["cka"] <= 1
    assert report["verdicts"]["cka"]["code"] in ("shared-per-sample", "shared-classes-only", "none")
    assert (tmp_path / "reports" / "alone" / "diagnose" / "cka.png").exists()

    # The student embeddings are the checkpoint network's, sample by sample, in the order asked.
    picked = [manifest.samples[5], manifest.samples[0]]
    embedded = student_embeddings(checkpoint, manifest, [s.id for s in picked], torch.device("cpu"))
    network = CheckpointTeacher(str(checkpoint), torch.device("cpu"))
    direct = np.concatenate(network.embed([network.load(s, manifest.root) for s in picked]))
    np.testing.assert_allclose(embedded, direct, atol=1e-5)
