"""Typed recipes: the schema, YAML loading, `--set key=value` overrides, clear errors.

A recipe is one YAML file with the sections data, teacher, quality, student,
method, training and evaluation. Every field has a type and a default; an
unknown key or a wrong type is an `XmdError` naming the file, the line, the key
path and, for a typo, the nearest valid key. Only `yaml.safe_load`-style parsing
is used, so a recipe can never run code.

Paths in a recipe are taken relative to the directory xmd is run from.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xmd_cli.errors import XmdError


class Section(BaseModel):
    # extra="forbid": a typo is an error, never a silently ignored key.
    # validate_assignment: `--set` and code that edits a recipe stay typed.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


Adapter = Literal["voxceleb", "kaldi", "imagefolder", "table", "synthetic-persons", "synthetic-captions"]


class DataConfig(Section):
    adapter: Adapter = Field("synthetic-persons", description="how to read the dataset")
    root: str | None = Field(None, description="dataset root; for synthetic data, where to generate it "
                             "(default: WORKDIR/data/ADAPTER)")
    trials: list[str] = Field(default_factory=list, description="trial lists (VoxCeleb format); "
                              "identities named in them form the test split")
    audio_dir: str = Field("wav", description="voxceleb: audio tree below root")
    images_dir: str | None = Field(None, description="voxceleb: face-frame tree below root, parallel to audio_dir")
    captions: str | None = Field(None, description="imagefolder: captions file (TSV `relative/path<TAB>caption`)")
    table: str | None = Field(None, description="table: the CSV or JSONL file")
    columns: dict[str, str] = Field(default_factory=dict, description="table: manifest field -> column name "
                                    "(id, label, split, audio, images, text, segment_start, segment_end)")
    split: Literal["train", "validation", "test"] | None = Field(
        None, description="put every sample in this split instead of assigning splits")
    validation_fraction: float = Field(0.1, ge=0, lt=1, description="share of each training class kept "
                                       "for validation when the data names no split")
    seed: int = Field(0, description="seed of split assignment and of synthetic data")
    tiny: bool = Field(False, description="synthetic data: the tiny preset used by tests")
    persons: PersonsConfig = Field(default_factory=PersonsConfig)
    captions_data: CaptionsConfig = Field(default_factory=CaptionsConfig)


# ---------------------------------------------------------------- teacher and quality
class TeacherConfig(Section):
    kind: Literal["face", "text", "checkpoint", "random", "class-mean", "shuffled"] = Field(
        "face", description="which teacher makes the embeddings")
    modality: Literal["face", "speech", "image", "text"] = Field("face", description="teacher input")
    weights: str | None = Field(None, description="face: vggface2, casia-webface or a local file; "
                                "text: a sentence-transformers directory; checkpoint: a run directory")
    frames: Literal["mean", "all"] = Field("mean", description="several images a sample: store their mean or every frame")
    batch_size: int = Field(32, ge=1)
    dtype: Literal["float16", "float32"] = "float16"
    shard_rows: int = Field(4096, ge=1, description="rows per shard file")
    max_failure_rate: float = Field(0.1, ge=0, le=1, description="fail the run above this share of failed samples")
    # Control teachers (random, class-mean, shuffled) are derived from a real teacher's store;
    # see docs/diagnose.md for what an ablation with them tells.
    source_kind: Literal["face", "text", "checkpoint"] | None = Field(
        None, description="control teachers: the real teacher whose store they derive from "
        "(needed by class-mean and shuffled; random takes its dim and sample ids from it when set)")
    source_weights: str | None = Field(None, description="control teachers: that real teacher's weights "
                                       "(as teacher.weights would be for it)")
    control_dim: int | None = Field(None, ge=1, description="random control without a source: the vector dimension")
    control_seed: int = Field(0, description="control teachers: seed of the random vectors and of the shuffle")


class QualitySideConfig(Section):
    modality: Literal["face", "speech", "image", "text"]
    weights: dict[str, float] = Field(default_factory=dict, description="signal -> weight in the combined score")
    midpoints: dict[str, float] = Field(default_factory=dict, description="signal -> logistic mid-point")


class QualityConfig(Section):
    teacher: QualitySideConfig = Field(default_factory=lambda: QualitySideConfig(modality="face"))
    student: QualitySideConfig = Field(default_factory=lambda: QualitySideConfig(modality="speech"))


# ---------------------------------------------------------------- student and method
class StudentConfig(Section):
    arch: Literal["ecapa", "resnet34", "image-cnn", "resnet18"] = "ecapa"
    modality: Literal["speech", "image", "face", "text"] = "speech"
    embedding_dim: int = Field(192, ge=2)
    channels: list[int] = Field(default_factory=lambda: [512, 512, 512, 512, 1536],
                                description="ecapa: channels of its blocks")
    width: Literal["quarter", "half", "full"] = Field("half", description="resnet34: width")
    sample_rate: int = 16000
    crop_seconds: float = Field(2.0, gt=0, description="random crop length in training")
    n_mels: int = 80
    attention_channels: int = Field(128, ge=1, description="ecapa: channels of its attentive statistics pooling")
    image_size: int = Field(128, ge=16, description="image students: input side in pixels "
                            "(e.g. 112 or 128 for faces, 64 for the synthetic-captions demo)")
    image_channels: list[int] = Field(default_factory=lambda: [32, 64, 128, 256],
                                      description="image-cnn: channels of its conv blocks")
    weights: str | None = Field(None, description="resnet18: a local torchvision state-dict file "
                                "to start from (nothing is downloaded)")


class FeatureLossConfig(Section):
    loss: Literal["none", "cosine", "l2"] = "cosine"
    margin: float = Field(0.2, ge=0, description="m; 0 is the hard constraint")
    weight: float = Field(1.0, ge=0, description="lambda_feat")


class ClassifierLossConfig(Section):
    kind: Literal["none", "shared", "logit-kd"] = "shared"
    weight: float = Field(1.0, ge=0, description="lambda_cls")
    temperature: float = Field(4.0, gt=0, description="logit-kd: T")
    scale: float = Field(30.0, gt=0, description="AAM softmax scale s")
    margin: float = Field(0.2, ge=0, description="AAM softmax angular margin a")


class QAWConfig(Section):
    enabled: bool = True
    mode: Literal["power", "softmax"] = "power"
    gamma: float = Field(1.0, ge=0)
    tau: float = Field(0.1, gt=0)
    alpha: float = Field(1.0, ge=0, description="exponent of teacher-side quality")
    beta: float = Field(1.0, ge=0, description="exponent of student-side quality")
    apply_to: list[Literal["feat", "cls_teacher", "cls_student"]] = Field(
        default_factory=lambda: ["feat", "cls_teacher"])


class MethodConfig(Section):
    projection: Literal["mlp", "linear", "identity"] = "mlp"
    feature: FeatureLossConfig = Field(default_factory=FeatureLossConfig)
    classifier: ClassifierLossConfig = Field(default_factory=ClassifierLossConfig)
    qaw: QAWConfig = Field(default_factory=QAWConfig)
    missing: Literal["drop", "no-distill"] = Field(
        "no-distill", description="a sample without teacher or quality row: drop it, or train it without distillation terms")


# ---------------------------------------------------------------- training and evaluation
class TrainingConfig(Section):
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0, description="peak learning rate (after warm-up)")
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd: momentum")
    weight_decay: float = Field(1e-4, ge=0)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1, description="global batch: split across processes under torchrun")
    warmup_steps: int = Field(100, ge=0, description="linear warm-up, then cosine decay to min_lr_ratio * lr")
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    grad_clip: float | None = Field(5.0, gt=0, description="clip the gradient norm; null: off")
    amp: bool = Field(True, description="bf16 autocast on CUDA (never on CPU)")
    checkpoint_every: int = Field(1, ge=1, description="epochs between periodic checkpoints")
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also checkpoint every N steps, "
                                               "so a crash loses at most N steps")
    log_every: int = Field(10, ge=1, description="steps between metrics.jsonl lines")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    noise_snr: list[float] | None = Field(None, description="[low, high] dB of noise augmentation; off when empty")
    train_fraction: float = Field(1.0, gt=0, le=1, description="train on this share of each class's "
                                  "training samples (seeded): the papers' little-data setting")
    tensorboard: bool = Field(False, description="also log to TensorBoard (needs the tensorboard package)")


class EvaluationConfig(Section):
    task: Literal["speaker-verification", "classification", "cross-modal-matching"] = "speaker-verification"
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
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)


# ---------------------------------------------------------------- loading
class _LineLoader(yaml.SafeLoader):
    """SafeLoader (no executable tags) that also remembers where each key stands."""


def _key_lines(text: str) -> dict[tuple, int]:
    """Map each key path in a YAML text to its 1-based line, for error messages."""
    lines: dict[tuple, int] = {}

    def walk(node, path):
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*path, key_node.value)
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i))

    try:
        walk(yaml.compose(text, Loader=_LineLoader), ())
    except yaml.YAMLError:
        pass
    return lines


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
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
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
            node = child
        node[path[-1]] = value
    return raw


def load_yaml(path: Path) -> tuple[dict, dict[tuple, int]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise XmdError(f"{path}: cannot read recipe ({e.strerror})",
                       hint="`xmd recipes list` shows the recipes that ship with xmd") from None
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass: no executable tags
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise XmdError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise XmdError(f"{path}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    return raw, _key_lines(text)


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
    return _validate(raw, source, lines)


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
    path.write_text(f"# resolved recipe written by xmd; rerun with --recipe {path.name}\n" + dump_recipe(recipe))
    return path
