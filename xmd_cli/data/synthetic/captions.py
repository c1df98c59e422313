"""synthetic-captions: rendered objects whose captions say more than their class.

Each image shows one to three objects of one shape; the shape is the class.
Colour, size, texture, position, count and background vary per sample, are
visible in the image and are all stated in the caption, so a text teacher that
reads the caption knows things about the image that the label does not say.
A share of the images is blurred, darkened or made noisy; the caption never
mentions it (`Sample.info["degradation"]` records it for analysis only).
See docs/synthetic-captions.md for the design.

The generation is a pure function of (seed, parameters): the plan (every
attribute, split and degradation) is drawn from per-class and per-sample seeded
generators, and `captions_render` turns a plan into pixels. A rerun with the
same parameters on a complete generation (`generator.json`, written last)
reuses the images.

Worlds for the text teacher (docs/synthetic-captions.md, "Worlds"): a class can
be a combination of attributes (`class_attributes`, e.g. colour and shape), some
combinations are held out of training while their parts are seen in other
classes (`held_out_combinations`), and a long tail of classes keeps only one to
three training images (`tail_classes`).
"""

from __future__ import annotations

import json
import os
import shutil
from itertools import product
from pathlib import Path
from typing import Callable

import numpy as np

from xmd_cli.data.adapters import AdapterOutput
from xmd_cli.data.manifest import Sample
from xmd_cli.data.synthetic.captions_render import (
    BACKGROUNDS,
    COLOURS,
    COUNTS,
    DEGRADATIONS,
    POSITIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    ObjectSpec,
    object_centres,
    plural,
    render,
)
from xmd_cli.errors import XmdError
from xmd_cli.recipe import CaptionsConfig, DataConfig

GENERATOR = "synthetic-captions"
GENERATOR_VERSION = 1  # bump when the plan or the rendering changes pixels
MARKER = "generator.json"  # written last: its presence means the generation is complete
IN_PROGRESS = ".generating"  # written first: the folder is ours even before MARKER exists
TINY = {"classes": 4, "per_class": 8, "image_size": 32}
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
POSITION_PHRASES = {"center": "in the center", "top": "at the top", "bottom": "at the bottom",
                    "left": "on the left", "right": "on the right"}

# Fields added later, with their defaults: left out of the recorded parameters while
# they hold them, so generations made before they existed stay current.
LATER_DEFAULTS = {k: CaptionsConfig.model_fields[k].get_default(call_default_factory=True)
                  for k in ("class_attributes", "values_per_attribute", "held_out_combinations",
                            "tail_classes", "tail_train_max")}
# Word order in labels and captions: "large red striped circle".
ATTRIBUTE_ORDER = ("size", "colour", "texture", "shape")
GROUPS_STREAM = 1_000_000  # seeds the choice of held-out and tail classes; no class index gets this high

Progress = Callable[[str, int, int], None]


def resolved_params(config: DataConfig) -> dict:
    """The parameters that decide every byte, with the tiny preset applied."""
    params = config.captions_data.model_dump()
    if config.tiny:
        params.update(TINY)
    params = {k: v for k, v in params.items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}
    return {"generator": GENERATOR, "version": GENERATOR_VERSION, "seed": config.seed, **params}


def class_list(params: dict) -> list[dict]:
    """Every class as {attribute: value}, in class order (the order of the per-class seeds)."""
    attributes = params["class_attributes"]
    if "shape" not in attributes or len(set(attributes)) != len(attributes):
        raise XmdError(f"data.captions_data.class_attributes {attributes}: must name shape, each attribute once")
    limit = params["values_per_attribute"]
    values = {"shape": SHAPES[:params["classes"]], "size": list(SIZES)[:limit],
              "colour": list(COLOURS)[:limit], "texture": TEXTURES[:limit]}
    names = [a for a in ATTRIBUTE_ORDER if a in attributes]
    return [dict(zip(names, combo)) for combo in product(*(values[a] for a in names))]


def class_label(fixed: dict) -> str:
    return "-".join(fixed[a] for a in ATTRIBUTE_ORDER if a in fixed)


