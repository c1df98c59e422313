"""Who the synthetic persons are: attributes per identity, and how they drive face and voice.

Three kinds of attributes, as in real people (reasoning in docs/synthetic-persons.md):
- shared: gender and age drive both modalities (jaw, brows, hair, beard, lips,
  wrinkles, grey hair / pitch, vocal-tract length, breathiness, speaking rate,
  pitch range, tremor);
- face-only: eye colour, skin tone, glasses, background; no voice parameter reads them;
- voice-only: accent and speaking style; no face parameter reads them.
On top, idiosyncratic traits (face geometry, hair; pitch offset, formant scaling)
make identities separable by either modality alone. Categorical attributes are
assigned by balanced, independent permutations, so every value is equally common
and no two attributes are correlated beyond chance.

Knobs for the premise of cross-modal distillation (docs/synthetic-persons.md,
"Worlds"): `voice_strength` scales every shared effect on the voice towards the
average person (1 = as above, 0 = the voice says nothing about gender and age);
`extra_shared` adds up to three more shared attributes (`EXTRA_SHARED`) that shape
both face and voice; `population` picks a separate, disjoint set of people (the
face teacher's training population). At their defaults nothing drawn changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from xmd_cli.data.synthetic.faces import (
    BACKGROUNDS,
    EYE_COLOURS,
    GREY_HAIR,
    HAIR_COLOURS,
    SKIN_TONES,
    FaceSpec,
    mix_colour,
)
from xmd_cli.data.synthetic.voices import ACCENTS, VoiceSpec

GENDERS = ("female", "male")
AGE_GROUPS = {"young": (20, 35), "middle": (35, 55), "old": (55, 80)}
STYLES = {  # speaking style -> (eSpeak pitch range 0..100, pause between words in 10 ms)
    "monotone": (22, 0), "lively": (85, 0), "measured": (50, 5)}
# Shared attributes beyond gender and age, used in this order by `extra_shared`. Each is
# binary and balanced; its sign (-1 first value, +1 second) moves face and voice
# parameters, as body size moves both the head and the vocal tract in real people.
EXTRA_SHARED = {"build": ("slight", "heavy"), "lineage": ("a", "b"), "vigour": ("low", "high")}
# population -> (random streams of the attribute columns and of each person, name prefix).
# Other streams than the students' make other people; another prefix makes other labels.
POPULATIONS = {"students": ((1, 2), "p{:03d}"), "teacher-faces": ((11, 12), "f{:05d}")}
BACKGROUND_HUES = {"studio": (150, 152, 158), "indoor": (200, 178, 146), "outdoor": (112, 146, 104),
                   "office": (160, 176, 202)}


@dataclass(frozen=True)
class Identity:
    name: str
    attributes: dict  # {"shared": {...}, "face_only": {...}, "voice_only": {...}}
    traits: dict  # idiosyncratic, for analysis: {"face": {...}, "voice": {...}}
    face: FaceSpec
    voice: VoiceSpec


def _balanced(values, n: int, rng: np.random.Generator) -> list:
    """`n` values, each of `values` equally often (up to one), in a seeded random order."""
    pool = [values[i % len(values)] for i in range(n)]
    return [pool[i] for i in rng.permutation(n)]


def make_identities(n: int, seed: int, *, population: str = "students", extra_shared: int = 0,
                    voice_strength: float = 1.0) -> list[Identity]:
    (column_stream, person_stream), name_format = POPULATIONS[population]
    rng = np.random.default_rng([seed, column_stream])
    columns = {
        "gender": _balanced(GENDERS, n, rng),
        "age_group": _balanced(list(AGE_GROUPS), n, rng),
        "eye_colour": _balanced(list(EYE_COLOURS), n, rng),
        "skin_tone": _balanced(list(SKIN_TONES), n, rng),
        "glasses": _balanced([False, True], n, rng),
        "background": _balanced(list(BACKGROUNDS), n, rng),
        "accent": _balanced(list(ACCENTS), n, rng),
        "speaking_style": _balanced(list(STYLES), n, rng),
    }
    extra = list(EXTRA_SHARED)[:extra_shared]
    for key in extra:  # drawn after the others, so those stay as they were without extras
        columns[key] = _balanced(list(EXTRA_SHARED[key]), n, rng)
    people = []
    for i in range(n):
        own = np.random.default_rng([seed, person_stream, i])  # one person's traits do not depend on the others'
        low, high = AGE_GROUPS[columns["age_group"][i]]
        shared = {"gender": columns["gender"][i], "age": int(own.integers(low, high)),
                  "age_group": columns["age_group"][i], **{k: columns[k][i] for k in extra}}
        face_only = {k: columns[k][i] for k in ("eye_colour", "skin_tone", "glasses", "background")}
        voice_only = {k: columns[k][i] for k in ("accent", "speaking_style")}
        name = name_format.format(i)
        face, face_traits = _face(shared, face_only, own)
        voice, voice_traits = _voice(name, shared, voice_only, own, voice_strength)
        signs = {k: -1 if shared[k] == EXTRA_SHARED[k][0] else 1 for k in extra}
        if signs:
            face, voice = _extra_face(face, signs), _extra_voice(voice, signs, voice_strength)
            voice_traits = {**voice_traits, "pitch_hz": voice.pitch_base_hz, "rate_wpm": voice.rate_wpm}
        people.append(Identity(name, {"shared": shared, "face_only": face_only, "voice_only": voice_only},
                               {"face": face_traits, "voice": voice_traits}, face, voice))
    return people


def _pick(rng: np.random.Generator, options: dict[str, float]) -> str:
    names = list(options)
    p = np.array([options[k] for k in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _face(shared: dict, face_only: dict, rng: np.random.Generator) -> tuple[FaceSpec, dict]:
    male, age = shared["gender"] == "male", shared["age"]
    old = max(0.0, (age - 40) / 40)  # 0 until 40, 1 at 80
    hair_name = _pick(rng, {k: 1.0 for k in HAIR_COLOURS})
    grey = float(np.clip((age - 35) / 30, 0, 1) * rng.uniform(0.7, 1.0))
    hair = mix_colour(HAIR_COLOURS[hair_name], GREY_HAIR, grey)
    if male:
        styles = {"short": 0.6, "buzz": 0.25, "long": 0.15 * (1 - old)}
        if age >= 50:
            styles.update(receding=0.5, bald=0.25)
        beard = _pick(rng, {"none": 0.55, "stubble": 0.3, "moustache": 0.15 + 0.3 * old})
    else:
        styles, beard = {"long": 0.55, "bob": 0.3, "bun": 0.15 + 0.2 * old}, "none"
    style = _pick(rng, styles)
    skin = tuple(int(c) for c in np.clip(np.array(SKIN_TONES[face_only["skin_tone"]]) * rng.uniform(0.96, 1.04), 0, 255))
    lip_target = (176, 64, 78) if not male else (160, 92, 88)
    n = rng.normal
    spec = FaceSpec(
        skin=skin,
        eye_colour=EYE_COLOURS[face_only["eye_colour"]],
        hair_colour=hair,
        brow_colour=tuple(int(c * 0.75) for c in mix_colour(HAIR_COLOURS[hair_name], GREY_HAIR, grey * 0.5)),
        hair_style=style,
        background=face_only["background"],
        background_hue=tuple(int(c) for c in np.clip(np.array(BACKGROUND_HUES[face_only["background"]])
                                                      + n(0, 12, 3), 0, 255)),
        glasses=bool(face_only["glasses"]),
        beard=beard,
        lip_colour=mix_colour(skin, lip_target, (0.3 if male else 0.5) - 0.1 * old),
        wrinkles=float(np.clip((age - 25) / 40, 0, 1)),
        jaw=float((2.75 if male else 2.15) + n(0, 0.15)),
        chin_taper=float((0.16 if male else 0.3) + n(0, 0.04) - 0.06 * old),
        head_w=float((1.04 if male else 0.96) + n(0, 0.03)),
        head_h=float(1.0 + n(0, 0.03)),
        eye_sep=float(0.4 + n(0, 0.025)),
        eye_size=float(1.0 + n(0, 0.08) - 0.08 * old),
        eye_y=float(-0.05 + n(0, 0.025)),
        brow_thick=float((1.5 if male else 0.9) + n(0, 0.2) + 0.3 * old * male),
        nose_len=float(1.0 + n(0, 0.08) + 0.06 * old),
        nose_w=float((1.1 if male else 0.95) + n(0, 0.08)),
        mouth_w=float(1.0 + n(0, 0.07)),
        mouth_y=float(0.5 + n(0, 0.025)),
        lip_full=float((0.8 if male else 1.1) + n(0, 0.12) - 0.2 * old),
        ear_size=float(1.0 + n(0, 0.08) + 0.1 * old),
        part=float(rng.uniform(-1, 1)),
    )
    return spec, {"hair_colour": hair_name, "hair_style": style, "grey_hair": round(grey, 3), "beard": beard}


def _voice(name: str, shared: dict, voice_only: dict, rng: np.random.Generator,
           strength: float = 1.0) -> tuple[VoiceSpec, dict]:
    male = shared["gender"] == "male"

    def heard(value, average):
        # A shared effect on the voice, moved towards the average person (a man-woman
        # mix of 50) as `strength` falls. In this form strength 1 gives `value` exactly,
        # so the default voices keep every bit.
        return (1 - strength) * average + strength * value

    aged = heard((shared["age"] - 20) / 60, 0.5)  # 0 at 20, 1 at 80: every age effect grows with it
    # Fundamental frequency: lower for men; with age it falls for women and rises a little for men.
    # The age slope depends on gender, so it gets its own average (that of a 50-year-old).
    base = (heard(100.0 if male else 195.0, 140.0) * float(np.exp(rng.normal(0, 0.1)))
            * heard(1 + (0.08 if male else -0.18) * aged, 0.975))
    # Vocal-tract length: longer for men (formants lower); formants sink with age.
    tract = heard(1.0 if male else 1.13, 1.065) * float(np.exp(rng.normal(0, 0.03))) * (1 - 0.05 * aged)
    formants = (100,) + tuple(int(round(100 * tract * float(np.exp(rng.normal(0, 0.025))))) for _ in range(8))
    # Older voices are breathier, slower, narrower in pitch and less steady (tremor).
    breath = int(round(heard(2 if male else 4, 3) * rng.uniform(0.5, 1.0) + 12 * aged))
    rate = int(round(192 - 60 * aged + rng.integers(-8, 9)))
    tremor = round(0.3 * max(0.0, aged - 0.35) / 0.65, 3)
    pitch_range, word_gap = STYLES[voice_only["speaking_style"]]
    spec = VoiceSpec(name=f"xmd{name}", language=ACCENTS[voice_only["accent"]],
                     gender=shared["gender"], pitch_base_hz=int(round(base)),
                     pitch_top_hz=int(round(base * rng.uniform(1.35, 1.6))), formants=formants,
                     breath=breath, rate_wpm=rate, pitch_range=int(round(pitch_range * (1 - 0.35 * aged))),
                     word_gap=word_gap, tremor=tremor, tremor_hz=round(float(rng.uniform(4.0, 6.5)), 2))
    traits = {"pitch_hz": spec.pitch_base_hz, "formant_scale": round(tract, 4), "breath": breath,
              "rate_wpm": rate, "tremor": tremor}
    return spec, traits


def _extra_face(spec: FaceSpec, signs: dict[str, int]) -> FaceSpec:
    """The face side of the extra shared attributes (+-1 each): large enough for a crude probe."""
    if "build" in signs:  # a heavier build: a wider, squarer head and a broader nose
        b = signs["build"]
        spec = replace(spec, head_w=spec.head_w * (1 + 0.1 * b), jaw=spec.jaw + 0.4 * b,
                       nose_w=spec.nose_w * (1 + 0.1 * b), ear_size=spec.ear_size * (1 + 0.06 * b))
    if "lineage" in signs:  # inherited proportions: nose length, lips, eye size and height
        g = signs["lineage"]
        spec = replace(spec, nose_len=spec.nose_len * (1 + 0.12 * g), lip_full=spec.lip_full + 0.2 * g,
                       eye_size=spec.eye_size * (1 - 0.1 * g), eye_y=spec.eye_y + 0.03 * g)
    if "vigour" in signs:  # flushed or pale skin, wider or narrower eyes
        v = signs["vigour"]
        skin = tuple(int(np.clip(c * (1 + f * v), 0, 255)) for c, f in zip(spec.skin, (0.06, -0.02, -0.04)))
        spec = replace(spec, skin=skin, eye_size=spec.eye_size * (1 + 0.08 * v))
    return spec


def _extra_voice(spec: VoiceSpec, signs: dict[str, int], strength: float) -> VoiceSpec:
    """The voice side of the extra shared attributes, scaled by the voice strength."""
    if "build" in signs:  # a larger body: a longer vocal tract (lower formants), a lower voice
        b = signs["build"] * strength
        spec = replace(spec, formants=(100,) + tuple(int(round(f * (1 - 0.09 * b))) for f in spec.formants[1:]),
                       pitch_base_hz=int(round(spec.pitch_base_hz * (1 - 0.15 * b))),
                       pitch_top_hz=int(round(spec.pitch_top_hz * (1 - 0.15 * b))))
    if "lineage" in signs:  # tract shape: the upper formants move, the lower ones stay
        g = signs["lineage"] * strength
        spec = replace(spec, formants=tuple(int(round(f * (1 + 0.1 * g))) if k >= 3 else f
                                            for k, f in enumerate(spec.formants)))
    if "vigour" in signs:  # faster, livelier speech
        v = signs["vigour"] * strength
        spec = replace(spec, rate_wpm=int(round(spec.rate_wpm * (1 + 0.15 * v))),
                       pitch_range=int(np.clip(spec.pitch_range + 15 * v, 0, 100)))
    return spec
