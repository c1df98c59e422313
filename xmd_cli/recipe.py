"""Typed recipes: the schema, YAML loading, `--set key=value` overrides, clear errors.

A recipe is one YAML file with the sections data, teacher, quality, student,
method, training and evaluation. Every field has a type and a default; an
unknown key or a wrong type is an `XmdError` naming the file, the line, the key
path and, for a typo, the nearest valid key. The YAML itself is read by
`xmd_cli.safe_yaml` (a SafeLoader with bounded aliases and nesting), so a recipe
can never run code or hang xmd.

Paths in a recipe are taken relative to the directory xmd is run from.
"""

from __future__ import annotations

import difflib
import math
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from xmd_cli.errors import XmdError
from xmd_cli.io import write_text
from xmd_cli.safe_yaml import decode, key_lines, parse_yaml
from xmd_cli.vocab import (
    ADAPTER_NAMES,
    FACE_FALLBACKS,
    INIT_LAYOUTS,
    MODALITIES,
    REAL_TEACHERS,
    STUDENT_ARCHS,
    TASKS,
    TEACHER_KINDS,
)

# Keys that were renamed: old path -> new path. A recipe may still use the old key;
# it is moved to the new one with a note on stderr.
RENAMED_KEYS = {("method", "classifier", "margin"): ("method", "classifier", "angular_margin")}


class Section(BaseModel):
    # extra="forbid": a typo is an error, never a silently ignored key.
    # validate_assignment: `--set` and code that edits a recipe stay typed.
    # allow_inf_nan=False: no setting means anything at inf or NaN (training.lr=inf trains nothing).
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# ---------------------------------------------------------------- data
class PersonsConfig(Section):
    """synthetic-persons: identities with a face and a voice (see docs/synthetic-persons.md)."""

    identities: int = Field(40, ge=4, description="number of identities")
    per_identity: int = Field(12, ge=2, description="samples (one face image + one utterance) per identity")
    test_identities: float = Field(0.25, gt=0, lt=1, description="share of identities held out for the test split")
    validation_per_identity: int = Field(2, ge=0, description="samples of each training identity kept for validation")
    degraded_fraction: float = Field(0.2, ge=0, le=1, description="share of each split's samples whose face is "
                                     "degraded, and, drawn independently, whose speech is degraded")
    image_size: int = Field(128, ge=64, description="face image side in pixels")
    sample_rate: int = Field(16000, ge=8000, le=48000, description="audio sample rate in Hz")
    trials_per_identity: int = Field(40, ge=2, description="verification trials per test identity (half target)")
    # The worlds of issue 13 (docs/synthetic-persons.md, "Worlds"): at these defaults the
    # generation is byte for byte what it was before these fields existed.
    population: Literal["students", "teacher-faces"] = Field(
        "students", description="students: identities with face and voice, the student's splits and trials; "
        "teacher-faces: a separate, larger population of face-only identities, disjoint from the students', "
        "to train a face teacher on")
    teacher_identities: int = Field(300, ge=2, description="teacher-faces: number of face-only identities")
    teacher_per_identity: int = Field(4, ge=2, description="teacher-faces: face images per identity "
                                      "(one of each is kept for validation)")
    test_per_identity: int | None = Field(None, ge=2, description="samples per test identity (default: "
                                          "per_identity), so training identities can have few utterances "
                                          "while test identities keep enough for trials")
    voice_shared_strength: float = Field(1.0, ge=0, le=1, description="how audible the shared attributes "
                                         "(gender, age, extra_shared) are in the voice: 1 as designed, 0 not at "
                                         "all; the face is unchanged")
    extra_shared: int = Field(0, ge=0, le=3, description="shared attributes beyond gender and age, shaping both "
                              "face and voice: the first N of build, lineage, vigour")
    recording_factor: float = Field(0.0, ge=0, le=1, description="strength of a per-recording factor (arousal) "
                                    "seen in both the face (smile, chin) and the utterance (pitch, rate, range) "
                                    "of the same sample; 0: none")


