"""Teachers on real inputs: the face in grace_hopper.jpg, paraphrase ranking, offline errors."""

from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from matplotlib import cbook
from PIL import Image

from xmd_cli.data.manifest import Sample
from xmd_cli.errors import XmdError
from xmd_cli.recipe import TeacherConfig
from xmd_cli.teachers import SampleFailure, build_teacher

# Loads and runs the face and text teacher networks.
pytestmark = pytest.mark.slow

CPU = torch.device("cpu")
GRACE = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="module")
def face_weights(tmp_path_factory):
    # No pretrained face weights can be downloaded here: a seeded random network in
    # facenet's own state-dict format exercises the same loading and embedding path.
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "face.pt"
    torch.save(InceptionResnetV1().state_dict(), path)
    return path


def test_face_teacher_finds_and_embeds_grace_hopper(face_weights, tmp_path):
    teacher = build_teacher(TeacherConfig(kind="face", weights=str(face_weights)), CPU)
    Image.new("RGB", (160, 160), (128, 128, 128)).save(tmp_path / "blank.png")
    samples = [Sample("grace", "g", "test", images=[str(GRACE), str(GRACE)]),
               Sample("blank", "b", "test", images=[str(tmp_path / "blank.png")])]
    grace, blank = teacher.embed([teacher.load(s, Path("/")) for s in samples])
    assert grace.shape == (2, 512) and np.allclose(np.linalg.norm(grace, axis=1), 1, atol=1e-4)
    assert np.allclose(grace[0], grace[1], atol=1e-5)  # same frame, same embedding
    assert isinstance(blank, SampleFailure) and "no face" in blank.reason
    fingerprint = teacher.fingerprint()
    assert fingerprint["teacher"] == "face" and len(fingerprint["weights_sha256"]) == 64


def test_face_teacher_unreadable_frame_is_a_sample_failure(face_weights, tmp_path):
    teacher = build_teacher(TeacherConfig(kind="face", weights=str(face_weights)), CPU)
    fake = tmp_path / "fake.jpg"
    fake.write_text("not an image")
    with pytest.raises(SampleFailure, match="fake.jpg"):
        teacher.load(Sample("x", "x", "test", images=[str(fake)]), Path("/"))


def test_pretrained_weights_offline_is_a_clear_error(monkeypatch, tmp_path):
    import facenet_pytorch.models.inception_resnet_v1 as facenet

    def refuse(url, destination, *args, **kwargs):
        raise URLError("network unreachable")

    monkeypatch.setattr(facenet, "download_url_to_file", refuse)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(XmdError, match="cannot download facenet's weights") as e:
        build_teacher(TeacherConfig(kind="face", weights="vggface2"), CPU)
    assert "20180402-114759-vggface2.pt" in str(e.value)


def test_missing_local_weights_file(tmp_path):
    with pytest.raises(XmdError, match="no such file"):
        build_teacher(TeacherConfig(kind="face", weights=str(tmp_path / "none.pt")), CPU)


def test_text_teacher_ranks_paraphrase_above_unrelated():
    teacher = build_teacher(TeacherConfig(kind="text"), CPU)
    texts = ["A man is playing a guitar on stage.", "Someone performs a song on an acoustic guitar.",
             "The central bank raised interest rates again."]
    rows = teacher.embed([teacher.load(Sample(str(i), "c", "train", text=t), Path(".")) for i, t in enumerate(texts)])
    a, b, c = (r[0] / np.linalg.norm(r[0]) for r in rows)
    assert a @ b > a @ c + 0.3
    with pytest.raises(SampleFailure, match="no text"):
        teacher.load(Sample("e", "c", "train", text="  "), Path("."))
