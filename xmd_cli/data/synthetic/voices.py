"""Voices for synthetic-persons: real speech from eSpeak NG, called through ctypes.

Each identity gets its own eSpeak *variant file* (formant scaling, pitch base and
range, breathiness), written into a private copy of the English parts of the
eSpeak data, so a voice's timbre is a property of the person rather than one of
a handful of stock presets. The accent is the eSpeak language (en-us, en-gb, ...).

Determinism: eSpeak keeps state between utterances in its pitch "flutter" and
"roughness" generators (the same text comes out a few samples longer or shorter
depending on what was said before), so every variant sets both to 0, and the
random generator behind breath noise is reseeded before each utterance. The
Scottish English voice (en-gb-scotland) still depends on the language spoken
just before it, so it is not offered (see `ACCENTS`). With that an utterance
depends only on its own inputs, whatever was synthesised before; the test suite
checks it by comparing a generation with one made in another order.
"""

from __future__ import annotations

import ctypes
import shutil
import tempfile
import threading
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import lfilter, resample_poly

from xmd_cli.errors import XmdError

ESPEAK_RATE = 22050  # eSpeak NG's fixed output rate
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 3, 4, 7
# Only the English data is needed; copying it (about 1.5 MB) takes milliseconds.
_DATA_FILES = ("phondata", "phondata-manifest", "phonindex", "phontab", "intonations", "en_dict")

# accent name -> eSpeak language. Each was checked to give the same samples whatever
# was said before it; en-gb-scotland does not, so it is left out.
ACCENTS = {"american": "en-us", "british": "en", "caribbean": "en-029", "northern-english": "en-gb-x-gbclan"}

# ---------------------------------------------------------------- sentences
# A small seeded grammar: varied content (a per-sample nuisance for speaker
# recognition), 5-9 words, about 2-4 s of speech with the pauses around it.
_ADJ = ("quiet", "yellow", "ancient", "heavy", "bright", "narrow", "silver", "gentle", "broken",
        "crowded", "distant", "frozen", "hidden", "little", "modern", "patient", "rusty", "sudden")
_NOUN = ("garden", "teacher", "window", "river", "market", "letter", "doctor", "bicycle", "kitchen",
         "mountain", "captain", "basket", "village", "engine", "painter", "harbour", "ladder", "lantern")
_VERB_PAST = ("painted", "carried", "opened", "followed", "repaired", "noticed", "visited", "cleaned",
              "measured", "borrowed", "watched", "delivered")
_VERB = ("paint", "carry", "open", "follow", "repair", "notice", "visit", "clean", "measure", "borrow")
_PLACE = ("station", "bridge", "library", "harbour", "forest", "square", "museum", "corner", "hill")
_TIME = ("this morning", "last winter", "on Sunday", "before dinner", "every evening", "at noon",
         "after the storm", "yesterday")
_NUMBER = ("two", "three", "seven", "twelve", "forty", "a hundred")
_PATTERNS = (
    "The {adj} {noun} {verb_past} the {noun2}.",
    "Did the {noun} {verb} the {adj} {noun2}?",
    "Please {verb} the {noun} {time}.",
    "We {verb_past} {number} {noun2}s near the {place}.",
    "My {noun} {verb_past} the {place} {time}.",
    "Nobody {verb_past} the {adj} {noun}, {time}.",
)


def sentence(rng: np.random.Generator) -> str:
    """One sentence from the seeded grammar."""
    def pick(words):
        return words[int(rng.integers(len(words)))]
    pattern = pick(_PATTERNS)
    return pattern.format(adj=pick(_ADJ), noun=pick(_NOUN), noun2=pick(_NOUN),
                          verb=pick(_VERB), verb_past=pick(_VERB_PAST),
                          place=pick(_PLACE), time=pick(_TIME), number=pick(_NUMBER))


# ---------------------------------------------------------------- voice of one identity
@dataclass(frozen=True)
class VoiceSpec:
    """What makes one identity's voice: fixed per identity, written as an eSpeak variant."""

    name: str  # variant file name, e.g. "xmd007"
    language: str  # eSpeak language = accent, e.g. "en-gb-scotland"
    gender: str  # "male" | "female"
    pitch_base_hz: int
    pitch_top_hz: int
    formants: tuple[int, ...]  # frequency scale in percent for eSpeak formants 0..8 (vocal tract)
    breath: int  # 0..20, breathiness (older and some female voices)
    rate_wpm: int  # speaking rate, words a minute
    pitch_range: int  # eSpeak range 0..100 (speaking style: monotone .. lively)
    word_gap: int  # pause between words in 10 ms units (speaking style)
    tremor: float = 0.0  # depth of a slow amplitude tremor (older voices); applied in `record`
    tremor_hz: float = 5.0

    def variant_text(self) -> str:
        lines = ["language variant", f"name {self.name}", f"gender {self.gender}",
                 f"pitch {self.pitch_base_hz} {self.pitch_top_hz}",
                 "flutter 0", "roughness 0"]  # both carry state between utterances: see module doc
        lines += [f"formant {i} {f} 100 100" for i, f in enumerate(self.formants)]
        if self.breath:
            b = self.breath
            lines.append(f"breath 0 {b // 2} {b} {b} {b} {b} {b // 2} {b // 2}")
        return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the eSpeak library
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_ESPEAK_LOCK = threading.Lock()  # eSpeak is one global instance per process