class CaptionsConfig(Section):
    """synthetic-captions: rendered objects with captions (see docs/synthetic-captions.md).

    The `tiny` preset (data.tiny) replaces classes, per_class and image_size with 4, 8 and 32.
    """

    classes: int = Field(10, ge=2, le=10, description="number of classes (shapes: circle, square, triangle, "
                         "star, cross, heart, diamond, hexagon, ring, crescent; the first N)")
    per_class: int = Field(40, ge=3, description="images per class")
    validation_fraction: float = Field(0.15, ge=0, lt=1, description="share of each class kept for validation")
    test_fraction: float = Field(0.25, ge=0, lt=1, description="share of each class kept for test")
    degraded_fraction: float = Field(0.2, ge=0, le=1, description="share of images that are blurred, dark or noisy")
    image_size: int = Field(64, ge=32, description="image side in pixels")
    # Composition and a long tail (docs/synthetic-captions.md, "Worlds"): at these defaults
    # the generation is byte for byte what it was before these fields existed.
    class_attributes: list[Literal["size", "colour", "texture", "shape"]] = Field(
        default_factory=lambda: ["shape"], description="attributes whose combination is the class; must "
        "include shape (e.g. [colour, shape]: classes like red-circle); the others vary per image")
    values_per_attribute: int | None = Field(None, ge=2, description="composed classes: the first N values of "
                                             "each class attribute other than shape (shape: `classes`); "
                                             "default all")
    held_out_combinations: int = Field(0, ge=0, description="composed classes kept out of training: all their "
                                       "images are test images (info.group held-out), and each of their "
                                       "attribute values is still seen in training, in other classes")
    tail_classes: int = Field(0, ge=0, description="classes of the long tail: they keep only 1 to "
                              "tail_train_max training images (info.group tail); validation and test as the rest")
    tail_train_max: int = Field(3, ge=1, description="tail class k (in class order) keeps 1 + k mod this "
                                "many training images")


class DataConfig(Section):
    adapter: Literal[ADAPTER_NAMES] = Field(
        "synthetic-persons", description="the kind of dataset to read: voxceleb, kaldi, imagefolder, table, "
        "or generated demo data (synthetic-persons, synthetic-captions)")
    root: str | None = Field(None, description="the dataset's folder; for generated data, where to write it "
                             "(default: WORKDIR/data/ADAPTER)")
    trials: list[str] = Field(default_factory=list, description="verification trial lists, VoxCeleb "
                              "`1 enroll test` or Kaldi/WeSpeaker `enroll test target|nontarget` (detected per "
                              "file); the identities they name become the test split")
    audio_dir: str = Field("wav", description="voxceleb: the audio folder below root")
    images_dir: str | None = Field(None, description="voxceleb: the face-frame folder below root, laid out like "
                                   "audio_dir")
    video_dir: str | None = Field(None, description="voxceleb: the video folder below root (VoxCeleb2's "
                                  "dev/mp4: <speaker>/<video>/<utt>.mp4); prepare takes face frames from each video")
    video_frames: int = Field(3, ge=1, le=64, description="voxceleb with video_dir: frames taken from each "
                              "utterance's video, evenly spaced")
    captions: str | None = Field(None, description="imagefolder: a captions file (TSV `relative/path<TAB>caption`) "
                                 "that gives each image its text")
    table: str | None = Field(None, description="table: the CSV or JSONL file listing the samples")
    columns: dict[str, str] = Field(default_factory=dict, description="table: which column holds each manifest "
                                    "field (id, label, split, audio, images, text, segment_start, segment_end)")
    split: Literal["train", "validation", "test"] | None = Field(
        None, description="put every sample in this split instead of assigning splits (e.g. a test-only set)")
    validation_fraction: float = Field(0.1, ge=0, lt=1, description="share of each training class held out "
                                       "for validation when the data names no split")
    test_fraction: float = Field(0.0, ge=0, lt=1, description="share of each class held out for test when the "
                                 "data names no split (imagefolder without split folders, a table without a split "
                                 "column); seeded by data.seed")
    seed: int = Field(0, description="seed of the split assignment and of generated data")
    tiny: bool = Field(False, description="generated data: the tiny preset the tests use (seconds to make)")
    persons: PersonsConfig = Field(default_factory=PersonsConfig)
    captions_data: CaptionsConfig = Field(default_factory=CaptionsConfig)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self):
        # Both shares come out of each class; together they must leave some of it to train on.
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError(f"validation_fraction {self.validation_fraction} + test_fraction {self.test_fraction} "
                             "leave nothing to train on; keep their sum below 1")
        return self


