"""The class-level attribute probe of `xmd diagnose`: class means predict what is constant within each class.

Constructed identities (40 classes x 4 samples, 16-d, seeded): each class has a centre;
`shared.gender` is the sign of a linear function of the centre plus noise, `face_only.glasses`
the sign of one (wide) coordinate; its samples are the centre plus noise. A shuffled attribute and an
attribute independent of the centres sit at the null.
"""

import numpy as np
import pytest

from xmd_cli.diagnose import verdicts as v
from xmd_cli.diagnose.class_attributes import class_attribute_probe, class_attributes, class_mean_rows, class_values

K, PER, DIM = 40, 4, 16


def identities(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, DIM)) * np.where(np.arange(DIM) == 3, 2.0, 1.0)  # glasses: a main axis
    gender = np.where(centres @ rng.normal(size=DIM) + rng.normal(0, 0.3, K) > 0, "f", "m")
    glasses = np.where(centres[:, 3] > 0, "yes", "no")
    accent = rng.choice(["north", "south"], K)  # drawn apart from the centres: nothing to find
    codes = np.repeat(np.arange(K), PER)
    rows = centres[codes] + rng.normal(0, 0.5, (K * PER, DIM))
    infos = [{"attributes": {"shared": {"gender": gender[c], "constant": "x"}, "face_only": {"glasses": glasses[c]},
                             "voice_only": {"accent": accent[c], "style": str(rng.choice(["calm", "lively"]))}}}
             for c in codes]
    return rows, [f"p{c:02d}" for c in codes], infos, centres, gender


def test_class_means_are_unit_means_of_unit_rows():
    rows, labels, _, _, _ = identities()
    codes = np.repeat(np.arange(K), PER)
    x = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    mean = x[codes == 7].mean(axis=0)
    np.testing.assert_allclose(class_mean_rows(rows, codes)[7], mean / np.linalg.norm(mean), atol=1e-12)
    assert class_values(["a", None, "a", "b"], np.array([0, 0, 0, 1])) == {0: "a", 1: "b"}
    assert class_values(["a", "b"], np.array([0, 0])) is None  # varies within class 0


def test_an_attribute_linear_in_the_class_means_is_found_and_a_shuffled_one_is_not():
    _, _, _, centres, gender = identities()
    means = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    found = class_attribute_probe(means, list(gender), seed=0)
    assert found["metric"] == "balanced_accuracy" and found["classes"] == K and found["folds"] == 5
    assert found["score"] > 0.7 and found["score"] - found["null_mean"] > 0.2 and found["p"] == pytest.approx(0.05)
    assert 0.35 < found["null_mean"] < 0.65  # two values: chance is 0.5
    shuffled = list(np.random.default_rng(9).permutation(gender))
    at_null = class_attribute_probe(means, shuffled, seed=0)
    assert at_null["score"] - at_null["null_mean"] < 0.1 and at_null["p"] > 0.05


def test_too_few_classes_or_a_single_value_is_skipped_with_why():
    _, _, _, centres, _ = identities()
    single = class_attribute_probe(centres, ["x"] * K)
    assert "single value" in single["skipped"] and "score" not in single
    rare = class_attribute_probe(centres[:6], ["a", "a", "b", "b", "c", "c"])
    assert "fewer than two values held by 3 or more classes" in rare["skipped"]
    kept = class_attribute_probe(centres[:9], ["a"] * 4 + ["b"] * 4 + ["c"], permutations=3)
    assert kept["left_out_classes"] == 1 and kept["classes"] == 8 and kept["folds"] == 4
    assert "skipped" in class_attributes(centres[:1], ["only"], [{}])


def test_the_class_level_table_and_verdict_group_by_kind():
    rows, labels, infos, _, _ = identities()
    measured = class_attributes(rows, labels, infos, seed=0)
    by_name = {a["attribute"]: a for a in measured["attributes"]}
    assert measured["classes"] == K
    assert "within a class" in by_name["voice_only.style"]["skipped"]  # per sample: the residual probe's case
    assert "single value" in by_name["shared.constant"]["skipped"]
    assert by_name["shared.gender"]["p"] <= 0.05 and by_name["face_only.glasses"]["score"] > 0.7
    assert by_name["voice_only.accent"]["p"] > 0.05
    assert set(v.found_class_attributes(measured)) == {"shared.gender", "face_only.glasses"}
    verdict = v.class_attributes_verdict(measured)
    assert verdict["code"] == "shared-found"
    assert "shared attributes (gender" in verdict["text"] and "face-only attributes (glasses" in verdict["text"]
    assert "voice-only at chance" in verdict["text"]

    # The same teacher with the identities' attributes shuffled over the classes: nothing shared is found.
    order = np.random.default_rng(4).permutation(K)
    moved = [infos[PER * order[i // PER]] for i in range(len(infos))]
    absent = v.class_attributes_verdict(class_attributes(rows, labels, moved, seed=0))
    assert absent["code"] == "shared-absent" and "carry no class-level attribute (shared, face-only" in absent["text"]
    only_face = {**measured, "attributes": [a for a in measured["attributes"] if a["attribute"].startswith("face")]}
    assert v.class_attributes_verdict(only_face)["code"] == "no-attributes"
    assert v.class_attributes_verdict({"skipped": "fewer than two classes"})["code"] == "no-attributes"


def test_summary_rows_show_the_class_level_row_and_survive_a_nan_direction_share():
    """A one-row-per-class teacher (a random control) has no residual: report.json holds None, not a number."""
    from xmd_cli.diagnose.report import summary_rows

    report = {"separability": {"skipped": "-"}, "cka": None, "quality_reliability": None, "verdicts": {
        "beyond_label": {"code": "restates-label"}, "class_attributes": {"code": "shared-absent"},
        "cka": {"code": "not-measured"}, "quality_reliability": {"code": "not-measured"}},
        "beyond_label": {"within_class_share": 0.0, "attributes": [],
                         "shared_directions": {"explained": None, "null_mean": None}},
        "class_attributes": {"classes": 8, "attributes": [{"attribute": "shared.gender", "score": 0.375,
                                                           "null_mean": 0.5, "p": 0.9}]}}
    rows = {name: (measured, code) for name, measured, code in summary_rows(report)}
    assert "recurring directions nan vs null nan" in rows["beyond the label"][0]
    assert rows["class-level attributes"] == ("8 class means; shared.gender 0.38 (null 0.50, p 0.90)", "shared-absent")


def test_a_negative_r2_is_never_found_however_bad_its_null():
    from xmd_cli.diagnose.verdicts import beats_null, found_class_attributes

    # Seen on the demo: ridge over 40 class means, age R^2 -0.49 against a null of -6.03 (p 0.05).
    age = {"attribute": "shared.age", "metric": "r2", "score": -0.49, "null_mean": -6.03, "p": 0.05}
    assert not beats_null(age)
    assert beats_null({**age, "score": 0.30, "null_mean": -0.2})
    gender = {"attribute": "shared.gender", "metric": "balanced_accuracy", "score": 0.62, "null_mean": 0.50, "p": 0.05}
    assert beats_null(gender) and not beats_null({**gender, "p": 0.10})
    assert found_class_attributes({"attributes": [age, gender]}) == ["shared.gender"]
