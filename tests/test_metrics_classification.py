"""Top-k, per-class accuracy and the confusion matrix."""

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import top_k_accuracy_score

from xmd_cli.errors import XmdError
from xmd_cli.metrics.classification import classification_summary, top_k_accuracy
from xmd_cli.metrics.plots import confusion_matrix_png


def noisy_scores(seed, n=300, classes=12):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    scores = rng.normal(size=(n, classes))
    scores[np.arange(n), labels] += 1.5
    return scores, labels


@pytest.mark.parametrize("seed", range(3))
def test_top_k_and_confusion_equal_sklearn_without_ties(seed):
    scores, labels = noisy_scores(seed)
    for k in (1, 2, 5):
        assert top_k_accuracy(scores, labels, k) == pytest.approx(
            top_k_accuracy_score(labels, scores, k=k, labels=range(12)))
    summary = classification_summary(scores, labels)
    np.testing.assert_array_equal(summary["confusion"],
                                  sk_confusion_matrix(labels, scores.argmax(1), labels=range(12)))
    assert summary["top1"] == pytest.approx(np.trace(summary["confusion"]) / labels.size)


def test_per_class_accuracy_on_a_known_matrix():
    # Class 0: 2 of 2 right; class 1: 1 of 3 right; class 2: no samples.
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([[3, 1, 0], [2, 1, 0], [0, 2, 1], [2, 1, 0], [0, 1, 2]], dtype=float)
    summary = classification_summary(scores, labels, ["cat", "dog", "owl"], ks=(1, 2))
    assert summary["per_class"] == {"cat": 1.0, "dog": pytest.approx(1 / 3), "owl": None}
    assert summary["mean_per_class_accuracy"] == pytest.approx((1 + 1 / 3) / 2)
    assert summary["top1"] == pytest.approx(3 / 5)
    assert summary["top2"] == pytest.approx(1.0)
    assert summary["confusion"] == [[2, 0, 0], [1, 1, 1], [0, 0, 0]]
    assert "top5" not in summary  # 3 classes: top-5 would be 1 by construction


def test_ties_count_against_the_model():
    # A model that scores every class alike knows nothing: it is wrong until k covers all.
    scores = np.zeros((4, 6))
    labels = np.array([0, 1, 2, 3])
    assert top_k_accuracy(scores, labels, 1) == 0.0
    assert top_k_accuracy(scores, labels, 5) == 0.0
    assert top_k_accuracy(scores, labels, 6) == 1.0


def test_bad_input_is_a_clear_error():
    with pytest.raises(XmdError, match="class indices 0..2"):
        classification_summary(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(XmdError, match="2 score rows but 3 labels"):
        top_k_accuracy(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(XmdError, match="2 class names for 3"):
        classification_summary(np.zeros((2, 3)), np.array([0, 1]), ["a", "b"])
    with pytest.raises(XmdError, match="no samples"):
        top_k_accuracy(np.zeros((0, 3)), np.array([], dtype=int))


def test_confusion_png(tmp_path):
    scores, labels = noisy_scores(0, classes=5)
    summary = classification_summary(scores, labels)
    path = confusion_matrix_png(tmp_path / "confusion.png", summary["confusion"], summary["class_names"])
    assert path.read_bytes()[:4] == b"\x89PNG"