# ---------------------------------------------------------------- teacher and quality
class TeacherConfig(Section):
    kind: Literal[TEACHER_KINDS] = Field(
        "face", description="which teacher makes the embeddings: a network (face, text, checkpoint, dlib: "
        "pip install 'xmd[dlib]') or a "
        "control that tells whether a gain is the teacher's (class-mean, shuffled, random)")
    modality: Literal[MODALITIES] = Field("face", description="what the teacher sees of each sample")
    weights: str | None = Field(None, description="face: vggface2, casia-webface or a local file; "
                                "text: a sentence-transformers folder; checkpoint: a run's checkpoint folder")
    frames: Literal["mean", "all"] = Field("mean", description="samples with several images: store the mean "
                                           "embedding or one row per image")
    batch_size: int = Field(32, ge=1, description="samples the teacher embeds at once")
    dtype: Literal["float16", "float32"] = Field("float16", description="stored precision of the embeddings "
                                                 "(float16 halves the store and loses nothing a cosine sees)")
    shard_rows: int = Field(4096, ge=1, description="rows per shard file of the store")
    max_failure_rate: float = Field(0.1, ge=0, le=1, description="stop extraction when more than this share "
                                    "of samples cannot be embedded (no face, unreadable file)")
    # Control teachers (random, class-mean, shuffled) are derived from a real teacher's store;
    # see docs/diagnose.md for what an ablation with them tells.
    source_kind: Literal[REAL_TEACHERS] | None = Field(
        None, description="control teachers: the real teacher whose store they derive from "
        "(needed by class-mean and shuffled; random takes its dimension and sample ids from it when set)")
    source_weights: str | None = Field(None, description="control teachers: that real teacher's weights "
                                       "(as teacher.weights would be for it)")
    control_dim: int | None = Field(None, ge=1, description="random control without a source: the vector dimension")
    control_seed: int = Field(0, description="control teachers: seed of the random vectors and of the shuffle")


class QualitySideConfig(Section):
    modality: Literal[MODALITIES] = Field(description="what this side's quality scorer measures")
    weights: dict[str, float] = Field(default_factory=dict, description="signal name -> its weight in the "
                                      "combined score (docs/quality.md lists the signals)")
    midpoints: dict[str, float] = Field(default_factory=dict, description="signal name -> the value that scores "
                                        "0.5 on its logistic")
    fallback: Literal[FACE_FALLBACKS] = Field(
        "image-stats", description="face scorer: what a photo where MTCNN finds no face scores (drawn faces are "
        "often missed): image-stats (the whole frame's sharpness, noise, exposure and contrast, times "
        "fallback_cap) or none (0); other modalities ignore it")
    fallback_cap: float = Field(0.25, gt=0, le=1, description="face scorer, fallback image-stats: the most a photo "
                                "without a detected face can score (a clean detected demo face scores about 0.5)")


class QualityConfig(Section):
    teacher: QualitySideConfig = Field(default_factory=lambda: QualitySideConfig(modality="face"))
    student: QualitySideConfig = Field(default_factory=lambda: QualitySideConfig(modality="speech"))


