"""Cosine scoring, mean subtraction, AS-norm, and score files written elsewhere."""

import json

import numpy as np
import pytest

from xmd_cli.data.manifest import Trial, read_trials
from xmd_cli.errors import XmdError
from xmd_cli.metrics.scorefile import read_scores, score_file
from xmd_cli.metrics.scoring import backend_name, score_trials
from xmd_cli.metrics.verification import verification_summary


def embeddings_and_trials(seed=0, speakers=6, per_speaker=4, dim=8):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(speakers, dim))
    embeddings, speaker_of = {}, {}
    for s in range(speakers):
        for u in range(per_speaker):
            name = f"spk{s}/utt{u}"
            embeddings[name] = centers[s] + 0.7 * rng.normal(size=dim) + 2.0  # a shared offset
            speaker_of[name] = s
    names = sorted(embeddings)
    trials = [Trial(int(speaker_of[a] == speaker_of[b]), a, b)
              for i, a in enumerate(names) for b in names[i + 1:]]
    return embeddings, trials


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_cosine_and_mean_subtraction_match_a_direct_loop():
    embeddings, trials = embeddings_and_trials()
    plain = score_trials(embeddings, trials)
    assert plain.backend == "cosine"
    np.testing.assert_allclose(plain.scores, [cosine(embeddings[t.enroll], embeddings[t.test]) for t in trials])
    np.testing.assert_array_equal(plain.labels, [t.target == 1 for t in trials])
    mean = np.mean(list(embeddings.values()), axis=0)
    centred = score_trials(embeddings, trials, norm="mean", mean=mean)
    assert centred.backend == "cosine+mean"
    np.testing.assert_allclose(centred.scores,
                               [cosine(embeddings[t.enroll] - mean, embeddings[t.test] - mean) for t in trials])
    # The shared offset inflates every cosine; removing it separates speakers better.
    assert verification_summary(centred.scores, centred.labels)["eer"] < \
        verification_summary(plain.scores, plain.labels)["eer"]


def asnorm_loop(embeddings, trials, cohort, top_n):
    """AS-norm written out trial by trial, as in its paper."""
    def stats(x):
        top = sorted((cosine(x, c) for c in cohort), reverse=True)[:top_n]
        return np.mean(top), np.std(top)

    out = []
    for t in trials:
        e, x = embeddings[t.enroll], embeddings[t.test]
        s = cosine(e, x)
        (mu_e, sd_e), (mu_t, sd_t) = stats(e), stats(x)
        out.append(0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t))
    return out


@pytest.mark.parametrize("top_n", [2, 5, 12])
def test_asnorm_matches_a_direct_loop(top_n):
    embeddings, trials = embeddings_and_trials(seed=1)
    cohort = np.random.default_rng(7).normal(size=(12, 8)) + 2.0
    result = score_trials(embeddings, trials, norm="asnorm", cohort=cohort, top_n=top_n)
    assert result.backend == f"cosine+asnorm(top={top_n})"
    np.testing.assert_allclose(result.scores, asnorm_loop(embeddings, trials, cohort, top_n), rtol=1e-10)


def test_asnorm_with_mean_shifts_the_cohort_too():
    embeddings, trials = embeddings_and_trials(seed=2)
    cohort = np.random.default_rng(3).normal(size=(10, 8)) + 2.0
    mean = np.full(8, 2.0)
    result = score_trials(embeddings, trials, norm="asnorm", mean=mean, cohort=cohort, top_n=4)
    assert result.backend == "cosine+mean+asnorm(top=4)"
    shifted = {k: v - mean for k, v in embeddings.items()}
    np.testing.assert_allclose(result.scores, asnorm_loop(shifted, trials, cohort - mean, 4), rtol=1e-10)


def test_asnorm_settings_are_checked():
    embeddings, trials = embeddings_and_trials()
    with pytest.raises(XmdError, match="asnorm_top_n = 50, but the cohort has 10"):
        score_trials(embeddings, trials, norm="asnorm", cohort=np.ones((10, 8)), top_n=50)
    with pytest.raises(XmdError, match="needs a cohort"):
        score_trials(embeddings, trials, norm="asnorm")
    with pytest.raises(XmdError, match="needs a mean"):
        score_trials(embeddings, trials, norm="mean")
    with pytest.raises(XmdError, match="unknown score normalisation"):
        backend_name("znorm")


def test_unknown_utterance_names_the_trial_file_line(tmp_path):
    embeddings, _ = embeddings_and_trials()
    path = tmp_path / "trials.txt"
    path.write_text("# a comment\n1 spk0/utt0 spk0/utt1\n\n0 spk0/utt0 nobody/utt9\n")
    trials = read_trials(path)
    with pytest.raises(XmdError, match=rf"{path}:4: utterance 'nobody/utt9' has no embedding"):
        score_trials(embeddings, trials, trials_path=path)


def test_empty_trial_list_is_a_clear_error(tmp_path):
    embeddings, _ = embeddings_and_trials()
    with pytest.raises(XmdError, match="trials.txt: the trial list is empty"):
        score_trials(embeddings, [], trials_path=tmp_path / "trials.txt")
    (tmp_path / "scores.txt").write_text("# nothing\n\n")
    with pytest.raises(XmdError, match="the score file is empty"):
        read_scores(tmp_path / "scores.txt")


