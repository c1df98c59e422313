"""synthetic-persons: the demo dataset, identities with a face and a voice.

`read(config, workdir)` is the adapter entry point. It plans the whole dataset
from the seed (identities, splits, per-sample pose / lighting / sentence /
degradation), renders it under the root unless a complete generation with the
same parameters is already there, and returns the manifest samples and trials.

Every random choice comes from a generator seeded by (seed, purpose, indices), so
a sample is the same whatever else is generated, and two runs with one seed write
byte-identical files. Design reasoning: docs/synthetic-persons.md.

`population: teacher-faces` generates instead a separate population of face-only
identities (other random streams, `f00000` labels), for a face teacher to train
on; it has train and validation splits and no trials.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from xmd_cli.data.adapters import AdapterOutput
from xmd_cli.data.manifest import Sample, Trial
from xmd_cli.data.synthetic import degrade
from xmd_cli.data.synthetic.faces import Shot, render_face
from xmd_cli.data.synthetic.identities import Identity, make_identities
from xmd_cli.data.synthetic.voices import Speaker, record, sentence, to_pcm16
from xmd_cli.errors import XmdError
from xmd_cli.recipe import DataConfig, PersonsConfig

NAME = "synthetic-persons"
GENERATOR_VERSION = 1  # bump when the output of the same parameters changes
MARKER = "generator.json"
# The tiny preset: a few seconds to generate, enough for every stage's tests.
TINY = {"identities": 8, "per_identity": 4, "test_identities": 0.25, "validation_per_identity": 1,
        "trials_per_identity": 8}
TINY_TEACHER = {"teacher_identities": 24, "teacher_per_identity": 3}
# Fields added after the first release, with their defaults. The marker leaves them out
# while they hold these values, so generations made before they existed stay current.
LATER_DEFAULTS = {k: PersonsConfig.model_fields[k].default
                  for k in ("population", "teacher_identities", "teacher_per_identity", "test_per_identity",
                            "voice_shared_strength", "extra_shared", "recording_factor")}
BATCH = 48  # samples a worker renders with one eSpeak start; below one batch, no workers
MAX_WORKERS = 2


@dataclass(frozen=True)
class Planned:
    """Everything needed to render one sample, decided before anything is drawn."""

    identity: Identity
    index: int
    split: str
    shot: Shot
    text: str  # "" for a face-only sample
    speech: dict | None  # rate_wpm, pitch, pitch_range, word_gap, seed; None for a face-only sample
    face_degradation: dict | None
    speech_degradation: dict | None
    recording: dict | None = None  # the per-recording factor, when recording_factor > 0

    @property
    def id(self) -> str:
        return f"{self.identity.name}/{self.index:02d}"


def effective_parameters(config: DataConfig) -> dict:
    params = config.persons.model_dump()
    if config.tiny:
        params.update(TINY)
        if params["population"] == "teacher-faces":
            params.update(TINY_TEACHER)
    return params


# ---------------------------------------------------------------- planning
def _check(params: dict) -> tuple[int, int]:
    n, per = params["identities"], params["per_identity"]
    n_test = max(2, int(round(n * params["test_identities"])))
    if n - n_test < 2:
        raise XmdError(f"data.persons: {n} identities leave {n - n_test} for training after {n_test} test identities",
                       hint="raise data.persons.identities or lower data.persons.test_identities")
    if params["validation_per_identity"] >= per:
        raise XmdError(f"data.persons.validation_per_identity ({params['validation_per_identity']}) must be below "
                       f"data.persons.per_identity ({per}): training identities need training samples")
    return n_test, per


def _shot(rng: np.random.Generator) -> Shot:
    return Shot(yaw=float(rng.uniform(-0.35, 0.35)), pitch=float(rng.uniform(-0.15, 0.15)),
                roll_deg=float(rng.uniform(-12, 12)), scale=float(rng.uniform(0.85, 1.1)),
                shift=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
                light_angle=float(rng.uniform(0, 2 * np.pi)), light=float(rng.uniform(0.05, 0.3)),
                brightness=float(rng.uniform(0.85, 1.15)), warmth=float(rng.uniform(-0.06, 0.06)),
                smile=float(rng.uniform(-0.2, 1.0)), clothes=tuple(int(c) for c in rng.integers(20, 230, 3)),
                background_seed=int(rng.integers(2 ** 31)), noise_seed=int(rng.integers(2 ** 31)))


def _arousal(shot: Shot, speech: dict | None, strength: float,
             rng: np.random.Generator) -> tuple[Shot, dict | None, dict]:
    """One recording's arousal u in [-1, 1], shown by the face and the voice of that recording alike.

    A per-sample factor both modalities share: what a teacher could pass on per
    sample rather than per identity. Effects grow with `strength`.
    """
    u = float(rng.uniform(-1, 1))
    k = strength * u
    shot = replace(shot, smile=float(np.clip(shot.smile + 0.8 * k, -0.6, 1.4)), pitch=shot.pitch - 0.1 * k)
    if speech is not None:
        speech = {**speech, "rate_wpm": int(round(speech["rate_wpm"] * (1 + 0.12 * k))),
                  "pitch": int(np.clip(speech["pitch"] + round(10 * k), 0, 100)),
                  "pitch_range": int(np.clip(speech["pitch_range"] + round(15 * k), 0, 100))}
    return shot, speech, {"arousal": round(u, 3)}


def plan(params: dict, seed: int) -> list[Planned]:
    if params["population"] == "teacher-faces":
        return plan_teacher_faces(params, seed)
    n_test, per = _check(params)
    people = make_identities(params["identities"], seed, extra_shared=params["extra_shared"],
                             voice_strength=params["voice_shared_strength"])
    split_rng = np.random.default_rng([seed, 3])
    test_names = {people[i].name for i in split_rng.choice(len(people), n_test, replace=False)}
    planned = []
    for i, person in enumerate(people):
        count = (params["test_per_identity"] or per) if person.name in test_names else per
        held_out = set(split_rng.permutation(count)[:params["validation_per_identity"]].tolist())
        for j in range(count):
            rng = np.random.default_rng([seed, 4, i, j])
            split = "test" if person.name in test_names else ("validation" if j in held_out else "train")
            voice = person.voice
            speech = {"rate_wpm": int(round(voice.rate_wpm * rng.uniform(0.94, 1.06))),
                      "pitch": int(rng.integers(44, 57)),
                      "pitch_range": int(np.clip(voice.pitch_range + rng.integers(-8, 9), 0, 100)),
                      "word_gap": voice.word_gap + int(rng.integers(0, 2)),
                      "seed": int(rng.integers(2 ** 31))}
            shot, text, recording = _shot(rng), sentence(rng), None
            if params["recording_factor"] > 0:  # its own stream: the draws above stay as they were
                shot, speech, recording = _arousal(shot, speech, params["recording_factor"],
                                                   np.random.default_rng([seed, 7, i, j]))
            planned.append(Planned(person, j, split, shot, text, speech, None, None, recording))
    return _assign_degradations(planned, params["degraded_fraction"], seed)


def plan_teacher_faces(params: dict, seed: int) -> list[Planned]:
    """Face-only identities for the face teacher: other people than the students, other streams.

    One face of each identity is kept for validation (to pick the teacher's best
    checkpoint); there is no test split: the teacher is tested through the student.
    """
    n, per = params["teacher_identities"], params["teacher_per_identity"]
    people = make_identities(n, seed, population="teacher-faces", extra_shared=params["extra_shared"])
    split_rng = np.random.default_rng([seed, 13])
    planned = []
    for i, person in enumerate(people):
        held_out = int(split_rng.integers(per))
        for j in range(per):
            shot, recording = _shot(np.random.default_rng([seed, 14, i, j])), None
            if params["recording_factor"] > 0:
                shot, _, recording = _arousal(shot, None, params["recording_factor"],
                                              np.random.default_rng([seed, 17, i, j]))
            split = "validation" if j == held_out else "train"
            planned.append(Planned(person, j, split, shot, "", None, None, None, recording))
    return _assign_degradations(planned, params["degraded_fraction"], seed, voices=False)


def _assign_degradations(planned: list[Planned], fraction: float, seed: int,
                          voices: bool = True) -> list[Planned]:
    """Degrade exactly round(fraction * n) samples of each split, per modality, independently.

    Independent draws make some samples degraded in both, most in one or none, so
    face quality and speech quality can be told apart by an analysis.
    """
    rng = np.random.default_rng([seed, 5])
    out = list(planned)
    for split in ("train", "validation", "test"):
        members = [k for k, p in enumerate(planned) if p.split == split]
        count = int(round(fraction * len(members)))
        faces = set(rng.permutation(members)[:count].tolist()) if members else set()
        speaking = set(rng.permutation(members)[:count].tolist()) if members and voices else set()
        for k in members:
            face = degrade.draw_face_degradation(rng) if k in faces else None
            speech = degrade.draw_speech_degradation(rng) if k in speaking else None
            out[k] = replace(planned[k], face_degradation=face, speech_degradation=speech)
    return out


def trials(planned: list[Planned], per_identity: int, seed: int) -> list[Trial]:
    """Balanced trials among test samples: per test identity, equal target and non-target pairs."""
    rng = np.random.default_rng([seed, 6])
    by_name: dict[str, list[str]] = {}
    for p in planned:
        if p.split == "test":
            by_name.setdefault(p.identity.name, []).append(p.id)
    names = sorted(by_name)
    out = []
    for name in names:
        own = by_name[name]
        others = [s for other in names if other != name for s in by_name[other]]
        targets = [(a, b) for k, a in enumerate(own) for b in own[k + 1:]]
        count = min(per_identity // 2, len(targets))
        for k in rng.choice(len(targets), count, replace=False):
            a, b = targets[k]
            out.append(Trial(1, a, b))
        for k in rng.choice(len(own) * len(others), count, replace=False):
            out.append(Trial(0, own[k // len(others)], others[k % len(others)]))
    return out


# ---------------------------------------------------------------- samples
def _round(d: dict, digits: int = 3) -> dict:
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in d.items()}


def to_sample(p: Planned) -> Sample:
    shot = _round({k: v for k, v in asdict(p.shot).items()
                   if k in ("yaw", "pitch", "roll_deg", "scale", "light", "brightness", "smile")})
    strip = (lambda d: None if d is None else {k: v for k, v in d.items() if k != "seed"})
    if p.speech is None:  # a face-only sample (teacher-faces): no voice, nothing said of one
        attributes = {k: v for k, v in p.identity.attributes.items() if k != "voice_only"}
        info = {"attributes": attributes, "traits": {"face": p.identity.traits["face"]},
                "jitter": {"face": shot}, "degradation": {"face": strip(p.face_degradation)}}
    else:
        info = {"attributes": p.identity.attributes, "traits": p.identity.traits,
                "jitter": {"face": shot, "voice": {"text": p.text, **{k: v for k, v in p.speech.items() if k != "seed"}}},
                "degradation": {"face": strip(p.face_degradation), "speech": strip(p.speech_degradation)}}
    if p.recording is not None:
        info["recording"] = p.recording
    return Sample(id=p.id, label=p.identity.name, split=p.split,
                  audio=None if p.speech is None else f"audio/{p.id}.wav", images=[f"faces/{p.id}.png"], info=info)


# ---------------------------------------------------------------- rendering
def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    write(tmp)
    os.replace(tmp, path)


def render_sample(p: Planned, root: Path, params: dict, speaker: Speaker) -> None:
    image, box = render_face(p.identity.face, p.shot, params["image_size"])
    if p.face_degradation is not None:
        image = degrade.degrade_face(image, p.face_degradation, box)
    face_path = root / "faces" / f"{p.id}.png"
    face_path.parent.mkdir(parents=True, exist_ok=True)
    # PIL's PNG writer adds no time stamp: the same pixels give the same bytes.
    _atomic(face_path, lambda tmp: image.save(tmp, format="PNG"))
    if p.speech is None:
        return

    raw = speaker.say(p.text, p.identity.voice.name, **p.speech)
    rng = np.random.default_rng(p.speech["seed"])
    signal = record(raw, p.identity.voice, params["sample_rate"], rng)
    if p.speech_degradation is not None:
        signal = degrade.add_noise(signal, p.speech_degradation)
    audio_path = root / "audio" / f"{p.id}.wav"
    audio_path.parent.mkdir(parents=True, exist_ok=True)
    pcm = to_pcm16(signal, rng)
    _atomic(audio_path, lambda tmp: sf.write(tmp, pcm, params["sample_rate"], subtype="PCM_16", format="WAV"))


def render_batch(batch: list[Planned], root: Path, params: dict) -> int:
    """Render samples with one eSpeak instance (in this process or a worker); returns the count."""
    voices = list({p.identity.voice.name: p.identity.voice for p in batch if p.speech is not None}.values())
    with Speaker(voices) if voices else nullcontext() as speaker:
        for p in batch:
            render_sample(p, root, params, speaker)
    return len(batch)


def _render_all(planned: list[Planned], root: Path, params: dict,
                progress: Callable[[str, int, int], None] | None) -> None:
    """Render every sample; large generations use two worker processes.

    Each sample depends only on its own plan, so splitting the work changes no byte.
    Workers are spawned, not forked: the parent may hold torch threads.
    """
    batches = [planned[k:k + BATCH] for k in range(0, len(planned), BATCH)]
    workers = min(MAX_WORKERS, os.cpu_count() or 1, len(batches))
    done = 0
    if workers <= 1:
        for batch in batches:
            done += render_batch(batch, root, params)
            if progress:
                progress(NAME, done, len(planned))
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in as_completed([pool.submit(render_batch, batch, root, params) for batch in batches]):
            done += future.result()
            if progress:
                progress(NAME, done, len(planned))


def _marker(params: dict, seed: int, complete: bool, count: int) -> dict:
    recorded = {k: v for k, v in params.items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}
    return {"generator": NAME, "version": GENERATOR_VERSION, "seed": seed, "parameters": recorded,
            "samples": count, "complete": complete}


def _is_current(root: Path, expected: dict, samples: list[Sample]) -> bool:
    try:
        found = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return found == expected and all((root / f).is_file() for s in samples for f in (s.audio, *s.images) if f)


def _claim(root: Path) -> None:
    """Make `root` ready for a fresh generation, refusing to touch anything that is not ours."""
    if (root / MARKER).exists():
        for sub in ("faces", "audio"):
            shutil.rmtree(root / sub, ignore_errors=True)
    elif root.exists() and any(root.iterdir()):
        raise XmdError(f"{root}: the directory is not empty and holds no {NAME} generation ({MARKER})",
                       hint="set data.root to a new or empty directory for the generated data")
    root.mkdir(parents=True, exist_ok=True)


def _write_marker(root: Path, content: dict) -> None:
    _atomic(root / MARKER, lambda tmp: tmp.write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8"))


def read(config: DataConfig, workdir: Path,
         progress: Callable[[str, int, int], None] | None = None) -> AdapterOutput:
    """Generate (or reuse) synthetic-persons and list it as manifest samples with trials."""
    root = Path(config.root) if config.root else Path(workdir) / "data" / NAME
    params = effective_parameters(config)
    planned = plan(params, config.seed)
    samples = [to_sample(p) for p in planned]
    complete = _marker(params, config.seed, True, len(samples))
    if not _is_current(root, complete, samples):
        _claim(root)
        # An incomplete marker first: a crash leaves a directory that is ours but
        # never looks complete, and the next run regenerates it.
        _write_marker(root, {**complete, "complete": False})
        _render_all(planned, root, params, progress)
        _write_marker(root, complete)
    elif progress:
        progress(NAME, len(planned), len(planned))
    if params["population"] == "teacher-faces":  # no test split, so no trials
        return AdapterOutput(samples=samples, root=root)
    return AdapterOutput(samples=samples, root=root,
                         trials={NAME: trials(planned, params["trials_per_identity"], config.seed)})