# ---------------------------------------------------------------- student and method
class StudentConfig(Section):
    arch: Literal[STUDENT_ARCHS] = Field("ecapa", description="the student network: ecapa or resnet34 for "
                                         "speech, image-cnn or resnet18 for images")
    modality: Literal[MODALITIES] = Field("speech", description="what the student sees; must fit arch")
    embedding_dim: int = Field(192, ge=2, description="size of the embedding the student outputs")
    channels: list[int] = Field(default_factory=lambda: [512, 512, 512, 512, 1536],
                                description="ecapa: channels of its four blocks and the aggregation layer")
    width: Literal["quarter", "half", "full"] = Field("half", description="resnet34: width (full is "
                                                      "WeSpeaker's 32 channels in the first stage)")
    sample_rate: int = Field(16000, description="speech students: audio is resampled to this rate (Hz)")
    crop_seconds: float = Field(2.0, gt=0, description="speech students: length of the random crop each "
                                "utterance gives in training")
    n_mels: int = Field(80, description="speech students: mel bands of the fbank front end")
    attention_channels: int = Field(128, ge=1, description="ecapa: channels of its attentive statistics pooling")
    image_size: int = Field(128, ge=16, description="image students: input side in pixels "
                            "(e.g. 112 or 128 for faces, 64 for the synthetic-captions demo)")
    image_channels: list[int] = Field(default_factory=lambda: [32, 64, 128, 256],
                                      description="image-cnn: channels of its conv blocks")
    weights: str | None = Field(None, description="resnet18: a local torchvision state-dict file "
                                "to start from (nothing is downloaded)")
    # Published speaker encoders as a starting point (docs/training.md, "Starting from published weights").
    init: str | None = Field(None, description="speech students: start from these weights (a local file or "
                             "an xmd checkpoint folder) instead of a random initialisation")
    init_layout: Literal[INIT_LAYOUTS] = Field(
        "detect", description="how student.init names its parameters: speechbrain-ecapa (embedding_model.ckpt), "
        "wespeaker-resnet34 (avg_model.pt), xmd (a run's checkpoint), or detect from the file")


class FeatureLossConfig(Section):
    loss: Literal["none", "cosine", "l2"] = Field(
        "cosine", description="how far the student embedding may be from the projected teacher's: cosine "
        "distance, mean squared (l2) difference, or none (no feature-level term)")
    margin: float = Field(0.2, ge=0, description="distance the student may keep from the projected teacher "
                          "before it is pulled in (the soft constraint); 0 pulls every pair (the hard constraint)")
    weight: float = Field(1.0, ge=0, description="weight of the feature-level term in the total loss")

    @model_validator(mode="after")
    def _margin_within_reach(self):
        # A cosine distance never exceeds 2: a larger margin switches the term off without a word.
        if self.loss == "cosine" and self.margin >= 2:
            raise ValueError(f"margin {self.margin} is at or above 2, the largest cosine distance, so the feature "
                             "term would always be 0; use a margin in [0, 2), e.g. 0.2")
        return self


class ClassifierLossConfig(Section):
    kind: Literal["none", "shared", "teacher-generated", "logit-kd"] = Field(
        "shared", description="classifier-level term: shared (the projected teacher is classified by the "
        "student's own classifier), teacher-generated (as shared, but each class's row of that classifier is "
        "the projected mean teacher row of its training samples), logit-kd (the hard baseline: match softened "
        "teacher logits), or none")
    weight: float = Field(1.0, ge=0, description="weight of the classifier-level term in the total loss")
    temperature: float = Field(4.0, gt=0, description="logit-kd: softening temperature of both logits")
    scale: float = Field(30.0, gt=0, description="scale of the angular-margin softmax logits")
    angular_margin: float = Field(0.2, ge=0, lt=math.pi / 2, description="angle in radians added to the "
                                  "true class in the angular-margin (AAM, ArcFace) softmax; 0 is a plain "
                                  "cosine softmax")
    generated_weight: float = Field(1.0, ge=0, le=1, description="teacher-generated: share of the generated "
                                    "row in each class's classifier row; the rest is a learned row (1: "
                                    "generated only; classes without a teacher row always use the learned row)")
    margin_warmup_start_epoch: int = Field(0, ge=0, description="margin schedule (as WeSpeaker): the AAM margin "
                                           "is 0 before this epoch (0-based) ...")
    margin_warmup_end_epoch: int = Field(0, ge=0, description="... rises linearly to angular_margin by this "
                                         "epoch and stays there; 0: no schedule, the full margin from the start")

    @model_validator(mode="after")
    def _warmup_in_order(self):
        if self.margin_warmup_end_epoch and self.margin_warmup_end_epoch <= self.margin_warmup_start_epoch:
            raise ValueError(f"margin_warmup_end_epoch {self.margin_warmup_end_epoch} must be after "
                             f"margin_warmup_start_epoch {self.margin_warmup_start_epoch} (or 0: no schedule)")
        return self


