"""Embedding files for other tools: ids and a float32 matrix as .npz, safetensors or Kaldi ark/scp.

  .npz          arrays `ids` (str) and `embeddings` (float32 [n, dim]), row i for ids[i]
  .safetensors  tensor `embeddings` (float32 [n, dim]); the header metadata holds `ids`
                (a JSON list) and `format` = xmd-embeddings-1
  .ark          Kaldi binary float vectors, one per id (kaldiio), with NAME.scp beside
                it (`id NAME.ark:offset`, the ark path as given), as WeSpeaker/Kaldi
                read embeddings (`copy-vector scp:NAME.scp ...`)

Every file is written under a temporary name and renamed, so a kill never
leaves half a file under the final name. `xmd embed` and `xmd evaluate
--save-embeddings` write these; `read_embeddings` reads any of them back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError

FORMATS = {".npz": "npz", ".safetensors": "safetensors", ".ark": "ark"}
SAFETENSORS_FORMAT = "xmd-embeddings-1"


def embedding_format(path: Path, fmt: str | None = None) -> str:
    """npz, safetensors or ark: `fmt` when given, else from the file's suffix.

    >>> embedding_format(Path("emb.ark")), embedding_format(Path("emb.bin"), "npz")
    ('ark', 'npz')
    """
    if fmt is not None:
        if fmt not in FORMATS.values():
            raise XmdError(f"--format {fmt!r} is not one of {', '.join(FORMATS.values())}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise XmdError(f"{path}: unknown embedding format {suffix or '(no suffix)'}",
                       hint="name the file .npz, .safetensors or .ark (Kaldi, with .scp beside it), or pass --format")
    return FORMATS[suffix]


def companion_files(path: Path, fmt: str) -> list[Path]:
    """Every file the format writes for `path` (ark: the .scp too).

    >>> [p.name for p in companion_files(Path("emb.ark"), "ark")]
    ['emb.ark', 'emb.scp']
    """
    path = Path(path)
    return [path, path.with_suffix(".scp")] if fmt == "ark" else [path]


def write_embeddings(path: Path, ids: list[str], rows: np.ndarray, fmt: str | None = None) -> dict:
    """Write `rows` (n, dim) for `ids` to `path` in `fmt`; returns what was written.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "emb.npz"
    >>> write_embeddings(path, ["a", "b"], np.eye(2))["ids"]
    2
    >>> ids, rows = read_embeddings(path)
    >>> ids, rows.tolist()
    (['a', 'b'], [[1.0, 0.0], [0.0, 1.0]])
    """
    path = Path(path)
    fmt = embedding_format(path, fmt)
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    ids = [str(i) for i in ids]
    if rows.ndim != 2 or rows.shape[0] != len(ids):
        raise ValueError(f"rows must be [{len(ids)}, dim], got {list(rows.shape)}")
    if not path.parent.is_dir():
        raise XmdError(f"{path}: folder {path.parent} does not exist", hint="create it, or write elsewhere")
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    try:
        if fmt == "npz":
            with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
                np.savez(f, ids=np.asarray(ids, dtype=str), embeddings=rows)
        elif fmt == "safetensors":
            _write_safetensors(tmp, ids, rows)
        else:
            _write_ark(tmp, path, ids, rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"out": str(path), "format": fmt, "ids": len(ids), "dim": int(rows.shape[1]),
            "files": [str(p) for p in companion_files(path, fmt)]}


def _write_safetensors(tmp: Path, ids: list[str], rows: np.ndarray) -> None:
    from safetensors.numpy import save_file

    save_file({"embeddings": rows}, str(tmp), metadata={"format": SAFETENSORS_FORMAT, "ids": json.dumps(ids)})


def _write_ark(tmp: Path, path: Path, ids: list[str], rows: np.ndarray) -> None:
    import kaldiio

    bad = next((i for i in ids if not i or any(c.isspace() for c in i)), None)
    if bad is not None:
        # A Kaldi table key ends at the first space: such an id would be read back as another.
        raise XmdError(f"{path}: id {bad!r} is empty or holds white space, which a Kaldi ark/scp cannot keep",
                       hint="write .npz or .safetensors instead, or rename the inputs")
    scp_tmp = tmp.with_suffix(".scp-tmp")
    try:
        with kaldiio.WriteHelper(f"ark,scp:{tmp},{scp_tmp}") as writer:
            for key, row in zip(ids, rows):
                writer(key, row)
        # The scp names the temporary ark; point it at the final name (offsets are unchanged).
        lines = scp_tmp.read_text(encoding="utf-8").splitlines()
        prefix = f" {tmp}:"
        fixed = [line.replace(prefix, f" {path}:", 1) for line in lines]
        scp = path.with_suffix(".scp")
        scp_new = scp.with_name(f".tmp-{scp.name}.{os.getpid()}")
        scp_new.write_text("".join(f"{line}\n" for line in fixed), encoding="utf-8")
        os.replace(scp_new, scp)
    finally:
        scp_tmp.unlink(missing_ok=True)


def read_embeddings(path: Path) -> tuple[list[str], np.ndarray]:
    """(ids, float32 [n, dim]) of a file `write_embeddings` wrote (or a Kaldi ark/scp of vectors).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "emb.ark"
    >>> _ = write_embeddings(path, ["utt1"], np.array([[0.5, 2.0]]))
    >>> read_embeddings(path.with_suffix(".scp"))[1].tolist()
    [[0.5, 2.0]]
    """
    path = Path(path)
    if not path.is_file():
        raise XmdError(f"{path}: no such embedding file")
    fmt = embedding_format(path) if path.suffix.lower() != ".scp" else "scp"
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as data:
            if "ids" not in data or "embeddings" not in data:
                raise XmdError(f"{path}: not an embedding file (needs arrays `ids` and `embeddings`)")
            return [str(i) for i in data["ids"]], data["embeddings"].astype(np.float32)
    if fmt == "safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != SAFETENSORS_FORMAT:
                raise XmdError(f"{path}: not an xmd embedding file (metadata format {meta.get('format')!r})")
            return json.loads(meta["ids"]), f.get_tensor("embeddings").astype(np.float32)
    import kaldiio

    table = kaldiio.load_scp(str(path)) if fmt == "scp" else kaldiio.load_ark(str(path))
    pairs = list(table.items()) if fmt == "scp" else list(table)
    if not pairs:
        return [], np.zeros((0, 0), np.float32)
    return [k for k, _ in pairs], np.stack([np.asarray(v, np.float32) for _, v in pairs])