def choose_groups(classes: list[dict], params: dict, n_train: int) -> tuple[set[int], dict[int, int]]:
    """(held-out class indices, tail class index -> training images kept), seeded.

    A combination is held out only if each of its values stays in some class that
    is trained on: the test group asks for a new combination of known parts.
    """
    rng = _rng(params["seed"], GROUPS_STREAM)
    wanted = params["held_out_combinations"]
    held_out: set[int] = set()
    if wanted and len(classes[0]) < 2:
        raise XmdError("data.captions_data.held_out_combinations needs classes composed of two or more "
                       "attributes", hint="e.g. data.captions_data.class_attributes=[colour, shape]")
    for k in rng.permutation(len(classes)):
        if len(held_out) == wanted:
            break
        trained = [c for i, c in enumerate(classes) if i not in held_out and i != k]
        if all(any(c[a] == v for c in trained) for a, v in classes[k].items()):
            held_out.add(int(k))
    if len(held_out) < wanted:
        raise XmdError(f"data.captions_data.held_out_combinations={wanted}: only {len(held_out)} combinations "
                       f"can be held out with each of their values still trained on")
    rest = [int(k) for k in rng.permutation(len(classes)) if int(k) not in held_out]
    if params["tail_classes"] > len(rest) - 1:
        raise XmdError(f"data.captions_data.tail_classes={params['tail_classes']}: at most {len(rest) - 1} "
                       f"of {len(classes)} classes (at least one class keeps every training image)")
    tail = sorted(rest[:params["tail_classes"]])
    return held_out, {k: min(n_train, 1 + rank % params["tail_train_max"]) for rank, k in enumerate(tail)}


def split_counts(params: dict) -> tuple[int, int, int]:
    """(train, validation, test) images a class; every class gets the same three."""
    n = params["per_class"]

    def share(fraction):  # at least one image for any fraction above zero
        return max(1, round(n * fraction)) if fraction > 0 else 0

    n_test, n_val = share(params["test_fraction"]), share(params["validation_fraction"])
    if n - n_test - n_val < 1:
        raise XmdError(
            f"data.captions_data: per_class={n} leaves no training image after {n_test} test and "
            f"{n_val} validation images a class",
            hint="raise data.captions_data.per_class or lower test_fraction / validation_fraction")
    return n - n_test - n_val, n_val, n_test


def _rng(seed: int, *keys: int) -> np.random.Generator:
    # SeedSequence needs non-negative entropy; a per-sample stream means that
    # adding classes or images never changes the ones already there.
    return np.random.default_rng([seed % (1 << 63), *keys])


def _draw_spec(rng: np.random.Generator, shape: str, degradation: str, fixed: dict) -> ObjectSpec:
    """One image's attributes; the class fixes those in `fixed`, drawn all the same so that
    every other draw stays where it was."""
    size = str(rng.choice(list(SIZES)))
    size = fixed.get("size", size)
    position = str(rng.choice(POSITIONS))
    count = int(rng.choice(COUNTS))
    # Shift the group a little, never so far that it leaves the image.
    radius = SIZES[size]
    half_extent = (count - 1) / 2 * 2.25 * radius + radius
    along = max(0.0, min(0.05, 0.48 - half_extent))
    shift_along, shift_across = rng.uniform(-along, along), rng.uniform(-0.04, 0.04)
    vertical = position in ("left", "right")
    offset = (shift_across, shift_along) if vertical else (shift_along, shift_across)
    colour, texture = str(rng.choice(list(COLOURS))), str(rng.choice(TEXTURES))
    return ObjectSpec(
        shape=shape, colour=fixed.get("colour", colour), size=size,
        texture=fixed.get("texture", texture), position=position, count=count,
        background=str(rng.choice(list(BACKGROUNDS))),
        colour_jitter=tuple(int(v) for v in rng.integers(-18, 19, size=3)),
        offset=(round(float(offset[0]), 4), round(float(offset[1]), 4)),
        degradation=degradation, strength=round(float(rng.uniform(0, 1)), 4),
        noise_seed=int(rng.integers(0, 1 << 31)))


def caption(spec: ObjectSpec, template: int) -> str:
    """One sentence that states every attribute the image shows, in one of four wordings."""
    count = COUNT_WORDS[spec.count]
    shapes = spec.shape if spec.count == 1 else plural(spec.shape)
    where = POSITION_PHRASES[spec.position]
    words = dict(count=count, Count=count.capitalize(), size=spec.size, colour=spec.colour,
                 texture=spec.texture, shapes=shapes, where=where, Where=where.capitalize(),
                 background=spec.background)
    templates = (
        "{Count} {size} {colour} {texture} {shapes} {where} on a {background} background.",
        "A {background} background with {count} {size} {texture} {colour} {shapes} {where}.",
        "{Count} {size} {shapes}, {colour} and {texture}, {where} against a {background} background.",
        "{Where}, {count} {texture} {colour} {shapes} of {size} size on a {background} background.",
    )
    return templates[template].format(**words)


def _splits(order: np.ndarray, n_val: int, n_test: int, group: str | None, keep_train: int | None) -> dict:
    """Image index -> split; a held-out class is all test, a tail class drops training images.

    The tail keeps the first training images of the class's own order, so every
    image it keeps is the one a full class would have had.
    """
    split_of, trained = {}, 0
    for k, i in enumerate(order):
        split = "test" if k < n_test else "validation" if k < n_test + n_val else "train"
        if group == "held-out":
            split = "test"
        elif split == "train" and keep_train is not None:
            trained += 1
            if trained > keep_train:
                continue
        split_of[int(i)] = split
    return split_of