class QAWConfig(Section):
    enabled: bool = Field(True, description="weight each sample's distillation terms by its face and voice "
                          "quality, so bad faces teach less")
    mode: Literal["power", "softmax"] = Field("power", description="how quality becomes a weight: "
                                              "quality^gamma, or a softmax over the batch at temperature tau")
    gamma: float = Field(1.0, ge=0, description="power mode: how sharply quality separates the weights "
                         "(0: all equal)")
    tau: float = Field(0.1, gt=0, description="softmax mode: temperature (smaller: sharper)")
    alpha: float = Field(1.0, ge=0, description="how much the teacher-side (face) quality counts")
    beta: float = Field(1.0, ge=0, description="how much the student-side (voice) quality counts")
    apply_to: list[Literal["feat", "cls_teacher", "cls_student", "relation"]] = Field(
        default_factory=lambda: ["feat", "cls_teacher"], description="the loss terms the weights scale "
        "(relation: each pair by w_i w_j)")
    min_effective_share: float = Field(0.5, ge=0, le=1, description="warn when the weights' effective sample "
                                       "size over the training set, (sum w)^2 / sum w^2, is below this share "
                                       "of its samples (a few samples then carry the teacher terms)")


class RelationConfig(Section):
    weight: float = Field(0.0, ge=0, description="weight of the relational term in the total loss (0: off)")
    margin: float = Field(0.1, ge=0, lt=2, description="difference between a student pair's cosine and the "
                          "teacher pair's that is left alone; only the excess counts (0: the hard constraint)")
    target: Literal["projected", "raw"] = Field("projected", description="the teacher pairs' cosines: of the "
                                                "projected embeddings P(t) (trains P too), or of the raw "
                                                "teacher embeddings t (a fixed target)")


class MethodConfig(Section):
    projection: Literal["mlp", "linear", "identity"] = Field(
        "mlp", description="the trainable head that maps teacher embeddings into the student's space: a "
        "two-layer mlp (the soft constraint), linear, or identity (equal dimensions only)")
    feature: FeatureLossConfig = Field(default_factory=FeatureLossConfig)
    classifier: ClassifierLossConfig = Field(default_factory=ClassifierLossConfig)
    qaw: QAWConfig = Field(default_factory=QAWConfig)
    relation: RelationConfig = Field(default_factory=RelationConfig)
    missing: Literal["stop", "drop", "no-distill"] = Field(
        "stop", description="a sample without teacher or quality row: stop and say how many (default), "
                            "drop it, or train it without distillation terms")


# ---------------------------------------------------------------- training and evaluation
class AugmentConfig(Section):
    """speechbrain.augment on training waveforms (docs/training.md, "Augmentation"); every switch off by default."""

    noise_dir: str | None = Field(None, description="add noise from the .wav files under this folder (any depth, "
                                  "e.g. MUSAN's noise/ music/ speech/)")
    noise_snr: list[float] = Field(default_factory=lambda: [0.0, 15.0], description="noise_dir: [low, high] dB "
                                   "the SNR is drawn from")
    rir_dir: str | None = Field(None, description="convolve with a room impulse response drawn from the .wav "
                                "files under this folder")
    speed: list[float] | None = Field(None, description="speed perturbation: factors drawn from, e.g. "
                                      "[0.9, 1.0, 1.1] (pitch and tempo change together)")
    drop_chunk: bool = Field(False, description="zero 1-3 random chunks of 100-1000 samples (speechbrain DropChunk)")
    drop_freq: bool = Field(False, description="notch out 1-3 random frequency bands (speechbrain DropFreq)")
    probability: float = Field(0.6, ge=0, le=1, description="chance that a training sample gets reverberation "
                               "or noise (one of the two when both rir_dir and noise_dir are set), as WeSpeaker's "
                               "aug_prob; drops and speed do not depend on it")

    @property
    def enabled(self) -> bool:
        return bool(self.noise_dir or self.rir_dir or self.speed or self.drop_chunk or self.drop_freq)


