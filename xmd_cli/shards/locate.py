"""Finding a stage's store by the fingerprint its consumer expects.

extract-teacher and score-quality write `WORKDIR/teacher/<fp>/` and
`WORKDIR/quality/<fp>/`, where <fp> hashes everything that determines the
values. A consumer (distill, evaluate, diagnose, a control teacher) computes the
fingerprint it expects from its own recipe, without loading any network, and
refuses a store written with other inputs, saying what differs, unless told to
accept it (--allow-stale).
"""

from __future__ import annotations

from pathlib import Path

from xmd_cli.errors import XmdError
from xmd_cli.shards.fingerprint import diff, store_dir
from xmd_cli.shards.format import read_meta

# The components that say what a store *is*; a stale store must agree on these to stand in.
IDENTITY = {"teacher": ("teacher", "source_teacher"), "quality": ("scorer",)}


def find_store(workdir: Path, kind: str, expected: dict, *, allow_stale: bool, stage: str, out=None) -> Path:
    """The store written with `expected`; with --allow-stale the newest store of the same teacher or scorer.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> workdir, expected = Path(tempfile.mkdtemp()), {"teacher": "facenet", "dtype": "float16"}
    >>> with ShardWriter(store_dir(workdir, "teacher", expected), expected, dim=2) as writer:
    ...     writer.add(["a"], [[1.0, 2.0]])
    >>> find_store(workdir, "teacher", expected, allow_stale=False, stage="extract-teacher").parent.name
    'teacher'
    >>> other = {"teacher": "facenet", "dtype": "float32"}  # same teacher, other inputs
    >>> find_store(workdir, "teacher", other, allow_stale=True, stage="extract-teacher") == store_dir(
    ...     workdir, "teacher", expected)
    True
    >>> find_store(workdir, "teacher", other, allow_stale=False, stage="extract-teacher")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xmd_cli.errors.XmdError: the teacher store ... was written with other inputs than this recipe asks for:
      dtype: expected float32 but the store has float16
      hint: rerun `xmd extract-teacher` with this recipe, or pass --allow-stale to use it anyway
    """
    exact = store_dir(workdir, kind, expected)
    if (exact / "meta.json").exists():
        return exact
    same = IDENTITY[kind]
    candidates = sorted((p for p in (Path(workdir) / kind).glob("*/meta.json")
                         if all(read_meta(p.parent)["components"].get(k) == expected.get(k) for k in same)),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        what = ", ".join(f"{k} {expected.get(k)}" for k in same if expected.get(k) is not None)
        raise XmdError(f"{Path(workdir) / kind}: no {kind} store yet ({what})", hint=f"run `xmd {stage}` first")
    newest = candidates[-1].parent
    differences = diff(expected, read_meta(newest)["components"])
    if allow_stale:
        if out is not None:
            out.note(f"[yellow]using a stale {kind} store[/yellow] {newest}: " + "; ".join(differences))
        return newest
    raise XmdError(f"the {kind} store {newest} was written with other inputs than this recipe asks for:\n  "
                   + "\n  ".join(differences),
                   hint=f"rerun `xmd {stage}` with this recipe, or pass --allow-stale to use it anyway")
