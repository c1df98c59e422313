"""report.json / report.md carry every number and how it was obtained; --compare lines them up."""

import json

import numpy as np
import pytest

from xmd_cli.errors import XmdError
from xmd_cli.metrics.classification import classification_summary
from xmd_cli.metrics.matching import matching_summary
from xmd_cli.metrics.report import (
    compare_reports,
    format_value,
    report_rows,
    write_report,
)
from xmd_cli.metrics.verification import verification_summary


def verification_report(outdir, shift, backend="cosine"):
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.5
    scores = rng.normal(labels * shift, 1.0)
    metrics = verification_summary(scores, labels)
    return write_report(outdir, task="speaker-verification", backend=backend, metrics=metrics,
                        fingerprints={"checkpoint": "ab12", "manifest": "cd34"}, seeds={"evaluation": 0},
                        plots={"det": "det.png"})


def test_report_holds_every_number_and_its_provenance(tmp_path):
    json_path, md_path = verification_report(tmp_path / "a", 2.0, backend="cosine+asnorm(top=300)")
    report = json.loads(json_path.read_text())
    assert report["backend"] == "cosine+asnorm(top=300)"
    assert report["fingerprints"] == {"checkpoint": "ab12", "manifest": "cd34"}
    assert report["seeds"] == {"evaluation": 0}
    assert 0 < report["metrics"]["eer"] < 0.5 and "min_dcf_raw@0.05" in report["metrics"]
    text = md_path.read_text()
    assert "`cosine+asnorm(top=300)`" in text and "fingerprint `checkpoint`: `ab12`" in text
    assert f"| eer | {100 * report['metrics']['eer']:.2f} % |" in text
    assert "![det](det.png)" in text


def test_matching_and_classification_reports(tmp_path):
    rng = np.random.default_rng(1)
    identity = np.repeat(np.arange(6), 4)
    s = rng.normal(size=(24, 8))
    summary = matching_summary(s, s + 0.5 * rng.normal(size=s.shape), identity, n_ways=(2,), bootstrap=50)
    json_path, md_path = write_report(tmp_path / "m", task="cross-modal-matching", backend="cosine",
                                      metrics=summary["metrics"], protocol=summary["protocol"],
                                      fingerprints={}, seeds={"matching": 0})
    assert "| metric | value [95 % CI] | chance |" in md_path.read_text()
    rows = dict((name, (value, chance)) for name, value, chance in report_rows(json.loads(json_path.read_text())))
    assert rows["match_1:2_s2t"][1] == "50.00 %" and "[" in rows["match_1:2_s2t"][0]

    scores = rng.normal(size=(30, 3))
    labels = rng.integers(0, 3, 30)
    c = classification_summary(scores, labels, ["a", "b", "c"])
    _, md_path = write_report(tmp_path / "c", task="classification", backend="argmax", metrics=c,
                              fingerprints={}, seeds={})
    text = md_path.read_text()
    assert "## per_class" in text and "| a |" in text


def test_non_finite_thresholds_stay_strict_json(tmp_path):
    # All scores equal: the EER operating point is "accept everything", threshold -inf.
    metrics = verification_summary(np.zeros(4), [1, 0, 1, 0])
    assert metrics["eer_threshold"] == -np.inf
    json_path, _ = write_report(tmp_path, task="speaker-verification", backend="cosine", metrics=metrics,
                                fingerprints={}, seeds={})
    assert json.loads(json_path.read_text())["metrics"]["eer_threshold"] == "-inf"


def test_compare_sets_reports_side_by_side(tmp_path):
    a, _ = verification_report(tmp_path / "baseline", 1.0)
    b, _ = verification_report(tmp_path / "distilled", 2.0, backend="cosine+mean")
    columns, rows = compare_reports([a, tmp_path / "distilled"])
    assert columns == ["metric", "baseline", "distilled"]
    table = {row[0]: row[1:] for row in rows}
    assert table["backend"] == ("cosine", "cosine+mean")
    eers = [json.loads(p.read_text())["metrics"]["eer"] for p in (a, b)]
    assert table["eer"] == tuple(format_value("eer", e) for e in eers)
    assert eers[1] < eers[0]


def test_compare_rejects_what_is_not_a_report(tmp_path):
    a, _ = verification_report(tmp_path / "a", 1.0)
    (tmp_path / "bad.json").write_text('{"metrics": 3')
    (tmp_path / "other.json").write_text('{"foo": 1}')
    with pytest.raises(XmdError, match="bad.json:1: not valid JSON"):
        compare_reports([a, tmp_path / "bad.json"])
    with pytest.raises(XmdError, match="other.json: not an xmd report"):
        compare_reports([a, tmp_path / "other.json"])
    with pytest.raises(XmdError, match="cannot read report"):
        compare_reports([a, tmp_path / "missing" / "report.json"])
    with pytest.raises(XmdError, match="at least two"):
        compare_reports([a])