class TrainingConfig(Section):
    optimizer: Literal["adamw", "sgd"] = Field("adamw", description="the optimiser")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (after warm-up)")
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd: momentum")
    weight_decay: float = Field(1e-4, ge=0, description="decoupled weight decay (adamw) or L2 penalty (sgd)")
    epochs: int = Field(10, ge=1, description="passes over the training split")
    batch_size: int = Field(32, ge=1, description="global batch: split across processes under torchrun")
    warmup_steps: int = Field(100, ge=0, description="linear warm-up, then cosine decay to min_lr_ratio * lr")
    min_lr_ratio: float = Field(0.01, ge=0, le=1, description="the learning rate at the end, as a share of lr")
    grad_clip: float | None = Field(5.0, gt=0, description="clip the gradient norm; null: off")
    amp: bool = Field(True, description="bf16 autocast on CUDA (never on CPU)")
    checkpoint_every: int = Field(1, ge=1, description="epochs between periodic checkpoints")
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also checkpoint every N steps, "
                                               "so a crash loses at most N steps")
    log_every: int = Field(10, ge=1, description="steps between metrics.jsonl lines")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    noise_snr: list[float] | None = Field(None, description="[low, high] dB of the simple white/pink noise "
                                          "augmentation; off when empty (training.augment has file-based noise)")
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    encoder_lr_scale: float = Field(1.0, gt=0, le=1, description="fine-tuning: the student's learning rate as a "
                                    "share of lr (the new heads keep lr)")
    freeze: list[str] = Field(default_factory=list, description="fine-tuning: parameter-name prefixes that do not "
                              "train, e.g. student.encoder.net.blocks.0 (names as in weights.safetensors)")
    keep_last: int | None = Field(None, ge=1, description="keep only the newest N epoch-NNN checkpoints; "
                                  "null: keep all")
    average_last: int | None = Field(None, ge=2, description="after training, write checkpoints/averaged: the "
                                     "mean of the weights of the last N epoch-NNN checkpoints")
    train_fraction: float = Field(1.0, gt=0, le=1, description="train on this share of each class's "
                                  "training samples (seeded): the papers' little-data setting")
    tensorboard: bool = Field(False, description="also log to TensorBoard (needs the tensorboard package)")
    validation_trials: str | None = Field(None, description="open-set validation (validation identities unseen "
                                          "in training): a trial list of the work directory or a file over "
                                          "validation samples; default: pairs generated over the validation split")


class EvaluationConfig(Section):
    task: Literal[TASKS] = Field("speaker-verification", description="what `xmd evaluate` measures by default")
    trials: str | None = Field(None, description="trial list name in the work directory or a file")
    score_norm: Literal["none", "mean", "asnorm"] = Field("none", description="scoring back-end after cosine: "
                                                          "mean subtraction or AS-norm (cohort: training split)")
    asnorm_top_n: int = Field(100, ge=1, description="AS-norm: top-N cohort scores")
    cohort_utterances: int = Field(5000, ge=1, description="mean/AS-norm: at most this many train-split "
                                   "utterances embedded for the cohort (a seeded random subset)")
    p_targets: list[float] = Field(default_factory=lambda: [0.01, 0.05], description="minDCF operating points")
    matching_n_ways: list[int] = Field(default_factory=lambda: [2, 10], description="N of N-way matching (2 is 1:2)")
    recall_ks: list[int] = Field(default_factory=lambda: [1, 5, 10], description="retrieval recall@k")
    trials_per_probe: int = Field(10, ge=1, description="matching: random trials per probe")
    bootstrap: int = Field(1000, ge=0, description="bootstrap resamples for confidence intervals")
    checkpoint: Literal["best", "last"] = Field("best", description="which checkpoint of the run to evaluate")


class Recipe(Section):
    name: str = Field("run", description="name of the run directory")
    seed: int = Field(0, description="seed of initialisation, batch order and augmentation")
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)


