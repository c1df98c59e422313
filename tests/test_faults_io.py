"""Fault injection on recipes, disks and media, through the real CLI (docs/faults.md).

Recipes: an alias bomb, deep nesting, a cyclic alias and non-UTF-8 bytes are each
one line naming the file, in well under a second. Disks: a tiny tmpfs (mounted
where the tests may mount, as root in CI; else those tests skip) is filled or
remounted read-only under a prepared work directory, and every stage must stop
with one line naming the path before it computes, leaving no temporary file;
EACCES and an ENOSPC without a file name are injected in-process, so they run
everywhere. Media: a float wav with NaN, a truncated 9000x9000 PNG and a
recording far beyond full scale.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from xmd_cli.cli import app

runner = CliRunner()
CONTROL = ["--set", "teacher.kind=random", "--set", "teacher.control_dim=8", "--set", "teacher.shard_rows=8"]
BILLION_LAUGHS = "".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    + [f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")])


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *fragments: str) -> str:
    """The command failed with exit 1 and one error line naming what it must (a hint may follow), no traceback."""
    text = result.output
    assert result.exit_code == 1, text
    assert "Traceback" not in text and isinstance(result.exception, (SystemExit, type(None))), text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    message = errors[-1]
    if "1 of 1 recipe(s) invalid" in message:  # `recipes validate` puts each file's error on its own line
        message = text.split(message, 1)[1].strip().splitlines()[0]
    for fragment in fragments:
        assert fragment in message, text
    return message


# ---------------------------------------------------------------- recipes
def test_alias_bomb_is_refused_within_a_second(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS)
    for command in (["recipes", "validate", bomb], ["prepare", "synthetic-captions", "-r", bomb, "-w", tmp_path / "w"]):
        started = time.perf_counter()
        result = cli(*command)
        assert time.perf_counter() - started < 5
        one_line_error(result, str(bomb), "aliases expand to more than")
    assert not (tmp_path / "w").exists()  # refused before the stage made anything


def test_alias_bomb_in_set_is_refused(tmp_path):
    bomb = "{" + BILLION_LAUGHS.replace("\n", ", ").rstrip(", ") + "}"
    started = time.perf_counter()
    result = cli("prepare", "synthetic-captions", "-w", tmp_path / "w", "--set", f"data.columns={bomb}")
    assert time.perf_counter() - started < 5
    one_line_error(result, "--set data.columns", "aliases expand")
    assert not (tmp_path / "w").exists()


def test_aliases_within_the_bound_still_load_and_stay_separate(tmp_path):
    from xmd_cli.recipe import apply_overrides, load_yaml

    path = tmp_path / "shared.yaml"
    path.write_text("training: &t {lr: 0.1}\nspare: *t\n")
    raw, lines = load_yaml(path)
    assert raw["spare"] == {"lr": 0.1} and lines[("spare",)] == 2
    apply_overrides(raw, ["spare.lr=3"])  # the alias's target must not change with it
    assert raw["training"]["lr"] == 0.1 and raw["spare"]["lr"] == 3


def test_cyclic_alias_is_refused(tmp_path):
    path = tmp_path / "cycle.yaml"
    path.write_text("data:\n  trials: &t [*t]\n")
    one_line_error(cli("recipes", "validate", path), f"{path}:2", "alias refers to the section that contains it")


DEEP = {"flow": ("data:\n  columns: " + "[" * 3000 + "]" * 3000 + "\n", "nested more than 32 levels"),
        "flow-40": ("data:\n  columns: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels"),
        "block": ("data:\n" + "".join(" " * i + "k:\n" for i in range(2, 700)), "nested too deeply to parse")}


@pytest.mark.parametrize("kind", sorted(DEEP))
def test_deep_nesting_is_refused_quickly(tmp_path, kind):
    text, says = DEEP[kind]
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    started = time.perf_counter()
    result = cli("recipes", "validate", path)
    assert time.perf_counter() - started < 5  # PyYAML alone spends ~10 s scanning 3000 open brackets
    one_line_error(result, str(path), says)


def test_brackets_in_quotes_and_comments_do_not_count(tmp_path):
    path = tmp_path / "quoted.yaml"
    path.write_text('name: "' + "[" * 40 + '"  # ' + "{" * 40 + "\ndata: {trials: ['" + "[" * 40 + "']}\n")
    result = cli("recipes", "validate", path)
    assert result.exit_code == 0, result.output


def test_non_utf8_recipe_names_the_byte_offset(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: run\n# r\xe9sum\xe9\n".encode("latin-1"))
    one_line_error(cli("recipes", "validate", path), f"{path}:2", "not UTF-8", "byte offset 13", "0xe9")


# ---------------------------------------------------------------- disks
@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A tiny synthetic-captions work directory with a random-control teacher store."""
    w = tmp_path_factory.mktemp("io") / "w"
    assert cli("prepare", "synthetic-captions", "--tiny", "-w", w, "-q").exit_code == 0
    done = cli("extract-teacher", "-r", "demo-captions", "-w", w, *CONTROL, "-q")
    assert done.exit_code == 0, done.output
    return w


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs of our own (unmounted after), or a skip where this process may not mount."""
    where = tmp_path / "disk"
    if not _mount_tmpfs(where, "4m"):
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)


def _fill(disk: Path, leave: int = 0) -> None:
    """Fill the disk, then free `leave` bytes (a spare file written first), so exactly that much is left."""
    if leave:
        (disk / "spare").write_bytes(b"\0" * leave)
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    if leave:
        (disk / "spare").unlink()


def _remount_read_only(disk: Path) -> None:
    done = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, timeout=10)
    if done.returncode:
        pytest.skip(f"cannot remount read-only: {done.stderr.decode(errors='replace')}")


# Every stage, as a user runs it on the prepared work directory W (its out dirs inside W).
STAGES = {
    "prepare": ["prepare", "synthetic-captions", "--tiny"],
    "extract-teacher": ["extract-teacher", "-r", "demo-captions", *CONTROL, "--force"],
    "score-quality": ["score-quality", "--modality", "image", "-r", "demo-captions", "--device", "cpu"],
    "train": ["train", "-r", "demo-captions", "--device", "cpu"],
    "distill": ["distill", "-r", "demo-captions", "--device", "cpu"],
    "diagnose": ["diagnose", "-r", "demo-captions", *CONTROL],
    "ablate": ["ablate", "-r", "demo-captions", "--grid", "quick", "--device", "cpu"],
}


def _work_on(disk: Path, prepared: Path) -> Path:
    w = disk / "w"
    shutil.copytree(prepared, w, symlinks=True)
    return w


def _temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith((".tmp-", ".xmd-probe-")) or p.name.endswith(".tmp")]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_read_only_disk_is_one_line_at_every_stage(small_disk, prepared, stage):
    w = _work_on(small_disk, prepared)
    _remount_read_only(small_disk)
    one_line_error(cli(*STAGES[stage], "-w", w), "read-only", str(w))


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_full_disk_is_one_line_at_every_stage(small_disk, prepared, stage):
    w = _work_on(small_disk, prepared)
    _fill(small_disk)
    one_line_error(cli(*STAGES[stage], "-w", w), "no space left", str(w))
    assert not _temporaries(w)


def test_demo_and_evaluate_on_a_read_only_disk(small_disk, prepared, tmp_path):
    w = _work_on(small_disk, prepared)
    scores = tmp_path / "scores.txt"
    scores.write_text("1 a b 0.5\n")
    _remount_read_only(small_disk)
    one_line_error(cli("demo", "--task", "image", "--tiny", "-w", small_disk / "demo", "--device", "cpu"),
                   "read-only", str(small_disk / "demo"))
    # --out on the read-only disk: refused before any trial is scored.
    one_line_error(cli("evaluate", "--scores", scores, "-w", w, "--out", w / "reports" / "x"),
                   "read-only", str(w / "reports"))  # the directory it could not make


def test_disk_full_during_extraction_leaves_no_temporary(small_disk, prepared):
    """The probe passes (a block is free) but the shard does not fit: the 0-byte temporary is removed."""
    w = _work_on(small_disk, prepared)
    _fill(small_disk, leave=64 * 1024)
    big = ["--set", "teacher.kind=random", "--set", "teacher.control_dim=16384", "--set", "teacher.dtype=float32"]
    result = cli("extract-teacher", "-r", "demo-captions", "-w", w, *big)
    one_line_error(result, "no space left", str(w / "teacher"), "shard-r000-00000")  # the shard, not the probe
    assert not _temporaries(w), _temporaries(w)


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    """As root chmod stops nothing, so EACCES is injected where the probe creates its file."""
    import tempfile

    real = tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(tmp_path / "w")):
            raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, ".xmd-probe-x"))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    one_line_error(cli("prepare", "synthetic-captions", "--tiny", "-w", tmp_path / "w"), "permission denied",
                   str(tmp_path / "w"))
    assert not (tmp_path / "w" / "data").exists()  # stopped before generating anything


def test_enospc_without_a_file_name_names_the_work_directory(prepared, tmp_path, monkeypatch):
    """write() on a full disk raises ENOSPC with no file name: the message still says where."""
    import xmd_cli.stages.prepare as prepare

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prepare, "write_manifest", full)
    w = tmp_path / "w"
    one_line_error(cli("prepare", "synthetic-captions", "--tiny", "-w", w), "no space left", f"writing under {w}")


def test_other_os_errors_keep_their_traceback(tmp_path, monkeypatch):
    import xmd_cli.stages.prepare as prepare

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(prepare, "write_manifest", broken)
    result = cli("prepare", "synthetic-captions", "--tiny", "-w", tmp_path / "w")
    assert isinstance(result.exception, OSError) and result.exception.errno == errno.EIO  # a bug or a dying disk


def test_atomic_writes_remove_their_temporary_on_enospc(tmp_path, monkeypatch):
    from xmd_cli.io import write_text
    from xmd_cli.shards.format import atomic_write

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as raised:
        atomic_write(tmp_path / "shard.safetensors", b"x" * 100)
    assert raised.value.filename.endswith("shard.safetensors." + str(os.getpid()))
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: (self.touch(), full(0)))
    with pytest.raises(OSError):
        write_text(tmp_path / "report.md", "text")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- media
def _wav_table(tmp_path: Path, sample: np.ndarray, rate: int = 16000) -> Path:
    """An imagefolder-free table dataset: 3 speakers x 3 clean float wavs, and `sample` as one more."""
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for k in range(9):
        name = f"s{k}.wav"
        sf.write(root / name, (0.1 * rng.standard_normal(rate)).astype(np.float32), rate, subtype="FLOAT")
        rows.append({"id": f"s{k}", "label": f"spk{k % 3}", "audio": name})
    sf.write(root / "bad.wav", sample.astype(np.float32), rate, subtype="FLOAT")
    rows.append({"id": "bad", "label": "spk0", "audio": "bad.wav"})
    (root / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_nan_float_wav_is_a_problem_at_prepare(tmp_path):
    wave = 0.1 * np.random.default_rng(1).standard_normal(16000)
    wave[8000] = np.nan
    root = _wav_table(tmp_path, wave)
    w = tmp_path / "w"
    result = cli("prepare", "table", "--root", root, "--table", root / "samples.jsonl", "-w", w, "--json", "-q")
    assert result.exit_code == 0, result.output
    report = json.loads((w / "prepare-report.json").read_text())
    example = report["by_kind"]["unreadable-audio"]["examples"][0]
    assert example["sample_id"] == "bad" and "NaN" in example["detail"] and "0.500 s" in example["detail"]
    assert '"bad"' not in (w / "manifest.jsonl").read_text()


def test_nan_samples_in_a_batch_are_named(monkeypatch):
    import torch

    from xmd_cli.errors import XmdError
    from xmd_cli.training.step import check_finite, check_inputs

    inputs = torch.zeros(3, 100)
    inputs[1, 7] = float("nan")
    with pytest.raises(XmdError, match="sample\\(s\\) b holds NaN"):
        check_inputs(inputs, ["a", "b", "c"], 5)
    with pytest.raises(XmdError, match="'cls_student' is nan on the batch of sample\\(s\\) a, b, c"):
        check_finite({"cls_student": torch.tensor(float("nan"))}, 5, Path("last"), ["a", "b", "c"])


def test_nan_wav_read_at_training_names_the_sample(tmp_path):
    """A file damaged after prepare: the dataset's error names the sample id and the file."""
    from xmd_cli.data.datasets import SpeechDataset
    from xmd_cli.data.manifest import read_manifest
    from xmd_cli.errors import XmdError

    wave = 0.1 * np.random.default_rng(1).standard_normal(16000)
    root = _wav_table(tmp_path, wave)
    w = tmp_path / "w"
    assert cli("prepare", "table", "--root", root, "--table", root / "samples.jsonl", "-w", w, "-q").exit_code == 0
    wave[100] = np.inf
    sf.write(root / "bad.wav", wave.astype(np.float32), 16000, subtype="FLOAT")
    manifest = read_manifest(w)
    dataset = SpeechDataset(manifest, ["train", "validation", "test"], sample_rate=16000, crop_seconds=None,
                            train=False)
    position = [s.id for s in dataset.samples].index("bad")
    with pytest.raises(XmdError, match=r"sample 'bad': .*bad\.wav: holds NaN or infinite samples"):
        dataset[position]


