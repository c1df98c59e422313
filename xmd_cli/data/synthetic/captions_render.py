"""Rendering for synthetic-captions: one planned sample -> one RGB image.

Everything a picture shows is decided in the plan (`ObjectSpec`); this module
only draws it, so the same plan always gives the same pixels. Shapes are drawn
on a 4x canvas and box-downsampled, which smooths their edges without any
randomness. Textures are laid on in output-pixel units so that they stay
visible at every image size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 4

# Shape = class. The list order is the class order: `classes: 6` uses the first six.
SHAPES = ("circle", "square", "triangle", "star", "cross", "heart",
          "diamond", "hexagon", "ring", "crescent")
PLURALS = {"cross": "crosses"}

COLOURS = {  # name -> RGB; all bright enough to stand out on every background
    "red": (220, 40, 40), "orange": (245, 140, 30), "yellow": (240, 220, 40),
    "green": (50, 170, 60), "blue": (40, 90, 235), "purple": (150, 60, 210),
    "pink": (245, 130, 190),
}
BACKGROUNDS = {"white": (240, 240, 240), "grey": (125, 125, 125), "black": (18, 18, 18)}
SIZES = {"small": 0.085, "medium": 0.115, "large": 0.145}  # object radius / image side
TEXTURES = ("solid", "striped", "dotted", "checkered")
POSITIONS = ("center", "top", "bottom", "left", "right")
COUNTS = (1, 2, 3)
DEGRADATIONS = ("blur", "dark", "noise")

# Centre of the object group, in image-side units. Groups at top/bottom/center
# are rows, at left/right columns, so three large objects always fit.
_ANCHORS = {"center": (0.5, 0.5), "top": (0.5, 0.24), "bottom": (0.5, 0.76),
            "left": (0.24, 0.5), "right": (0.76, 0.5)}
_SPACING = 2.25  # centre distance / radius: neighbours never touch


@dataclass(frozen=True)
class ObjectSpec:
    """What one image shows; every field is drawn by the plan, none here."""

    shape: str
    colour: str
    size: str
    texture: str
    position: str
    count: int
    background: str
    colour_jitter: tuple[int, int, int]  # per-sample shade, keeps the colour name true
    offset: tuple[float, float]  # small shift of the group, image-side units
    degradation: str  # "none" or one of DEGRADATIONS
    strength: float  # in [0, 1], how hard the degradation hits
    noise_seed: int  # for the "noise" degradation only


def plural(shape: str) -> str:
    return PLURALS.get(shape, shape + "s")


def _unit_polygon(shape: str) -> list[tuple[float, float]] | None:
    """Vertices on a unit radius around (0, 0), y down; None for round shapes."""
    def regular(n, phase, radius=1.0):
        return [(radius * math.cos(phase + 2 * math.pi * k / n),
                 radius * math.sin(phase + 2 * math.pi * k / n)) for k in range(n)]
    if shape == "square":
        return [(-0.82, -0.82), (0.82, -0.82), (0.82, 0.82), (-0.82, 0.82)]
    if shape == "triangle":
        return [(x, y + 0.15) for x, y in regular(3, -math.pi / 2, 1.1)]
    if shape == "diamond":
        return [(0, -1.05), (0.8, 0), (0, 1.05), (-0.8, 0)]
    if shape == "hexagon":
        return regular(6, 0)
    if shape == "star":
        outer, inner = regular(5, -math.pi / 2, 1.1), regular(5, -math.pi / 2 + math.pi / 5, 0.45)
        return [p for pair in zip(outer, inner) for p in pair]
    if shape == "cross":
        a, w = 0.95, 0.34
        return [(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a),
                (-w, w), (-a, w), (-a, -w), (-w, -w)]
    if shape == "heart":
        points = []
        for k in range(48):  # the classic parametric heart, scaled to unit radius
            t = 2 * math.pi * k / 48
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            points.append((x / 16, -(y + 2.5) / 15))
        return points
    return None


def _draw_object(shape: str, cx: float, cy: float, r: float, side: int) -> np.ndarray:
    """A 0..255 mask of one object on a `side` x `side` canvas."""
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    disc = lambda radius, dx=0.0: (cx + dx - radius, cy - radius, cx + dx + radius, cy + radius)  # noqa: E731
    if shape == "circle":
        draw.ellipse(disc(r), fill=255)
    elif shape == "ring":
        draw.ellipse(disc(r), fill=255)
        draw.ellipse(disc(0.55 * r), fill=0)
    elif shape == "crescent":
        draw.ellipse(disc(r), fill=255)
        draw.ellipse(disc(0.85 * r, dx=0.5 * r), fill=0)
    else:
        draw.polygon([(cx + r * x, cy + r * y) for x, y in _unit_polygon(shape)], fill=255)
    return np.asarray(mask)


def _texture(kind: str, side: int, period: float) -> np.ndarray:
    """1 where the object shows its own colour, 0 where it shows the darker shade."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    if kind == "striped":  # diagonal, so it cannot be mistaken for an edge of a square
        return (((x + y) / period) % 2 < 1).astype(np.float32)
    if kind == "checkered":
        return (((x // period) + (y // period)) % 2 == 0).astype(np.float32)
    if kind == "dotted":
        cell = period * 1.6
        dx, dy = (x % cell) - cell / 2, (y % cell) - cell / 2
        return (dx * dx + dy * dy > (0.33 * cell) ** 2).astype(np.float32)
    return np.ones((side, side), np.float32)


def object_centres(spec: ObjectSpec) -> list[tuple[float, float]]:
    """Centres of the objects, image-side units."""
    r = SIZES[spec.size]
    ax, ay = _ANCHORS[spec.position]
    ax, ay = ax + spec.offset[0], ay + spec.offset[1]
    steps = [(k - (spec.count - 1) / 2) * _SPACING * r for k in range(spec.count)]
    vertical = spec.position in ("left", "right")
    return [(ax, ay + s) if vertical else (ax + s, ay) for s in steps]


def render(spec: ObjectSpec, image_size: int) -> Image.Image:
    """Draw `spec` as an `image_size` square RGB image."""
    side = image_size * SUPERSAMPLE
    r = SIZES[spec.size] * side
    mask = np.zeros((side, side), np.uint8)
    for cx, cy in object_centres(spec):
        mask = np.maximum(mask, _draw_object(spec.shape, cx * side, cy * side, r, side))
    colour = np.clip(np.array(COLOURS[spec.colour]) + spec.colour_jitter, 0, 255).astype(np.float32)
    shade = colour * 0.35
    period = max(3.0, image_size / 16) * SUPERSAMPLE
    pattern = _texture(spec.texture, side, period)[..., None]
    fill = pattern * colour + (1 - pattern) * shade
    alpha = (mask.astype(np.float32) / 255)[..., None]
    canvas = alpha * fill + (1 - alpha) * np.array(BACKGROUNDS[spec.background], np.float32)
    big = Image.fromarray(np.round(canvas).astype(np.uint8), "RGB")
    return degrade(big.reduce(SUPERSAMPLE), spec)


def degrade(image: Image.Image, spec: ObjectSpec) -> Image.Image:
    """Blur, darken or add noise: the image loses detail the caption still states."""
    s = spec.strength
    if spec.degradation == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=image.width / 64 * (1.2 + 1.2 * s)))
    if spec.degradation == "dark":
        pixels = np.asarray(image, np.float32) * (0.35 - 0.2 * s)
        return Image.fromarray(np.round(pixels).astype(np.uint8), "RGB")
    if spec.degradation == "noise":
        rng = np.random.default_rng(spec.noise_seed)
        noise = rng.normal(0.0, 35 + 35 * s, size=(image.height, image.width, 3))
        pixels = np.clip(np.asarray(image, np.float32) + noise, 0, 255)
        return Image.fromarray(np.round(pixels).astype(np.uint8), "RGB")
    return image