class Speaker:
    """A context that owns eSpeak while it is open: `with Speaker(specs) as sp: sp.say(...)`."""

    def __init__(self, voices: list[VoiceSpec]):
        self.voices = {v.name: v for v in voices}
        self._chunks: list[np.ndarray] = []
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> "Speaker":
        try:
            import espeakng_loader
        except ImportError:
            raise XmdError("synthetic-persons needs the espeakng-loader package for its voices",
                           hint="pip install espeakng-loader==0.2.4") from None
        if not _ESPEAK_LOCK.acquire(blocking=False):
            raise RuntimeError("eSpeak is already in use in this process")
        try:
            self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
            self._lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                               ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
            self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
            self._tmp = tempfile.TemporaryDirectory(prefix="xmd-espeak-")
            data = self._private_data(Path(espeakng_loader.get_data_path()), Path(self._tmp.name))
            rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data).encode(), 0)
            if rate != ESPEAK_RATE:
                raise XmdError(f"eSpeak NG failed to start (espeak_Initialize returned {rate})",
                               hint="reinstall espeakng-loader==0.2.4")
            self._callback = _CALLBACK(self._collect)  # keep a reference: eSpeak calls it later
            self._lib.espeak_SetSynthCallback(self._callback)
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._lib.espeak_Terminate()
        self._release()

    def _release(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        _ESPEAK_LOCK.release()

    def _private_data(self, source: Path, tmp: Path) -> Path:
        data = tmp / "espeak-ng-data"
        (data / "voices" / "!v").mkdir(parents=True)
        for name in _DATA_FILES:
            shutil.copyfile(source / name, data / name)
        shutil.copytree(source / "lang" / "gmw", data / "lang" / "gmw")
        for spec in self.voices.values():
            (data / "voices" / "!v" / spec.name).write_text(spec.variant_text(), encoding="ascii")
        return data

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = go on

    def say(self, text: str, voice: str, *, rate_wpm: int, pitch: int, pitch_range: int,
            word_gap: int, seed: int) -> np.ndarray:
        """Synthesise `text` with identity `voice`; int16 samples at 22050 Hz."""
        spec = self.voices[voice]
        if self._lib.espeak_SetVoiceByName(f"{spec.language}+{spec.name}".encode()) != 0:
            raise XmdError(f"eSpeak NG has no voice {spec.language}+{spec.name}",
                           hint="reinstall espeakng-loader==0.2.4")
        for parameter, value in ((_PARAM_RATE, rate_wpm), (_PARAM_PITCH, pitch),
                                 (_PARAM_RANGE, pitch_range), (_PARAM_WORDGAP, word_gap)):
            self._lib.espeak_SetParameter(parameter, int(value), 0)
        self._lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        self._chunks = []
        encoded = text.encode("utf-8")
        self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, 1, 0, _CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if not self._chunks:
            raise XmdError(f"eSpeak NG produced no audio for {text!r}")
        return np.concatenate(self._chunks)


# ---------------------------------------------------------------- one utterance, recorded
def resample(signal: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact for any pair of integer rates."""
    g = gcd(rate_in, rate_out)
    return resample_poly(signal, rate_out // g, rate_in // g)


def record(raw: np.ndarray, spec: VoiceSpec, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Turn eSpeak output into a plausible recording: tremor, onset offset, microphone tilt, room noise.

    Returns float64 in [-1, 1) at `sample_rate`, not yet level-normalised.
    """
    x = resample(raw.astype(np.float64) / 32768.0, ESPEAK_RATE, sample_rate)
    if spec.tremor > 0:  # eSpeak's own "flutter" carries state between utterances: see module doc
        t = np.arange(len(x)) / sample_rate
        x = x * (1 + spec.tremor * np.sin(2 * np.pi * spec.tremor_hz * t + rng.uniform(0, 2 * np.pi)))
    lead = np.zeros(int(rng.uniform(0.05, 0.3) * sample_rate))  # speech never starts at sample 0
    tail = np.zeros(int(rng.uniform(0.05, 0.2) * sample_rate))
    x = np.concatenate([lead, x, tail])
    # A first-order tilt: brighter or duller microphones, per recording.
    x = lfilter([1.0, -rng.uniform(-0.4, 0.6)], [1.0], x)
    power = np.mean(x ** 2) + 1e-12
    room_snr_db = rng.uniform(30, 45)  # clean recordings are not digital silence either
    x = x + rng.standard_normal(len(x)) * np.sqrt(power / 10 ** (room_snr_db / 10))
    return x


def to_pcm16(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Normalise to a random speaking level (peak -1..-6 dBFS) and quantise to int16."""
    peak = np.max(np.abs(signal)) + 1e-12
    level = 10 ** (-rng.uniform(1.0, 6.0) / 20)
    return np.clip(np.round(signal / peak * level * 32767), -32768, 32767).astype(np.int16)