def _truncated_png(path: Path, side: int = 9000) -> None:
    """A valid 9000x9000 greyscale PNG header and the first part of its compressed rows, then nothing."""
    rows = zlib.compress(b"".join(b"\0" + bytes([200]) * side for _ in range(side)), 1)
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows[: len(rows) // 50]))


def test_truncated_png_is_refused_not_decoded_as_black(tmp_path, monkeypatch):
    from PIL import ImageFile

    from xmd_cli.data.media import image_issue, load_image
    from xmd_cli.errors import XmdError

    path = tmp_path / "big.png"
    _truncated_png(path)
    assert image_issue(path) is not None  # prepare's check
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some library may set it
    with pytest.raises(XmdError, match="big.png"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the process-wide switch is left as found


def test_over_range_audio_scores_lower_with_a_reason():
    from xmd_cli.quality import get_scorer

    scorer = get_scorer("speech")
    rng = np.random.default_rng(3)
    t = np.arange(3 * 16000) / 16000
    speech = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.003 * rng.standard_normal(t.size)
    clean = scorer.score((speech, 16000))
    hot = scorer.score((speech * 2.0, 16000))  # peaks at 1.8: beyond full scale, not clipped yet
    wild = scorer.score((speech * 1000.0, 16000))  # int16-like values stored as float
    assert clean.signals["over_range"] == 0 and clean.reason is None
    assert hot.signals["over_range"] > 0.05 and hot.score < 0.1 * clean.score
    assert wild.score == 0 and "far beyond full scale" in wild.reason and "+56 dBFS" in wild.reason
