"""The face scorer's fallback for photos where MTCNN finds no face (drawn faces are often missed).

MTCNN is replaced by a detector that finds nothing, so these run in the fast tier;
tests/test_quality_face.py runs the real one.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from pydantic import ValidationError

from xmd_cli.data.synthetic.degrade import degrade_face
from xmd_cli.data.synthetic.faces import Shot, render_face
from xmd_cli.data.synthetic.identities import make_identities
from xmd_cli.errors import XmdError
from xmd_cli.quality import get_scorer, scorer_for_side
from xmd_cli.quality.image import frame_quality
from xmd_cli.quality.store import quality_components
from xmd_cli.recipe import QualitySideConfig, load_recipe


@pytest.fixture(scope="module")
def faces():
    """A drawn face as synthetic-persons draws it (128 px), and its blurred and darkened versions."""
    person = make_identities(1, 0)[0]
    shot = Shot(yaw=0.1, pitch=0.0, roll_deg=3.0, scale=1.0, shift=(0.0, 0.0), light_angle=1.0, light=0.2,
                brightness=1.0, warmth=0.0, smile=0.3, clothes=(120, 60, 60), background_seed=1, noise_seed=2)
    clean, box = render_face(person.face, shot, 128)
    # The weakest strength synthetic-persons draws (0.4): the smallest damage the scorer must see.
    blurred = degrade_face(clean, {"kind": "blur", "strength": 0.4, "seed": 3}, box)
    dark = degrade_face(clean, {"kind": "dark", "strength": 0.4, "seed": 3}, box)
    return {"clean": clean, "blurred": blurred, "dark": dark}


class _FindsNothing:
    """Stands in for MTCNN on a drawn face it misses."""

    def detect(self, images):
        return [None] * len(images), [None] * len(images)


def _blind_scorer(**options):
    scorer = get_scorer("face", key="quality.teacher", **options)
    scorer._mtcnn = _FindsNothing()
    return scorer


def test_frame_quality_ranks_a_clean_drawn_face_over_its_blurred_and_dark_versions(faces):
    clean, values = frame_quality(faces["clean"])
    blurred, dark = frame_quality(faces["blurred"])[0], frame_quality(faces["dark"])[0]
    assert clean > 0.8, values
    assert blurred < 0.25 * clean and dark < 0.25 * clean, (clean, blurred, dark)
    assert set(values) == {"sharpness", "noise", "brightness", "contrast", "overexposed"}


def test_no_face_scores_the_capped_fallback_or_zero_when_off(faces):
    on = _blind_scorer()
    results = on.score_batch([faces["clean"], faces["blurred"], faces["dark"]])
    clean = results[0]
    assert clean.score == pytest.approx(0.25 * frame_quality(faces["clean"])[0], rel=1e-6)
    assert 0.2 < clean.score <= 0.25, clean
    assert "no face found" in clean.reason and "fallback image-stats" in clean.reason
    assert clean.signals["detection"] == 0.0 and np.isnan(clean.signals["sharpness"])
    assert results[1].score < 0.25 * clean.score and results[2].score < 0.25 * clean.score
    assert _blind_scorer(fallback_cap=0.5).score(faces["clean"]).score == pytest.approx(2 * clean.score)
    off = _blind_scorer(fallback="none").score(faces["clean"])
    assert off.score == 0.0 and off.reason == "no face found (MTCNN)"


def test_fallback_uses_the_recipe_weights_of_the_image_signals(faces):
    default = _blind_scorer().score(faces["dark"]).score
    brightness_ignored = _blind_scorer(weights={"brightness": 0.0, "contrast": 0.0, "sharpness": 0.0,
                                                "noise": 0.0}).score(faces["dark"]).score
    assert default < 0.05 and brightness_ignored > 0.2


def test_recipe_switch_reaches_scorer_and_store_fingerprint():
    recipe = load_recipe(None, ["quality.teacher.modality=face", "quality.teacher.fallback=none"])
    assert recipe.quality.teacher.fallback == "none" and load_recipe(None, []).quality.teacher.fallback == "image-stats"
    assert scorer_for_side(recipe.quality.teacher, "teacher").fallback == "none"
    capped = QualitySideConfig(modality="face", fallback_cap=0.1)
    assert scorer_for_side(capped, "teacher").fallback_cap == 0.1
    manifest = SimpleNamespace(fingerprint="0" * 64)  # all quality_components reads of it
    names = ["detection"]
    on = quality_components(QualitySideConfig(modality="face"), manifest, names)
    off = quality_components(recipe.quality.teacher, manifest, names)
    assert on["fallback"] == "image-stats" and off["fallback"] == "none" and on != off
    assert on != quality_components(capped, manifest, names)
    # Scorers without a fallback keep the fingerprint they had.
    assert "fallback" not in quality_components(QualitySideConfig(modality="speech"), manifest, names)
    with pytest.raises((XmdError, ValidationError), match="fallback"):
        load_recipe(None, ["quality.teacher.modality=face", "quality.teacher.fallback=zero"])
    with pytest.raises(XmdError, match="quality.teacher.fallback_cap"):
        get_scorer("face", key="quality.teacher", fallback_cap=0.0)
