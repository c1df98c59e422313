"""`xmd evaluate` end to end through the real Typer app, on the tiny demo data sets.

Module fixtures train once: a tiny ECAPA on synthetic-persons (speaker
verification), a tiny image-cnn `train` run and a `distill` run from the text
teacher on synthetic-captions (classification, cross-modal matching).
"""

import hashlib
import json
import shutil

import numpy as np
import pytest
from deploy_fixtures import flat, xmd

from xmd_cli.metrics.verification import verification_summary
from xmd_cli.shards.format import read_meta
from xmd_cli.stages.evaluation.verification import nearest_centroid_identification

# The fixtures train the checkpoints that are evaluated.
pytestmark = pytest.mark.slow

ECAPA = ["--set", "student.arch=ecapa", "--set", "student.modality=speech",
         "--set", "student.channels=[32,32,32,32,96]", "--set", "student.attention_channels=16",
         "--set", "student.embedding_dim=32", "--set", "training.epochs=1", "--set", "training.batch_size=8",
         "--set", "student.crop_seconds=0.5"]
IMAGE = ["--set", "student.image_size=32", "--set", "student.image_channels=[8,8,16,16]",
         "--set", "student.embedding_dim=16", "--set", "training.epochs=1", "--set", "training.batch_size=8",
         "--set", "method.qaw.enabled=false"]


@pytest.fixture(scope="module")
def persons(tmp_path_factory):
    work = tmp_path_factory.mktemp("persons")
    xmd("prepare", "synthetic-persons", "--tiny", "-w", work, "-q")
    xmd("train", "-w", work, "--device", "cpu", "--set", "name=sv", *ECAPA, "-q")
    return work


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    work = tmp_path_factory.mktemp("captions")
    xmd("prepare", "synthetic-captions", "--tiny", "-w", work, "-q")
    xmd("train", "-r", "demo-captions", "-w", work, "--device", "cpu", "--set", "name=cls", *IMAGE, "-q")
    xmd("extract-teacher", "-r", "demo-captions", "-w", work, "--device", "cpu", "-q")
    xmd("distill", "-r", "demo-captions", "-w", work, "--device", "cpu", "--set", "name=dc", *IMAGE, "-q")
    return work


@pytest.fixture(scope="module")
def sv_report(persons):
    result = xmd("evaluate", "-w", persons, "--device", "cpu", "--set", "name=sv", "--json")
    return json.loads(result.stdout)


