"""Face quality: is this photo a good target for a face teacher?

MTCNN (facenet-pytorch; its weights ship in the wheel) finds the face, as the face
teacher does. The largest face is measured, as `MTCNN(keep_all=False)` picks it.
Signals:

- `detection`: MTCNN's probability that the box is a face. Occluded, rotated or
  barely visible faces get a lower one; no face at all forces the score to 0.
- `face_size`: shorter side of the face box in pixels of the original image.
- `sharpness`, `brightness`, `contrast`, `overexposed`: the image measures of
  `xmd_cli.quality.image`, on the aligned 160x160 crop (the box, no margin,
  resized as the teacher resizes it), so that only the face counts.
- `noise`: the image noise estimate on the face box at the photo's own
  resolution; resizing to 160 pixels would smooth noise away on small faces.
- `flat_area`: share of the crop, in 10x10-pixel blocks, without any detail
  (Laplacian standard deviation below 1 grey level). A face has detail almost
  everywhere at the crop's scale; an occluder (a hand, a scarf, a bar over the
  eyes), burnt-out or black-clipped skin, or heavy blur leaves flat blocks. The
  global sharpness barely notices an occluder, which is flat but has sharp edges.

A photo where MTCNN finds no face scores 0 only with `fallback="none"`. MTCNN
misses many drawn faces (a user's drawn faces: 511 of 952), and 0 for half of
the samples turns QAW off for them. By default (`fallback="image-stats"`) such a
photo scores `fallback_cap` times the whole frame's no-reference image quality
(`xmd_cli.quality.image.frame_quality`: sharpness, noise, exposure, contrast),
so a blurred or dark frame still scores near 0 while a clean face the detector
missed scores up to the cap, below a confidently detected clean face. The
fallback sees no face: an occluded face, or no face at all, in a sharp,
well-exposed frame also reaches the cap (docs/quality.md has the measurements).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
from scipy import ndimage

from xmd_cli.errors import XmdError
from xmd_cli.quality.combine import QualityResult, Scorer, Signal
from xmd_cli.quality.image import (
    BRIGHTNESS,
    CONTRAST,
    FRAME_SIGNALS,
    NOISE,
    OVEREXPOSED,
    SHARPNESS,
    as_rgb_image,
    frame_quality,
    grey,
    noise_sigma,
    sharpness,
    tone_signals,
)
from xmd_cli.vocab import FACE_FALLBACKS

CROP = 160  # the face teacher's input size (InceptionResnetV1)
FLAT_BLOCK = 10  # block side in crop pixels (16 x 16 blocks)
FLAT_LEVEL = 1.0  # grey levels: Laplacian std below this is "no detail" (sensor noise alone exceeds it)
MIN_IMAGE_SIDE = 20  # MTCNN's smallest face; a smaller image cannot hold one

DETECTION = Signal("detection", 0.8, 30.0, 1.0, "probability",
                   "MTCNN face probability; occluded or barely visible faces score lower")
FACE_SIZE = Signal("face_size", 32.0, 3.0, 1.0, "pixels",
                   "shorter side of the face box in the original image", scale="log2")
FLAT_AREA = Signal("flat_area", 0.3, -15.0, 1.0, "share",
                   "share of the face crop without detail (occluded, clipped or blurred away)")


def flat_area(laplacian: np.ndarray) -> float:
    side = laplacian.shape[0] // FLAT_BLOCK * FLAT_BLOCK
    blocks = laplacian[:side, :side].reshape(side // FLAT_BLOCK, FLAT_BLOCK, side // FLAT_BLOCK, FLAT_BLOCK)
    return float(np.mean(blocks.std(axis=(1, 3)) < FLAT_LEVEL))


def crop_signals(crop: np.ndarray) -> dict[str, float]:
    """Signals of an aligned face crop (CROP x CROP x 3, 0..255), all but `noise`."""
    g = grey(crop)
    laplacian = ndimage.laplace(g)
    # The noise that reaches the crop, to discount it from the sharpness.
    return {"sharpness": sharpness(laplacian, noise_sigma(g)), "flat_area": flat_area(laplacian),
            **tone_signals(g)}


class FaceScorer(Scorer):
    """Face quality from MTCNN's detection and the face crop; `fallback` scores photos without a detected face.

    `fallback` is "image-stats" (the default: `fallback_cap` times the whole
    frame's `frame_quality`, with this scorer's weights and mid-points for the
    image signals) or "none" (score 0).
    """

    modality = "face"
    DEFAULTS = (DETECTION, FACE_SIZE, SHARPNESS, FLAT_AREA, NOISE, BRIGHTNESS, CONTRAST, OVEREXPOSED)

    def __init__(self, weights=None, midpoints=None, *, key: str = "quality", device: str = "cpu",
                 batch_size: int = 16, fallback: str = "image-stats", fallback_cap: float = 0.25):
        super().__init__(weights, midpoints, key=key)
        if fallback not in FACE_FALLBACKS:
            raise XmdError(f"{key}.fallback: '{fallback}' is not a face fallback; choose one of "
                           f"{', '.join(FACE_FALLBACKS)}")
        if not 0 < fallback_cap <= 1:
            raise XmdError(f"{key}.fallback_cap: must be in (0, 1], got {fallback_cap}")
        self.device = device
        self.batch_size = batch_size
        self.fallback = fallback
        self.fallback_cap = float(fallback_cap)
        frame_names = {s.name for s in FRAME_SIGNALS}
        self.frame_signals = tuple(s for s in self.signals if s.name in frame_names)
        self._mtcnn = None

    @property
    def mtcnn(self):
        if self._mtcnn is None:  # lazily: importing torch and facenet-pytorch takes seconds
            from facenet_pytorch import MTCNN

            # margin 0: the crop is the face box itself, so an occluder or a dark
            # background outside the face does not count.
            self._mtcnn = MTCNN(image_size=CROP, margin=0, keep_all=False, post_process=False,
                                device=self.device)
        return self._mtcnn

    def score(self, item) -> QualityResult:
        return self.score_batch([item])[0]

    def score_batch(self, items: list) -> list[QualityResult]:
        """Score many images; MTCNN runs on batches of equal-sized images (its batch API requires it)."""
        window = 4 * self.batch_size  # decode only this many images at a time: bounded memory
        if len(items) > window:
            return [r for start in range(0, len(items), window) for r in self.score_batch(items[start:start + window])]
        results: list[QualityResult | None] = [None] * len(items)
        by_size: dict[tuple[int, int], list[tuple[int, object]]] = defaultdict(list)
        for i, item in enumerate(items):
            image = self.load(item, as_rgb_image)
            if isinstance(image, QualityResult):
                results[i] = image
            elif min(image.size) < MIN_IMAGE_SIDE:
                results[i] = self.failure(f"image is {image.width}x{image.height} pixels; too small to hold "
                                          f"a face (MTCNN needs at least {MIN_IMAGE_SIDE} pixels)")
            else:
                by_size[image.size].append((i, image))
        for group in by_size.values():
            for start in range(0, len(group), self.batch_size):
                chunk = group[start:start + self.batch_size]
                for (i, image), result in zip(chunk, self._score_images([image for _, image in chunk])):
                    results[i] = result
        return results

    def _score_images(self, images: list) -> list[QualityResult]:
        from facenet_pytorch.models.utils.detect_face import extract_face

        all_boxes, all_probs = self.mtcnn.detect(images)
        out = []
        for image, boxes, probs in zip(images, all_boxes, all_probs):
            if boxes is None:
                out.append(self.no_face(image))
                continue
            # detect() returns object arrays, largest face first (select_largest).
            box = np.asarray(boxes, dtype=np.float32)[0]
            probability = float(np.asarray(probs, dtype=np.float32)[0])
            # extract_face cuts the integer box clipped to the image, as the teacher's MTCNN does.
            region = (int(max(box[0], 0)), int(max(box[1], 0)),
                      int(min(box[2], image.width)), int(min(box[3], image.height)))
            if region[2] - region[0] < 2 or region[3] - region[1] < 2:
                out.append(self.failure("the face box lies outside the image", {"detection": probability}))
                continue
            crop = extract_face(image, box, CROP, 0).permute(1, 2, 0).numpy()
            values = {"detection": probability,
                      "face_size": float(min(box[2] - box[0], box[3] - box[1])),
                      "noise": noise_sigma(grey(np.asarray(image.crop(region)))),
                      **crop_signals(crop)}
            out.append(self.result(values))
        return out

    def no_face(self, image) -> QualityResult:
        """The result for a photo where MTCNN finds no face: 0, or the capped image-stats fallback.

        Parameters
        ----------
        image : PIL.Image.Image
            The whole photo.

        Returns
        -------
        QualityResult
            `detection` is 0 and the face signals are NaN (no crop was
            measured). The score is 0 with `fallback="none"`, else
            `fallback_cap * frame_quality(image)`; `reason` says which.
        """
        reason = "no face found (MTCNN)"
        result = self.failure(reason, {"detection": 0.0})
        if self.fallback == "none":
            return result
        quality, _ = frame_quality(image, self.frame_signals)
        return replace(result, score=self.fallback_cap * quality,
                       reason=f"{reason}; scored by the fallback image-stats: the whole frame's image quality "
                              f"{quality:.3f} x fallback_cap {self.fallback_cap:g}")