def test_zero_embedding_is_a_clear_error():
    embeddings, trials = embeddings_and_trials()
    embeddings["spk0/utt0"] = np.zeros(8)
    with pytest.raises(XmdError, match="'spk0/utt0' has zero length"):
        score_trials(embeddings, trials)


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_score_file_formats_agree(tmp_path):
    rng = np.random.default_rng(4)
    pairs = [(f"e{i % 7}", f"t{i}") for i in range(60)]
    labels = rng.random(60) < 0.4
    labels[:2] = [True, False]
    scores = np.round(rng.normal(labels * 1.0, 1.0), 3)
    trials = write(tmp_path / "trials.txt", [f"{int(y)} {e} {t}" for (e, t), y in zip(pairs, labels)])
    kaldi = write(tmp_path / "trials.kaldi", [f"{e} {t} {'target' if y else 'nontarget'}"
                                              for (e, t), y in zip(pairs, labels)])
    # The score file lists trials in another order than the trial list: matched by name.
    order = rng.permutation(60)
    three = write(tmp_path / "s3.txt", [f"{pairs[i][0]} {pairs[i][1]} {scores[i]}" for i in order])
    four = write(tmp_path / "s4.txt", [f"{e} {t} {s} {'target' if y else 'nontarget'}"
                                       for (e, t), s, y in zip(pairs, scores, labels)])
    two = write(tmp_path / "s2.txt", [f"{int(y)} {s}" for s, y in zip(scores, labels)])
    expected = verification_summary(scores, labels)
    for scores_path, trials_path in ((three, trials), (three, kaldi), (four, None), (two, None)):
        result = score_file(scores_path, trials_path)
        assert result["eer"] == expected["eer"]
        assert result["min_dcf@0.01"] == expected["min_dcf@0.01"]
        assert result["backend"] == "score-file" and len(result["scores_sha256"]) == 64
    json.dumps(result)  # JSON-ready for report.json


def test_score_file_writes_a_det_plot(tmp_path):
    lines = [f"{i % 2} {0.01 * i + 0.3 * (i % 2)}" for i in range(40)]
    result = score_file(write(tmp_path / "s.txt", lines), None, det_png=tmp_path / "det.png")
    assert (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG" and result["det_png"].endswith("det.png")


@pytest.mark.parametrize("lines,message", [
    (["e1 t1 0.5", "e1 t2 zero"], r"s.txt:2: score 'zero' is not a number"),
    (["e1 t1 0.5", "e1 t2"], r"s.txt:2: 2 fields, but the file's first line has 3"),
    (["e1 t1 0.5", "e1 t1 0.7"], r"s.txt:2: trial e1 t1 is scored twice"),
    (["e1 t1 0.5", "e9 t1 0.7"], r"s.txt:2: trial e9 t1 is not in the trial list"),
    (["e1 t1 0.5"], r"trials.txt:2: trial e1 t2 has no score .*1 of 2 trials are unscored"),
    (["e1 t1 0.5", "e1 t2 nan"], r"s.txt:2: score 'nan' is not finite"),
    (["a b c d e"], r"s.txt:1: expected `label score`"),
])
def test_bad_score_files_name_the_line(tmp_path, lines, message):
    trials = write(tmp_path / "trials.txt", ["1 e1 t1", "0 e1 t2"])
    with pytest.raises(XmdError, match=message):
        read_scores(write(tmp_path / "s.txt", lines), trials)


def test_labels_are_required(tmp_path):
    with pytest.raises(XmdError, match="carry no labels"):
        read_scores(write(tmp_path / "s.txt", ["e1 t1 0.5"]))
    with pytest.raises(XmdError, match=r"s.txt:2: label 'maybe'"):
        read_scores(write(tmp_path / "s.txt", ["1 0.5", "maybe 0.2"]))
    with pytest.raises(XmdError, match=r"trials.txt:2: trial e1 t1 repeats line 1"):
        read_scores(write(tmp_path / "s.txt", ["e1 t1 0.5"]),
                    write(tmp_path / "trials.txt", ["1 e1 t1", "0 e1 t1"]))


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_fast_and_general_readers_agree_on_values_and_lines(tmp_path, newline):
    # Plain \n files without comments take the vectorised reader; CRLF or # lines the
    # per-line one. Both must give the same numbers and name the same line.
    lines = ["1 0.9", "", "0 0.1", "1 0.4", "0 0.5"]
    plain = tmp_path / "plain.txt"
    plain.write_bytes(newline.join(lines).encode() + newline.encode())
    commented = tmp_path / "commented.txt"
    commented.write_bytes(newline.join(["# system A", *lines]).encode() + newline.encode())
    for path in (plain, commented):
        scores, labels, _ = read_scores(path)
        np.testing.assert_array_equal(scores, [0.9, 0.1, 0.4, 0.5])
        np.testing.assert_array_equal(labels, [True, False, True, False])
    bad = ["1 0.9", "", "0 0.1 extra", "1 0.4"]
    for suffix in ("", "\n# a comment"):
        path = tmp_path / "bad.txt"
        path.write_bytes((newline.join(bad) + suffix + newline).encode())
        with pytest.raises(XmdError, match=r"bad.txt:3: 3 fields, but the file's first line has 2"):
            read_scores(path)
