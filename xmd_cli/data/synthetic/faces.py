"""Faces for synthetic-persons: procedural portraits drawn with PIL.

A `FaceSpec` is what stays fixed for a person (geometry, skin, eyes, hair, glasses,
where they are photographed); a `Shot` is what changes from photo to photo (pose,
scale, lighting, expression, clothes). Drawing happens at 3x the output size and
is reduced with a Lanczos filter, which anti-aliases every edge; soft shading
(head roundness, eye sockets, the side of the nose) is drawn on blurred layers, so
the result reads as a face to a face detector rather than as line art.

Coordinates inside the face are in head units: x in half-widths from the centre
line, y in half-heights from the eye line's neighbourhood (0 = head centre,
negative = up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 2
SKIN_TONES = {"very-light": (241, 206, 182), "light": (226, 182, 146), "medium": (196, 146, 106),
              "tan": (160, 110, 74), "dark": (108, 72, 50)}
EYE_COLOURS = {"brown": (92, 56, 28), "blue": (64, 118, 182), "green": (78, 128, 70), "grey": (128, 138, 148)}
HAIR_COLOURS = {"black": (32, 26, 24), "dark-brown": (72, 46, 30), "brown": (122, 82, 50),
                "blond": (204, 170, 112), "red": (150, 72, 36)}
BACKGROUNDS = ("studio", "indoor", "outdoor", "office")
GREY_HAIR = np.array((196, 196, 192), dtype=np.float64)


@dataclass(frozen=True)
class FaceSpec:
    skin: tuple[int, int, int]
    eye_colour: tuple[int, int, int]
    hair_colour: tuple[int, int, int]  # already greyed by age
    brow_colour: tuple[int, int, int]
    hair_style: str  # short, buzz, long, bob, bun, receding, bald
    background: str
    background_hue: tuple[int, int, int]
    glasses: bool
    beard: str  # none, stubble, moustache
    lip_colour: tuple[int, int, int]
    wrinkles: float  # 0..1, from age
    jaw: float  # superellipse exponent of the lower face: 2 round .. 3.2 square
    chin_taper: float
    head_w: float
    head_h: float
    eye_sep: float
    eye_size: float
    eye_y: float
    brow_thick: float
    nose_len: float
    nose_w: float
    mouth_w: float
    mouth_y: float
    lip_full: float
    ear_size: float
    part: float  # hair parting side, -1..1


@dataclass(frozen=True)
class Shot:
    yaw: float  # -1..1, share of a quarter turn
    pitch: float
    roll_deg: float
    scale: float
    shift: tuple[float, float]  # share of the image side
    light_angle: float
    light: float  # strength of the directional light
    brightness: float
    warmth: float
    smile: float
    clothes: tuple[int, int, int]
    background_seed: int
    noise_seed: int


def mix_colour(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))


def _shade(c, f: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, round(x * f)))) for x in c)


# ---------------------------------------------------------------- background
def _background(spec: FaceSpec, shot: Shot, full: int) -> Image.Image:
    side = full // SUPERSAMPLE
    rng = np.random.default_rng(shot.background_seed)
    hue = np.array(spec.background_hue, dtype=np.float64) * rng.uniform(0.9, 1.1, 3)
    top, bottom = np.clip(hue * 1.1, 0, 255), np.clip(hue * 0.75, 0, 255)
    ramp = np.linspace(0, 1, side)[:, None, None]
    pixels = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (side, side, 3)).copy()
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    if spec.background == "indoor":  # a door frame and a shelf
        x = side * rng.uniform(0.0, 0.3)
        draw.rectangle((x, side * 0.1, x + side * 0.18, side), fill=_shade(hue, 0.6))
        y = side * rng.uniform(0.15, 0.35)
        draw.rectangle((side * 0.6, y, side, y + side * 0.04), fill=_shade(hue, 0.45))
    elif spec.background == "outdoor":  # sky over foliage
        horizon = side * rng.uniform(0.45, 0.65)
        draw.rectangle((0, 0, side, horizon), fill=mix_colour(hue, (150, 190, 230), 0.6))
        for _ in range(14):
            cx, cy, r = rng.uniform(0, side), rng.uniform(horizon - side * 0.1, side), side * rng.uniform(0.05, 0.15)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r),
                         fill=_shade(mix_colour(hue, (60, 110, 50), 0.7), rng.uniform(0.7, 1.2)))
    elif spec.background == "office":  # windows in a wall
        for _ in range(3):
            x, y = rng.uniform(0, side * 0.8), rng.uniform(0, side * 0.5)
            draw.rectangle((x, y, x + side * 0.2, y + side * 0.25), fill=mix_colour(hue, (225, 235, 245), 0.7))
    # Shallow depth of field; the background is drawn small and enlarged, which blurs it cheaply.
    return image.filter(ImageFilter.GaussianBlur(side * 0.012)).resize((full, full), Image.Resampling.BILINEAR)


# ---------------------------------------------------------------- the face layer
class _Face:
    """Draws one face into an RGBA layer, in head units (see module doc)."""

    def __init__(self, spec: FaceSpec, shot: Shot, side: int):
        self.spec, self.shot, self.side = spec, shot, side
        self.cx, self.cy = side * 0.5, side * 0.47
        self.hw, self.hh = side * 0.2 * spec.head_w, side * 0.27 * spec.head_h
        self.layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))

    def p(self, x: float, y: float, depth: float = 0.0) -> tuple[float, float]:
        """Head units -> pixels; `depth` moves a feature with yaw (the nose tip most)."""
        yaw, pitch = self.shot.yaw, self.shot.pitch
        return (self.cx + (x + yaw * (0.25 + depth) - 0.12 * yaw * x * x) * self.hw,
                self.cy + (y + pitch * (0.1 + depth * 0.5)) * self.hh)

    def box(self, x, y, rx, ry, depth=0.0):
        px, py = self.p(x, y, depth)
        return (px - rx * self.hw, py - ry * self.hh, px + rx * self.hw, py + ry * self.hh)

    def outline(self) -> list[tuple[float, float]]:
        """Head outline: an ellipse above, a superellipse jaw below that narrows to the chin."""
        s, points = self.spec, []
        for k in range(120):
            theta = 2 * math.pi * k / 120
            c, si = math.cos(theta), math.sin(theta)
            if si < 0:  # upper head
                x, y = c, si
            else:
                n = s.jaw
                r = (abs(c) ** n + abs(si) ** n) ** (-1 / n)
                x, y = c * r, si * r
                x *= 1 - s.chin_taper * y * y
            points.append((self.cx + x * self.hw + self.shot.yaw * 0.12 * self.hw, self.cy + y * self.hh))
        return points

    # ------------------------------------------------------------ parts
    def body(self, draw: ImageDraw.ImageDraw) -> None:
        s, sh = self.spec, self.shot
        neck_w = 0.42 + 0.1 * (s.jaw - 2)
        x0, y0 = self.p(0, 0.7)
        draw.rectangle((x0 - neck_w * self.hw, y0, x0 + neck_w * self.hw, self.cy + 1.45 * self.hh),
                       fill=_shade(s.skin, 0.86))
        draw.ellipse((self.cx - 2.3 * self.hw, self.cy + 1.3 * self.hh, self.cx + 2.3 * self.hw,
                      self.cy + 3.2 * self.hh), fill=sh.clothes)

    def hair_back(self, draw) -> None:
        s = self.spec
        if s.hair_style in ("long", "bob"):
            low = 1.5 if s.hair_style == "long" else 0.75
            draw.rounded_rectangle((self.cx - 1.22 * self.hw, self.cy - 1.1 * self.hh, self.cx + 1.22 * self.hw,
                                    self.cy + low * self.hh), radius=self.hw * 0.8, fill=s.hair_colour)
        elif s.hair_style == "bun":
            draw.ellipse(self.box(0.0, -1.05, 0.45, 0.28), fill=s.hair_colour)

    def ears(self, draw) -> None:
        s = self.spec
        for side in (-1, 1):
            near = 1 + 0.5 * side * self.shot.yaw  # the turned-away ear hides behind the head
            w = 0.16 * s.ear_size * max(0.3, near)
            x = self.cx + side * (0.96 * self.hw) + self.shot.yaw * 0.1 * self.hw
            y = self.cy + 0.02 * self.hh
            draw.ellipse((x - w * self.hw, y - 0.2 * s.ear_size * self.hh, x + w * self.hw,
                          y + 0.17 * s.ear_size * self.hh), fill=_shade(s.skin, 0.9))

    def hair_front(self, draw) -> None:
        s = self.spec
        if s.hair_style == "bald":
            return
        cap = {"short": (0.72, 0.10), "buzz": (0.62, 0.04), "long": (0.66, 0.12), "bob": (0.66, 0.12),
               "bun": (0.76, 0.08), "receding": (0.86, 0.05)}[s.hair_style]
        hairline, thickness = cap
        top = self.cy - (1 + thickness) * self.hh
        bbox = (self.cx - (1 + thickness) * self.hw, top, self.cx + (1 + thickness) * self.hw,
                self.cy + (1 + thickness) * self.hh)
        # A chord of the head's upper ellipse: its flat lower edge is the hairline.
        angle = math.degrees(math.asin(min(0.99, hairline)))
        draw.chord(bbox, 180 + (90 - angle), 360 - (90 - angle), fill=s.hair_colour)
        if s.hair_style in ("short", "long", "bob"):  # a fringe swept to the parting side
            px, py = self.p(s.part * 0.35, -0.78)
            draw.pieslice((px - 0.9 * self.hw, py - 0.45 * self.hh, px + 0.9 * self.hw, py + 0.2 * self.hh),
                          180, 360, fill=s.hair_colour)
        if s.hair_style in ("receding", "short", "buzz"):  # sideburns above the ears
            for side in (-1, 1):
                x = self.cx + side * 0.93 * self.hw
                draw.ellipse((x - 0.1 * self.hw, self.cy - 0.6 * self.hh, x + 0.1 * self.hw, self.cy - 0.05 * self.hh),
                             fill=s.hair_colour)

    def soft_shadows(self, draw) -> None:
        """Eye sockets, the shaded side of the nose, under the nose and lower lip: blurred later."""
        s, sh = self.spec, self.shot
        dark = _shade(s.skin, 0.68)
        for side in (-1, 1):
            draw.ellipse(self.box(side * s.eye_sep, s.eye_y - 0.02, 0.27 * s.eye_size, 0.13, 0.3), fill=dark)
        light_side = 1 if math.cos(sh.light_angle) > 0 else -1
        x0, y0 = self.p(-light_side * 0.07 * s.nose_w, s.eye_y + 0.08, 0.4)
        x1, y1 = self.p(-light_side * 0.16 * s.nose_w, s.eye_y + 0.4 * s.nose_len + 0.1, 0.6)
        draw.polygon([(x0, y0), (x0 - light_side * 0.06 * self.hw, y0), (x1, y1),
                      (x1 + light_side * 0.12 * self.hw, y1)], fill=dark)
        draw.ellipse(self.box(0, s.eye_y + 0.42 * s.nose_len + 0.1, 0.2 * s.nose_w, 0.05, 0.55), fill=dark)
        draw.ellipse(self.box(0, s.mouth_y + 0.16, 0.2 * s.mouth_w, 0.04, 0.35), fill=_shade(s.skin, 0.8))

    def eyes(self, draw) -> None:
        s, sh = self.spec, self.shot
        for side in (-1, 1):
            squeeze = 1 - 0.35 * max(0.0, side * -sh.yaw)  # the far eye is foreshortened
            rx, ry = 0.17 * s.eye_size * squeeze, 0.085 * s.eye_size
            ex, ey = self.p(side * s.eye_sep, s.eye_y, 0.3)
            white = (236, 230, 224)
            draw.ellipse((ex - rx * self.hw, ey - ry * self.hh, ex + rx * self.hw, ey + ry * self.hh), fill=white)
            gaze = 0.05 * sh.yaw
            ir = 0.095 * s.eye_size * self.hh
            ix = ex + gaze * self.hw
            draw.ellipse((ix - ir * squeeze, ey - ir, ix + ir * squeeze, ey + ir), fill=s.eye_colour)
            draw.ellipse((ix - ir * 0.45, ey - ir * 0.45, ix + ir * 0.45, ey + ir * 0.45), fill=(12, 10, 10))
            draw.ellipse((ix + ir * 0.2, ey - ir * 0.55, ix + ir * 0.5, ey - ir * 0.25), fill=(250, 250, 250))
            # Upper lid: a dark arc that also trims the iris; lower lid: a thin line.
            lid = (ex - rx * self.hw, ey - ry * self.hh, ex + rx * self.hw, ey + ry * self.hh)
            draw.chord((lid[0], lid[1] - ry * self.hh * 0.9, lid[2], lid[3] - ry * self.hh * 0.9), 0, 180,
                       fill=_shade(s.skin, 0.92))
            draw.arc(lid, 180, 360, fill=(40, 28, 24), width=max(2, int(self.hh * 0.022)))
            draw.arc(lid, 20, 160, fill=_shade(s.skin, 0.7), width=max(1, int(self.hh * 0.01)))

    def brows(self, draw) -> None:
        s = self.spec
        width = max(2, int(self.hh * 0.03 * s.brow_thick))
        for side in (-1, 1):
            pts = [self.p(side * (s.eye_sep + dx), s.eye_y - 0.2 - 0.06 * (1 - (dx / 0.2) ** 2), 0.3)
                   for dx in np.linspace(-0.18, 0.2, 7)]
            draw.line(pts, fill=s.brow_colour, width=width, joint="curve")

    def nose(self, draw) -> None:
        s = self.spec
        y = s.eye_y + 0.42 * s.nose_len + 0.08
        for side in (-1, 1):
            draw.ellipse(self.box(side * 0.075 * s.nose_w, y, 0.045 * s.nose_w, 0.025, 0.55), fill=_shade(s.skin, 0.45))
        draw.arc(self.box(0, y - 0.03, 0.16 * s.nose_w, 0.07, 0.55), 20, 160, fill=_shade(s.skin, 0.7),
                 width=max(1, int(self.hh * 0.012)))
        draw.ellipse(self.box(0.02, y - 0.1, 0.05 * s.nose_w, 0.04, 0.6), fill=_shade(s.skin, 1.12))

    def mouth(self, draw) -> None:
        s, sh = self.spec, self.shot
        w, y, lift = 0.3 * s.mouth_w, s.mouth_y, 0.05 * sh.smile
        upper = [self.p(x, y - 0.05 * s.lip_full * (1 - (x / w) ** 2) - 0.015 * math.cos(x / w * 9)
                        - lift * (x / w) ** 2, 0.35)
                 for x in np.linspace(-w, w, 15)]
        lower = [self.p(x, y + 0.075 * s.lip_full * (1 - (x / w) ** 2) - lift * (x / w) ** 2, 0.35)
                 for x in np.linspace(w, -w, 15)]
        draw.polygon(upper + lower, fill=s.lip_colour)
        line = [self.p(x, y - lift * (x / w) ** 2, 0.35) for x in np.linspace(-w, w, 15)]
        draw.line(line, fill=_shade(s.lip_colour, 0.45), width=max(2, int(self.hh * 0.016)), joint="curve")

    def beard(self, draw) -> None:
        s = self.spec
        if s.beard == "moustache":
            pts = [self.p(x, s.mouth_y - 0.09 - 0.03 * (1 - (x / 0.3) ** 2), 0.35) for x in np.linspace(-0.3, 0.3, 9)]
            draw.line(pts, fill=s.hair_colour, width=max(2, int(self.hh * 0.05)), joint="curve")

    def wrinkles(self, draw) -> None:
        s = self.spec
        colour, width = _shade(s.skin, 0.5), max(2, int(self.hh * 0.016))
        for k in range(3):  # forehead
            y = -0.62 + 0.09 * k
            draw.arc(self.box(0, y + 0.15, 0.42, 0.15, 0.1), 220, 320, fill=colour, width=width)
        for side in (-1, 1):  # nasolabial folds, crow's feet, under-eye
            x0, y0 = self.p(side * 0.2 * self.spec.nose_w, s.eye_y + 0.42 * s.nose_len + 0.05, 0.45)
            x1, y1 = self.p(side * (0.3 * s.mouth_w + 0.06), s.mouth_y + 0.08, 0.35)
            draw.line([(x0, y0), ((x0 + x1) / 2 + side * 0.06 * self.hw, (y0 + y1) / 2), (x1, y1)],
                      fill=colour, width=width, joint="curve")
            ex, ey = self.p(side * (s.eye_sep + 0.2 * s.eye_size), s.eye_y, 0.3)
            for a in (-0.5, 0.0, 0.5):
                draw.line([(ex, ey), (ex + side * 0.08 * self.hw, ey + a * 0.06 * self.hh)], fill=colour, width=width)
            draw.arc(self.box(side * s.eye_sep, s.eye_y + 0.07, 0.15, 0.05, 0.3), 20, 160, fill=colour, width=width)

    def glasses(self, draw) -> None:
        s = self.spec
        width = max(2, int(self.hh * 0.022))
        frame = (30, 30, 34)
        for side in (-1, 1):
            draw.rounded_rectangle(self.box(side * s.eye_sep, s.eye_y + 0.01, 0.26, 0.13, 0.3),
                                   radius=self.hw * 0.08, outline=frame, width=width)
            x_out, y_out = self.p(side * (s.eye_sep + 0.26), s.eye_y - 0.04, 0.3)
            draw.line([(x_out, y_out), (self.cx + side * 0.98 * self.hw, self.cy - 0.03 * self.hh)],
                      fill=frame, width=width)
        draw.arc(self.box(0, s.eye_y + 0.01, s.eye_sep - 0.26, 0.05, 0.35), 200, 340, fill=frame, width=width)


# ---------------------------------------------------------------- one photo
def _head_shading(layer: Image.Image, outline, hw: float, region) -> None:
    """Darken the skin towards the head outline, in place: a flat disc becomes a rounded head."""
    left, top = region[:2]
    mask = Image.new("L", (region[2] - left, region[3] - top), 0)
    ImageDraw.Draw(mask).polygon([(x - left, y - top) for x, y in outline], fill=255)
    # A wide blur is computed at a quarter of the resolution: it is smooth anyway.
    small = mask.resize((mask.width // 4, mask.height // 4), Image.Resampling.BILINEAR)
    small = small.filter(ImageFilter.GaussianBlur(hw * 0.35 / 4)).resize(mask.size, Image.Resampling.BILINEAR)
    soft = np.asarray(small, dtype=np.float32) / 255.0
    inside = np.asarray(mask, dtype=np.float32) / 255.0
    factor = 1 - inside * 0.28 * (1 - np.clip(soft * 1.6 - 0.3, 0, 1))
    pixels = np.asarray(layer.crop(region), dtype=np.float32)
    pixels[..., :3] *= factor[..., None]
    layer.paste(Image.fromarray(np.round(pixels).astype(np.uint8), "RGBA"), region[:2])


def _stubble(layer: Image.Image, face: _Face, rng: np.random.Generator) -> Image.Image:
    s = face.spec
    mask = Image.new("L", layer.size, 0)
    ImageDraw.Draw(mask).polygon([pt for pt in face.outline() if pt[1] > face.cy + (s.eye_y + 0.45) * face.hh],
                                 fill=255)
    grain = (rng.random((layer.height, layer.width)) < 0.5).astype(np.float64)
    alpha = np.asarray(mask.filter(ImageFilter.GaussianBlur(face.hw * 0.05)), dtype=np.float64) * 0.45 * grain
    tint = Image.new("RGBA", layer.size, s.hair_colour + (255,))
    tint.putalpha(Image.fromarray(alpha.astype(np.uint8)))
    return Image.alpha_composite(layer, tint)


def render_face(spec: FaceSpec, shot: Shot, size: int) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """One photo of a person: an RGB image `size` x `size` and the face box in its pixels."""
    side = size * SUPERSAMPLE
    face = _Face(spec, shot, side)
    draw = ImageDraw.Draw(face.layer)
    face.body(draw)
    face.hair_back(draw)
    face.ears(draw)
    outline = face.outline()
    draw.polygon(outline, fill=spec.skin + (255,))
    # Features lie within the head's neighbourhood: shade, blur and blend only that crop.
    region = tuple(int(v) for v in (max(0, face.cx - 1.5 * face.hw), max(0, face.cy - 1.4 * face.hh),
                                    min(side, face.cx + 1.5 * face.hw), min(side, face.cy + 1.3 * face.hh)))
    layer = face.layer
    _head_shading(layer, outline, face.hw, region)

    def overlay(paint, blur: float, opacity: float = 1.0) -> None:
        sheet = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        paint(ImageDraw.Draw(sheet))
        sheet = sheet.crop(region)
        if blur:
            sheet = sheet.filter(ImageFilter.GaussianBlur(blur))
        if opacity < 1:
            sheet.putalpha(sheet.getchannel("A").point(lambda a: int(a * opacity)))
        layer.alpha_composite(sheet, dest=region[:2])

    overlay(face.soft_shadows, face.hw * 0.09, 0.8)
    if spec.wrinkles > 0.05:
        overlay(face.wrinkles, SUPERSAMPLE * 0.6, min(1.0, spec.wrinkles))
    if spec.beard == "stubble":
        layer = _stubble(layer, face, np.random.default_rng(shot.noise_seed + 1))
    overlay(lambda d: (face.eyes(d), face.brows(d), face.nose(d), face.mouth(d), face.beard(d)), SUPERSAMPLE * 0.5)
    overlay(face.hair_front, SUPERSAMPLE * 0.7)
    if spec.glasses:
        overlay(face.glasses, SUPERSAMPLE * 0.3)

    # Pose: roll, scale and shift as one affine map (PIL wants output -> input).
    angle = math.radians(shot.roll_deg)
    cos, sin = math.cos(angle) / shot.scale, math.sin(angle) / shot.scale
    ox, oy = side / 2 + shot.shift[0] * side, side / 2 + shot.shift[1] * side
    affine = (cos, sin, side / 2 - cos * ox - sin * oy, -sin, cos, side / 2 + sin * ox - cos * oy)
    layer = layer.transform((side, side), Image.Transform.AFFINE, affine, resample=Image.Resampling.BILINEAR)
    photo = _background(spec, shot, side).convert("RGBA")
    photo = Image.alpha_composite(photo, layer).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)

    # Lighting (smooth, so applied after the reduction): a directional gradient,
    # overall exposure and colour temperature; then sensor noise.
    pixels = np.asarray(photo, dtype=np.float64)
    xs = np.linspace(-1, 1, size)
    gradient = (math.cos(shot.light_angle) * xs[None, :] + math.sin(shot.light_angle) * xs[:, None])
    light = shot.brightness * (1 + shot.light * gradient)[..., None]
    temperature = np.array([1 + shot.warmth, 1.0, 1 - shot.warmth])
    noise = np.random.default_rng(shot.noise_seed).normal(0, 2.0, (size, size, 3))
    photo = Image.fromarray(np.clip(pixels * light * temperature + noise, 0, 255).round().astype(np.uint8))

    # The face box in output pixels: the head's centre moved by the pose, its extent scaled.
    dx, dy = face.cx - side / 2, face.cy - side / 2
    cx = side / 2 + shot.shift[0] * side + shot.scale * (math.cos(angle) * dx - math.sin(angle) * dy)
    cy = side / 2 + shot.shift[1] * side + shot.scale * (math.sin(angle) * dx + math.cos(angle) * dy)
    half_w, half_h = face.hw * shot.scale, face.hh * shot.scale
    box = tuple(v / SUPERSAMPLE for v in (cx - half_w, cy - half_h, cx + half_w, cy + half_h))
    return photo, box
