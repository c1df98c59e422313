"""What a run directory promises under faults, through the real CLI on tiny synthetic-captions data.

kill -9 at the checkpoint swap, two writers, a malicious state.pt, a name escaping the
work directory, a changed recipe on --resume, a rerun without --resume.
"""

import json
import os
import pickle
import subprocess
import sys

import pytest

from xmd_cli.training.rundir import RunLock

# Every test here trains tiny runs through the real CLI.
pytestmark = pytest.mark.slow

XMD = [sys.executable, "-m", "xmd_cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# Supervised student alone (no teacher store needed), 3 epochs x 2 steps, a checkpoint every step.
TRAIN = ["train", "-r", "demo-captions", "-w", "w", "--set", "student.image_size=32",
         "--set", "student.image_channels=[8,16,16,32]", "--set", "student.embedding_dim=16",
         "--set", "training.batch_size=8", "--set", "training.warmup_steps=2", "--set", "training.log_every=1",
         "--set", "training.epochs=3", "--set", "training.checkpoint_every_steps=1",
         "--set", "method.feature.loss=none", "--set", "method.classifier.kind=none",
         "--set", "method.qaw.enabled=false", "-q"]


def xmd(*args, cwd, env=None, timeout=300):
    return subprocess.run([*XMD, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**ENV, **(env or {})})


def ok(done):
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def refused(done, *needles):
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in done.stderr, (needle, done.stderr)
    return done.stderr


def steps(run):
    """metrics.jsonl without the timing field: what must not repeat or differ after a resume."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in records]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    ok(xmd("prepare", "synthetic-captions", "--tiny", "-w", "w", "-q", cwd=root))
    return root


@pytest.fixture(scope="module")
def straight(work):
    """An uninterrupted run: the numbers every interrupted one must end with."""
    ok(xmd(*TRAIN, "--set", "name=straight", cwd=work))
    return work / "w" / "runs" / "straight"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["checkpoint-swap:3", "checkpoint-swapped:4"])
def test_kill_at_the_checkpoint_swap_then_resume_is_exact(work, straight, point):
    name = "killed-" + point.replace(":", "-")
    killed = xmd(*TRAIN, "--set", f"name={name}", cwd=work, env={"XMD_TEST_KILL_AT": point})
    assert killed.returncode == -9, killed.stderr[-2000:]
    run = work / "w" / "runs" / name
    meta = json.loads((run / "checkpoints" / "last" / "meta.json").read_text())
    assert 1 <= meta["global_step"] < 6  # a whole checkpoint, from before the end
    ok(xmd(*TRAIN, "--set", f"name={name}", "--resume", cwd=work))
    assert ((run / "checkpoints" / "last" / "weights.safetensors").read_bytes()
            == (straight / "checkpoints" / "last" / "weights.safetensors").read_bytes())
    assert steps(run) == steps(straight)  # no step logged twice, none missing
    hidden = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".last.")]
    assert hidden == [os.readlink(run / "checkpoints" / "last")]  # the kill's leftovers are gone


def test_a_second_writer_is_refused_naming_the_run_and_the_other_process(work):
    run = work / "w" / "runs" / "busy"
    with RunLock(run, "busy"):
        stderr = refused(xmd(*TRAIN, "--set", "name=busy", cwd=work), "run 'busy'", f"pid {os.getpid()}")
    assert "in use" in stderr
    assert not (run / "checkpoints").exists()


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling creates the marker file


def test_a_malicious_state_pt_is_refused_and_never_unpickled(work, tmp_path):
    # The payload works: unpickling it does create its marker.
    pickle.loads(pickle.dumps(_Payload(str(tmp_path / "proof"))))
    assert (tmp_path / "proof").exists()
    marker = tmp_path / "pwned"
    last = work / "w" / "runs" / "evil" / "checkpoints" / "last"
    last.mkdir(parents=True)
    (last / "state.pt").write_bytes(pickle.dumps({"optimizer": _Payload(str(marker))}))
    (last / "meta.json").write_text(json.dumps({"task": "train", "epoch": 1, "global_step": 2}))
    refused(xmd(*TRAIN, "--set", "name=evil", "--resume", cwd=work), "state.pt", "--force")
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/xmd-absolute-run", "..", "a/../../b"])
def test_a_run_name_outside_the_work_directory_is_refused(work, name):
    refused(xmd(*TRAIN, "--set", f"name={name}", cwd=work), f"name={name!r}")
    assert not (work / "escaped").exists() and not (work / "b").exists()
    assert not os.path.exists("/tmp/xmd-absolute-run")


@pytest.mark.slow
def test_resume_with_another_lr_is_refused_naming_the_key(work, straight):
    before = (straight / "checkpoints" / "last" / "weights.safetensors").read_bytes()
    stderr = refused(xmd(*TRAIN, "--set", "name=straight", "--resume", "--set", "training.lr=0.01", cwd=work),
                     "training.lr", "--allow-recipe-change")
    assert "training.log_every" not in stderr
    # Logging is harmless: the finished run resumes (to nothing left to do) with another log_every.
    ok(xmd(*TRAIN, "--set", "name=straight", "--resume", "--set", "training.log_every=2", cwd=work))
    ok(xmd(*TRAIN, "--set", "name=straight", "--resume", "--set", "training.lr=0.01", "--allow-recipe-change",
           cwd=work))
    assert (straight / "checkpoints" / "last" / "weights.safetensors").read_bytes() == before


@pytest.mark.slow
def test_a_rerun_without_resume_is_refused_and_force_starts_over(work, straight):
    ok(xmd(*TRAIN, "--set", "name=again", cwd=work))
    run = work / "w" / "runs" / "again"
    logged = steps(run)
    refused(xmd(*TRAIN, "--set", "name=again", cwd=work), "run 'again' already exists", "--resume", "--force")
    assert steps(run) == logged
    refused(xmd(*TRAIN, "--set", "name=again", "--resume", "--force", cwd=work), "pass only one")
    ok(xmd(*TRAIN, "--set", "name=again", "--force", "--set", "training.epochs=2", cwd=work))
    assert max(r["step"] for r in steps(run)) == 4  # the new run alone, nothing of the old one
    assert json.loads((run / "checkpoints" / "last" / "meta.json").read_text())["global_step"] == 4