def plan(params: dict) -> list[tuple[Sample, ObjectSpec]]:
    """Every sample with its split, caption and rendering spec; draws no pixels."""
    params = {**LATER_DEFAULTS, **params}
    seed = params["seed"]
    n = params["per_class"]
    n_train, n_val, n_test = split_counts(params)
    n_degraded = round(n * params["degraded_fraction"])
    classes = class_list(params)
    held_out, tail = choose_groups(classes, params, n_train)
    planned = []
    for class_index, fixed in enumerate(classes):
        label, shape = class_label(fixed), fixed["shape"]
        group = "held-out" if class_index in held_out else "tail" if class_index in tail else None
        class_rng = _rng(seed, class_index)
        order = class_rng.permutation(n)  # which images of the class go to which split
        split_of = _splits(order, n_val, n_test, group, tail.get(class_index))
        degraded = {int(i) for i in class_rng.permutation(n)[:n_degraded]}
        for index in range(n):
            if index not in split_of:  # a training image the tail class does not keep
                continue
            rng = _rng(seed, class_index, index)
            kind = str(rng.choice(DEGRADATIONS)) if index in degraded else "none"
            spec = _draw_spec(rng, shape, kind, fixed)
            text = caption(spec, int(rng.integers(0, 4)))
            sample_id = f"{label}/{index:04d}"
            attributes = {"shape": shape, "colour": spec.colour, "size": spec.size,
                          "texture": spec.texture, "position": spec.position,
                          "count": spec.count, "background": spec.background}
            degradation = {"kind": kind} if kind == "none" else {"kind": kind, "strength": spec.strength}
            info = {"attributes": attributes, "degradation": degradation,
                    "centres": [[round(x, 4), round(y, 4)] for x, y in object_centres(spec)]}
            if group:
                info["group"] = group
            planned.append((Sample(id=sample_id, label=label, split=split_of[index],
                                   images=[f"images/{sample_id}.png"], text=text, info=info), spec))
    return planned


def _is_complete(root: Path, params: dict, samples: list[Sample]) -> bool:
    try:
        recorded = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded.get("params") == params and all((root / s.images[0]).is_file() for s in samples)


def _claim(root: Path) -> None:
    """Make `root` ours to (re)write, refusing a folder that holds someone else's files."""
    ours = (root / MARKER).exists() or (root / IN_PROGRESS).exists()
    if root.exists() and not root.is_dir():
        raise XmdError(f"{root}: synthetic-captions needs a folder here, but this is a file",
                       hint="set data.root to a new folder")
    if root.exists() and any(root.iterdir()) and not ours:
        raise XmdError(f"{root}: holds files that synthetic-captions did not write; it will not overwrite them",
                       hint="set data.root to an empty or new folder")
    root.mkdir(parents=True, exist_ok=True)
    (root / IN_PROGRESS).write_text("synthetic-captions generation in progress\n", encoding="utf-8")
    (root / MARKER).unlink(missing_ok=True)
    # An older generation with other parameters may hold classes this one lacks.
    shutil.rmtree(root / "images", ignore_errors=True)


def _save_png(image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG", optimize=False)  # no timestamps in PIL's PNGs: same bytes every run
    os.replace(tmp, path)


def generate(params: dict, root: Path, progress: Progress | None = None) -> list[Sample]:
    """Write the images and generator.json under `root` (or reuse them); return the samples."""
    planned = plan(params)
    samples = [sample for sample, _ in planned]
    if _is_complete(root, params, samples):
        if progress:
            progress("generate (reused)", len(samples), len(samples))
        return samples
    _claim(root)
    for done, (sample, spec) in enumerate(planned, 1):
        _save_png(render(spec, params["image_size"]), root / sample.images[0])
        if progress:
            progress("generate", done, len(planned))
    record = {"params": params, "samples": len(samples),
              "classes": list(dict.fromkeys(s.label for s in samples))}
    (root / MARKER).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    (root / IN_PROGRESS).unlink(missing_ok=True)
    return samples


def read(config: DataConfig, workdir: Path, progress: Progress | None = None) -> AdapterOutput:
    """The synthetic-captions adapter: generate (or reuse) the data, list its samples."""
    root = Path(config.root) if config.root else Path(workdir) / "data" / GENERATOR
    samples = generate(resolved_params(config), root, progress)
    if config.split:  # e.g. the whole set as a test set; the files do not depend on it
        for sample in samples:
            sample.split = config.split
    return AdapterOutput(samples=samples, root=root)


