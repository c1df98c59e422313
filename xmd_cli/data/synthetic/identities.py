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
"""

from __future__ import annotations

from dataclasses import dataclass

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


def make_identities(n: int, seed: int) -> list[Identity]:
    rng = np.random.default_rng([seed, 1])
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
    people = []
    for i in range(n):
        own = np.random.default_rng([seed, 2, i])  # one person's traits do not depend on the others'
        low, high = AGE_GROUPS[columns["age_group"][i]]
        shared = {"gender": columns["gender"][i], "age": int(own.integers(low, high)),
                  "age_group": columns["age_group"][i]}
        face_only = {k: columns[k][i] for k in ("eye_colour", "skin_tone", "glasses", "background")}
        voice_only = {k: columns[k][i] for k in ("accent", "speaking_style")}
        name = f"p{i:03d}"
        face, face_traits = _face(shared, face_only, own)
        voice, voice_traits = _voice(name, shared, voice_only, own)
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


def _voice(name: str, shared: dict, voice_only: dict, rng: np.random.Generator) -> tuple[VoiceSpec, dict]:
    male = shared["gender"] == "male"
    aged = (shared["age"] - 20) / 60  # 0 at 20, 1 at 80: every age effect grows with it
    # Fundamental frequency: lower for men; with age it falls for women and rises a little for men.
    base = (100.0 if male else 195.0) * float(np.exp(rng.normal(0, 0.1))) * (1 + (0.08 if male else -0.18) * aged)
    # Vocal-tract length: longer for men (formants lower); formants sink with age.
    tract = (1.0 if male else 1.13) * float(np.exp(rng.normal(0, 0.03))) * (1 - 0.05 * aged)
    formants = (100,) + tuple(int(round(100 * tract * float(np.exp(rng.normal(0, 0.025))))) for _ in range(8))
    # Older voices are breathier, slower, narrower in pitch and less steady (tremor).
    breath = int(round((2 if male else 4) * rng.uniform(0.5, 1.0) + 12 * aged))
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
