"""Image and text quality, and the combination rules every scorer shares."""

import math

import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image, ImageFilter

from xmd_cli.errors import XmdError
from xmd_cli.quality import default_signals, get_scorer, scorer_for_side
from xmd_cli.quality.combine import Signal, combine
from xmd_cli.recipe import QualitySideConfig


@pytest.fixture(scope="module")
def photo():
    data = cbook.get_sample_data("grace_hopper.jpg")  # an open file in this matplotlib
    try:
        return Image.open(data).convert("RGB").resize((128, 150), Image.Resampling.LANCZOS)
    finally:
        if hasattr(data, "close"):
            data.close()


def _pixels(image, f):
    return Image.fromarray(np.clip(f(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8))


DEGRADATIONS = {
    "blur": lambda im, s: im.filter(ImageFilter.GaussianBlur(s)),
    "noise": lambda im, s: _pixels(im, lambda p: p + np.random.default_rng(2).normal(0, s, p.shape)),
    "dark": lambda im, s: _pixels(im, lambda p: p * s),
    "overexposed": lambda im, s: _pixels(im, lambda p: p + s),  # brighter, highlights burn out
}
# A light blur (radius < 1) only denoises, and the photo is dim: brightening it
# only hurts once its highlights burn out; the steps start where damage does.
STRENGTHS = {"blur": [1, 2, 3, 5], "noise": [10, 25, 40, 60], "dark": [0.5, 0.3, 0.15, 0.06],
             "overexposed": [100, 130, 160, 200]}


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
def test_image_score_falls_with_each_degradation(photo, kind):
    scorer = get_scorer("image")
    clean = scorer.score(photo)
    assert clean.reason is None and clean.score > 0.8
    scores = [clean.score] + [r.score for r in scorer.score_batch([DEGRADATIONS[kind](photo, s)
                                                                   for s in STRENGTHS[kind]])]
    assert all(b <= a for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] < 0.3, scores


def test_image_unreadable_or_tiny_scores_zero(tmp_path):
    scorer = get_scorer("image")
    corrupt = tmp_path / "x.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    for item, words in ((corrupt, "not readable"), (tmp_path / "gone.png", "not found"),
                        (Image.new("RGB", (4, 4)), "at least 8x8")):
        result = scorer.score(item)
        assert result.score == 0.0 and words in result.reason
        assert all(math.isnan(v) for v in result.signals.values())


def test_text_scores(tmp_path):
    scorer = get_scorer("text")
    good = scorer.score("two small red circles with a striped texture at the top")
    assert good.reason is None and good.score > 0.9 and good.signals["words"] == 11
    one_word = scorer.score("circle")
    file_name = scorer.score("IMG_2041.JPG")
    assert one_word.score < 0.05 and file_name.score < 0.5 * good.score
    for text, words in (("", "empty"), ("  \n\t", "empty"), ("#### -- ##", "no words")):
        result = scorer.score(text)
        assert result.score == 0.0 and words in result.reason
    caption = tmp_path / "caption.txt"
    caption.write_text("a large blue star in the center", encoding="utf-8")
    assert scorer.score(caption).score == pytest.approx(scorer.score("a large blue star in the center").score)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait".encode("latin-1"))
    broken = scorer.score(latin1)
    assert broken.score == 0.0 and str(latin1) in broken.reason and "UTF-8" in broken.reason


def test_squash_and_product():
    up = Signal("a", 10.0, 0.5, 1.0, "dB", "")
    down = Signal("b", 0.01, -2.0, 2.0, "share", "", scale="log2")
    assert up.squash(10.0) == pytest.approx(0.5) and up.squash(30.0) > 0.99 and up.squash(-10.0) < 0.01
    assert down.squash(0.01) == pytest.approx(0.5) and down.squash(0.0) > 0.999 and down.squash(0.08) < 0.02
    assert up.squash(float("nan")) < 1e-9 and up.squash(-1e6) > 0  # never exactly 0: ln stays finite
    values = {"a": 12.0, "b": 0.02}
    assert combine(values, [up, down]) == pytest.approx(up.squash(12.0) * down.squash(0.02) ** 2)
    off = Signal("b", 0.01, -2.0, 0.0, "share", "", scale="log2")
    assert combine(values, [up, off]) == pytest.approx(up.squash(12.0))


def test_overrides_are_checked_by_name():
    with pytest.raises(XmdError) as error:
        get_scorer("face", midpoints={"sharpnes": 1.0}, key="quality.teacher")
    message = str(error.value)
    assert "quality.teacher.midpoints.sharpnes" in message
    assert "did you mean 'quality.teacher.midpoints.sharpness'" in message
    assert "valid signals: detection, face_size, sharpness" in message
    with pytest.raises(XmdError, match=r"quality.student.weights.snr_db: a weight must be"):
        get_scorer("speech", weights={"snr_db": -1}, key="quality.student")
    with pytest.raises(XmdError, match=r"quality.student.midpoints.duration: the mid-point must be > 0"):
        get_scorer("speech", midpoints={"duration": 0}, key="quality.student")
    with pytest.raises(XmdError, match="every text signal has weight 0"):
        get_scorer("text", weights={"words": 0, "letter_ratio": 0})
    with pytest.raises(XmdError, match="quality modality 'smell' is not known"):
        get_scorer("smell")


def test_recipe_side_builds_its_scorer():
    side = QualitySideConfig(modality="text", weights={"letter_ratio": 0.0}, midpoints={"words": 8})
    scorer = scorer_for_side(side, "student")
    assert {s.name: (s.weight, s.midpoint) for s in scorer.signals} == {"words": (1.0, 8.0), "letter_ratio": (0.0, 0.6)}
    assert scorer.score("a red square").score < get_scorer("text").score("a red square").score
    assert [s.name for s in default_signals("speech")] == ["snr_db", "active_ratio", "clipping", "over_range",
                                                           "duration"]


def test_docs_list_the_default_constants():
    from pathlib import Path

    from xmd_cli.quality.combine import describe

    text = (Path(__file__).resolve().parent.parent / "docs" / "quality.md").read_text()
    for modality in ("face", "speech", "image", "text"):
        assert describe(default_signals(modality)) in text, f"docs/quality.md: {modality} table is stale"
