"""Per-sample quality scorers: face, speech, image and text.

    scorer = get_scorer("speech", weights={"snr_db": 2.0}, midpoints={}, key="quality.student")
    result = scorer.score("utt.wav")        # QualityResult(score, signals, reason)
    results = scorer.score_batch(paths)

Each scorer measures named raw signals, squashes each with a logistic around a
mid-point and combines them by a weighted geometric mean into [0, 1]
(`xmd_cli.quality.combine`). Unusable input (silence, an unreadable file, empty
text; no face with the face fallback off) scores 0 with a reason and never
raises. A photo without a detected face scores by the face scorer's fallback
(its image statistics, capped) unless `fallback="none"`. The formula and the
default constants are in docs/quality.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xmd_cli.quality.combine import QualityResult, Scorer, Signal
from xmd_cli.registry import Registry
from xmd_cli.vocab import MODALITIES

if TYPE_CHECKING:
    from xmd_cli.recipe import QualitySideConfig

__all__ = ["MODALITIES", "SCORERS", "QualityResult", "Scorer", "Signal", "default_signals", "get_scorer",
           "scorer_for_side"]

# Imported on first use: the face scorer pulls in torch and facenet-pytorch.
SCORERS: Registry[type[Scorer]] = Registry("quality scorer", key="quality modality")
SCORERS.add("face", "xmd_cli.quality.face:FaceScorer")
SCORERS.add("speech", "xmd_cli.quality.speech:SpeechScorer")
SCORERS.add("image", "xmd_cli.quality.image:ImageScorer")
SCORERS.add("text", "xmd_cli.quality.text:TextScorer")


def default_signals(modality: str) -> tuple[Signal, ...]:
    """The signals of a modality with their default weights and mid-points."""
    return SCORERS.get(modality).DEFAULTS


def get_scorer(modality: str, weights: dict[str, float] | None = None, midpoints: dict[str, float] | None = None,
               *, key: str = "quality", **options) -> Scorer:
    """A scorer for `modality` with the defaults overridden by signal name.

    `key` is the recipe path the overrides came from (e.g. "quality.student"), so
    that an unknown signal is reported as `quality.student.weights.snr_dbb`.
    `options` go to the scorer (the face scorer takes `device`, `batch_size`,
    `fallback` and `fallback_cap`).
    """
    return SCORERS.get(modality)(weights, midpoints, key=key, **options)


def scorer_for_side(config: "QualitySideConfig", side: str, **options) -> Scorer:
    """The scorer of one side of a recipe's `quality` section (`side` is "teacher" or "student")."""
    if config.modality == "face":
        options = {"fallback": config.fallback, "fallback_cap": config.fallback_cap, **options}
    return get_scorer(config.modality, config.weights, config.midpoints, key=f"quality.{side}", **options)