# ---------------------------------------------------------------- loading
def _model_at(path: tuple) -> type[BaseModel] | None:
    """The schema class that holds the key at `path`, for nearest-key hints."""
    model: Any = Recipe
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(error: dict, source: str, lines: dict[tuple, int]) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), None)
    where = f"{source}:{line}" if line else source
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        valid = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
        hint = f"did you mean '{'.'.join(map(str, loc[:-1] + (close[0],)))}'?" if close else \
            f"valid keys here: {', '.join(valid)}"
        return f"{where}: unknown key '{key}'; {hint}"
    got = error.get("input")
    got_text = f" (got {got!r})" if not isinstance(got, dict) else ""
    return f"{where}: '{key}': {error['msg']}{got_text}"


def _validate(raw: dict, source: str, lines: dict[tuple, int]) -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as e:
        messages = [_describe(err, source, lines) for err in e.errors()]
        raise XmdError("invalid recipe:\n  " + "\n  ".join(messages),
                       hint="`xmd recipes show` prints every field with its type and default") from None


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """`training.lr=0.01` -> (('training', 'lr'), 0.01); the value is parsed as YAML."""
    if "=" not in text:
        raise XmdError(f"--set {text!r}: expected key=value, e.g. --set training.lr=0.01")
    key, value = text.split("=", 1)
    if not key.strip():
        raise XmdError(f"--set {text!r}: the key is empty")
    try:
        parsed = parse_yaml(value, f"--set {key.strip()}")[0] if value.strip() else None
    except XmdError as e:
        if "not valid YAML" not in e.message:
            raise  # bounded expansion applies to --set too
        parsed = value
    return tuple(key.strip().split(".")), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise XmdError(f"--set {text!r}: '{part}' is a value, not a section")
            else:  # a copy: a section shared through a YAML alias must change at this path only
                child = node[part] = dict(child)
            node = child
        node[path[-1]] = value
    return raw


def load_yaml(path: Path) -> tuple[dict, dict[tuple, int]]:
    """A recipe file's raw mapping and the line of each key; every fault of the file is an XmdError."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise XmdError(f"{path}: cannot read recipe ({e.strerror})",
                       hint="`xmd recipes list` shows the recipes that ship with xmd") from None
    raw, root = parse_yaml(decode(data, str(path)), str(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise XmdError(f"{path}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    return raw, key_lines(root)


def _rename_deprecated(raw: dict, source: str) -> dict:
    """Move values from renamed keys to their new names; both at once is an error."""
    for old, new in RENAMED_KEYS.items():
        parent = raw
        for part in old[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or old[-1] not in parent:
            continue
        old_key, new_key = ".".join(old), ".".join(new)
        if new[-1] in parent:
            raise XmdError(f"{source}: both '{old_key}' (deprecated) and '{new_key}' are set",
                           hint=f"keep only '{new_key}'")
        parent[new[-1]] = parent.pop(old[-1])
        print(f"note: {source}: '{old_key}' is deprecated; it is now '{new_key}' (same value, same meaning)",
              file=sys.stderr)
    return raw


def load_recipe(path: Path | str | None = None, overrides: list[str] | None = None,
                options: dict | None = None) -> Recipe:
    """Defaults <- recipe file <- `options` (a command's own flags) <- `--set` overrides."""
    raw, lines, source = {}, {}, "defaults"
    if path is not None:
        raw, lines = load_yaml(Path(path))
        source = str(path)
    if options:
        raw = deep_merge(raw, options)
    if overrides:
        raw = apply_overrides(raw, overrides)
        source = f"{source} with --set"
    return _validate(_rename_deprecated(raw, source), source, lines)


def deep_merge(into: dict, other: dict) -> dict:
    """`other` laid over `into`, section by section (a new dict; neither input changes)."""
    merged = dict(into)
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)


def save_resolved(recipe: Recipe, path: Path) -> Path:
    """Every run saves the recipe it actually ran with, all defaults filled in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a run's state check reads this file back, so a kill must never leave half of it.
    write_text(path, f"# resolved recipe written by xmd; rerun with --recipe {path.name}\n" + dump_recipe(recipe))
    return path