def test_speaker_verification_report(persons, sv_report):
    report_dir = persons / "reports" / "sv-speaker-verification"
    on_disk = json.loads((report_dir / "report.json").read_text())
    assert on_disk["metrics"] == sv_report["metrics"] and on_disk["backend"] == "cosine"
    metrics, protocol = on_disk["metrics"], on_disk["protocol"]
    assert 0 <= metrics["eer"]["value"] <= 1 and metrics["min_dcf@0.01"]["value"] >= 0 and "min_dcf@0.05" in metrics
    assert metrics["eer"]["ci_low"] <= metrics["eer"]["value"] <= metrics["eer"]["ci_high"]
    assert protocol["bootstrap_unit"] == "identity" and (report_dir / "scores.npz").exists()
    trial_lines = (persons / "trials" / "synthetic-persons.txt").read_text().split("\n")
    assert protocol["n_trials"] == len([line for line in trial_lines if line.strip()])
    assert 0 <= metrics["top1_identification"] <= 1 and "identification" in protocol
    assert (report_dir / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checkpoint = persons / "runs" / "sv" / "checkpoints" / "best"
    weights_sha = hashlib.sha256((checkpoint / "weights.safetensors").read_bytes()).hexdigest()
    assert on_disk["fingerprints"]["checkpoint_weights_sha256"] == weights_sha
    assert on_disk["fingerprints"]["manifest_sha256"] == on_disk["fingerprints"]["checkpoint_manifest_sha256"]
    assert protocol["identities_seen_in_training"] == 0  # test speakers are unseen
    assert "| eer |" in (report_dir / "report.md").read_text()


def test_asnorm_cohort_and_compare(persons, sv_report, tmp_path):
    out = tmp_path / "asnorm"
    result = xmd("evaluate", "-w", persons, "--device", "cpu", "--set", "name=sv", "--out", out, "--json",
                 "--set", "evaluation.score_norm=asnorm", "--set", "evaluation.asnorm_top_n=2",
                 "--set", "evaluation.cohort_utterances=6", "--seed", "3")
    report = json.loads(result.stdout)
    assert report["backend"] == "cosine+asnorm(top=2)" and 0 <= report["metrics"]["eer"]["value"] <= 1
    assert report["protocol"]["cohort"].startswith("train split, 6 utterances") and report["seeds"]["seed"] == 3
    compared = json.loads(xmd("evaluate", "--compare", sv_report["report_json"],
                              out / "report.json", "--json").stdout)
    assert compared["columns"] == ["metric", "sv-speaker-verification", "asnorm"]
    assert compared["rows"][0] == ["task", "speaker-verification", "speaker-verification"]
    assert compared["rows"][1] == ["backend", "cosine", "cosine+asnorm(top=2)"]
    eer_row = next(row for row in compared["rows"] if row[0] == "eer")
    assert eer_row[1].startswith(f"{100 * sv_report['metrics']['eer']['value']:.2f} % [")
    assert compared["paired"]["metrics"]["eer"][0]["verdict"] in ("better", "worse", "not resolved")


def test_score_file_is_measured_by_the_same_scorer(persons, tmp_path):
    trials = persons / "trials" / "synthetic-persons.txt"
    lines = [line.split() for line in trials.read_text().splitlines() if line.strip()]
    rng = np.random.default_rng(0)
    labels = np.array([int(parts[0]) for parts in lines])
    scores = labels + rng.normal(0, 0.8, labels.size)
    (tmp_path / "sys.txt").write_text("".join(f"{e} {t} {s:.6f}\n" for (_, e, t), s in zip(lines, scores)))
    result = xmd("evaluate", "-w", tmp_path / "nowhere", "--scores", tmp_path / "sys.txt", "--trials", trials,
                 "--out", tmp_path / "r", "--json")
    report = json.loads(result.stdout)
    expected = verification_summary(np.round(scores, 6), labels)
    assert report["backend"] == "score-file" and report["metrics"]["eer"] == pytest.approx(expected["eer"])
    assert report["metrics"]["min_dcf@0.01"] == pytest.approx(expected["min_dcf@0.01"])
    assert report["protocol"]["layout"] == "enroll test score" and (tmp_path / "r" / "det.png").exists()
    # `label score` lines need no trial list and give the same numbers.
    (tmp_path / "ls.txt").write_text("".join(f"{l} {s:.6f}\n" for l, s in zip(labels, scores)))
    same = json.loads(xmd("evaluate", "-w", tmp_path, "--scores", tmp_path / "ls.txt", "--out", tmp_path / "r2",
                          "--json").stdout)
    assert same["metrics"]["eer"] == report["metrics"]["eer"] and "trials_file" not in same["protocol"]
    # A score line naming a trial the list lacks names file:line.
    (tmp_path / "bad.txt").write_text(f"{lines[0][1]} {lines[0][2]} 0.5\nnobody/1 nobody/2 0.1\n")
    bad = xmd("evaluate", "-w", tmp_path, "--scores", tmp_path / "bad.txt", "--trials", trials, code=1)
    assert "bad.txt:2: trial nobody/1 nobody/2 is not in the trial list" in flat(bad.output)


def test_bad_trial_lists_name_file_and_line(persons, tmp_path):
    first = (persons / "trials" / "synthetic-persons.txt").read_text().splitlines()[0]
    (tmp_path / "unknown.txt").write_text(f"{first}\n1 {first.split()[1]} ghost/07\n")
    result = xmd("evaluate", "-w", persons, "--set", "name=sv", "--trials", tmp_path / "unknown.txt", code=1)
    assert "unknown.txt:2: trial names 'ghost/07', which is not in the manifest" in flat(result.output)
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    result = xmd("evaluate", "-w", persons, "--set", "name=sv", "--trials", tmp_path / "empty.txt", code=1)
    assert "empty.txt: the trial list is empty" in flat(result.output)
    result = xmd("evaluate", "-w", persons, "--set", "name=sv", "--trials", "vox1-O", code=1)
    assert "--trials vox1-O: neither a file nor a trial list" in flat(result.output)


def test_classification_report(captions):
    result = xmd("evaluate", "-r", "demo-captions", "-w", captions, "--set", "name=cls", "--device", "cpu",
                 "--task", "classification", "--json")
    report = json.loads(result.stdout)
    metrics = report["metrics"]
    confusion = np.array(metrics["confusion"])
    assert report["backend"] == "classifier-cosine" and confusion.shape == (4, 4)
    assert confusion.sum() == report["protocol"]["n_samples"] == 8  # the tiny test split
    assert metrics["top1"]["value"] == pytest.approx(np.trace(confusion) / confusion.sum())
    assert metrics["top1"]["ci_low"] <= metrics["top1"]["value"] <= metrics["top1"]["ci_high"]
    assert set(metrics["per_class"]) == {"circle", "square", "star", "triangle"}
    assert (captions / "reports" / "cls-classification" / "confusion.png").exists()


def test_cross_modal_matching_report(captions):
    result = xmd("evaluate", "-r", "demo-captions", "-w", captions, "--set", "name=dc", "--device", "cpu",
                 "--task", "cross-modal-matching", "--set", "evaluation.bootstrap=50", "--json")
    report = json.loads(result.stdout)
    pair = report["metrics"]["match_1:2_s2t"]
    assert pair["chance"] == 0.5 and pair["ci_low"] <= pair["value"] <= pair["ci_high"]
    for name in ("match_1:2_t2s", "verification_eer", "verification_auc", "recall@1_s2t", "recall@5_t2s"):
        assert 0 <= report["metrics"][name]["value"] <= 1
    meta = json.loads((captions / "runs" / "dc" / "checkpoints" / "best" / "meta.json").read_text())
    assert report["fingerprints"]["teacher_store"] == meta["teacher_fingerprint"]
    assert report["protocol"]["samples"] == 8 and report["protocol"]["bootstrap"] == 50
    # The captions' test classes are training classes: the report says so.
    assert report["protocol"]["identities_seen_in_training"] == 4 and report["protocol"]["notes"]


def test_rewritten_teacher_store_needs_allow_stale(captions, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(captions / "runs" / "dc" / "checkpoints" / "best", copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["teacher_fingerprint"] = "0" * 64
    (copy / "meta.json").write_text(json.dumps(meta))
    args = ["evaluate", "-r", "demo-captions", "-w", captions, "--checkpoint", copy, "--device", "cpu",
            "--task", "cross-modal-matching", "--set", "evaluation.bootstrap=0", "--out", tmp_path / "r"]
    assert "but the checkpoint was distilled with 000000000000" in flat(xmd(*args, code=1).output)
    report = json.loads(xmd(*args, "--allow-stale", "--json").stdout)
    assert any("--allow-stale" in note for note in report["protocol"]["notes"])
    store = captions / "teacher" / meta["teacher_store"].rsplit("/", 1)[-1]
    assert report["fingerprints"]["teacher_store"] == read_meta(store)["fingerprint"]


def test_checkpoints_made_for_another_task_are_refused(persons, captions, tmp_path):
    distilled = captions / "runs" / "dc" / "checkpoints" / "best"
    result = xmd("evaluate", "-w", persons, "--checkpoint", distilled, "--task", "speaker-verification", code=1)
    assert "image student): speaker verification needs a speech student" in flat(result.output)
    trained = captions / "runs" / "cls" / "checkpoints" / "best"
    result = xmd("evaluate", "-w", captions, "--checkpoint", trained, "--task", "cross-modal-matching", code=1)
    assert "only `xmd distill` trains a projection head" in flat(result.output)
    speech = persons / "runs" / "sv" / "checkpoints" / "best"
    result = xmd("evaluate", "-w", persons, "--checkpoint", speech, "--task", "classification", code=1)
    assert "test label(s) are not among them" in flat(result.output)
    # A checkpoint of another manifest whose classes overlap the evaluated ones.
    copy = tmp_path / "other"
    shutil.copytree(trained, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["manifest_sha256"] = "f" * 64
    (copy / "meta.json").write_text(json.dumps(meta))
    result = xmd("evaluate", "-w", captions, "--checkpoint", copy, "--task", "classification", code=1)
    assert "was trained on another manifest" in flat(result.output)


def test_nearest_centroid_identification_leaves_the_probe_out():
    # Identity a: two orthogonal utterances; b: one between them. With the probe inside its own
    # centroid a/0 would find a (cosine 0.71 > 0.6); left out, a's centroid is a/1 alone and b wins.
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    result = nearest_centroid_identification(embeddings, ["a", "a", "b"])
    assert result["top1_identification"] == 0.0 and result["identification_probes"] == 2
    clusters = np.repeat(np.eye(6), 3, axis=0) + 0.01
    result = nearest_centroid_identification(clusters, [str(i) for i in np.repeat(np.arange(6), 3)])
    assert result["top1_identification"] == 1.0 and result["top5_identification"] == 1.0


def test_saved_scores_and_embeddings_rescore_to_the_same_eer(persons, sv_report, tmp_path):
    scores, embeddings = tmp_path / "sv.scores", tmp_path / "sv.npz"
    saved = json.loads(xmd("evaluate", "-w", persons, "--device", "cpu", "--set", "name=sv", "--out", tmp_path / "r",
                           "--save-scores", scores, "--save-embeddings", embeddings, "--json").stdout)
    assert saved["metrics"]["eer"] == sv_report["metrics"]["eer"]  # saving changes nothing measured
    assert saved["protocol"]["saved"] == {"scores": str(scores), "embeddings": str(embeddings)}
    trials = [line.split() for line in (persons / "trials" / "synthetic-persons.txt").read_text().splitlines()]
    lines = [line.split() for line in scores.read_text().splitlines()]
    assert [(e, t, "target" if k == "1" else "nontarget") for k, e, t in trials] == [(e, t, k) for e, t, _, k in lines]
    # Read back by the score-file path: in the work directory (its trial list and speakers, so the identity
    # bootstrap runs too) the same metrics and intervals; elsewhere (labels from the file) the same values.
    rescored = json.loads(xmd("evaluate", "-w", persons, "--scores", scores, "--out", tmp_path / "s1",
                              "--json").stdout)
    alone = json.loads(xmd("evaluate", "-w", tmp_path / "nowhere", "--scores", scores, "--out", tmp_path / "s2",
                           "--json").stdout)
    assert rescored["protocol"]["layout"] == alone["protocol"]["layout"] == "enroll test score label"
    for metric in ("eer", "min_dcf@0.01", "min_dcf@0.05"):
        assert rescored["metrics"][metric] == saved["metrics"][metric], metric
        assert alone["metrics"][metric] == saved["metrics"][metric]["value"], metric
    with np.load(embeddings) as data:
        ids, rows = list(data["ids"]), data["embeddings"]
    assert sorted(ids) == sorted({name for _, e, t in trials for name in (e, t)}) and rows.shape == (len(ids), 32)
    # The same vectors `xmd embed` writes for those utterances.
    xmd("embed", persons, "-c", persons / "runs" / "sv" / "checkpoints" / "best", "-o", tmp_path / "all.npz", "-q")
    with np.load(tmp_path / "all.npz") as data:
        by_id = dict(zip(data["ids"], data["embeddings"]))
    np.testing.assert_allclose(rows, np.stack([by_id[i] for i in ids]), rtol=1e-5, atol=1e-6)


def test_save_flags_are_refused_where_nothing_is_saved(persons, tmp_path):
    result = xmd("evaluate", "-w", persons, "--scores", tmp_path / "x.txt", "--save-scores", tmp_path / "s", code=1)
    assert "--save-scores saves a checkpoint's speaker-verification scores" in flat(result.output)
    result = xmd("evaluate", "-w", persons, "--set", "name=sv", "--save-embeddings", tmp_path / "no" / "e.npz",
                 code=1)
    assert f"--save-embeddings {tmp_path / 'no' / 'e.npz'}: folder" in flat(result.output)
