"""Export a store's rows with their ids, for a user's own analysis.

.csv: `id,v0,...` (plus a `frame` column for a store of every frame), values as
float32 written with 9 significant digits, which reads back exactly; .npz: arrays
`ids`, `rows` (float32), and `frame` for a store of every frame; .npy: the rows,
with the ids one a line in a `<name>.ids.txt` beside it. Rows come sorted by id,
so the same store exports the same file whatever the ranks and resumes that made
it. Written chunk by chunk (a store larger than memory exports fine) to a
temporary file renamed at the end.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from xmd_cli.errors import XmdError
from xmd_cli.shards.reader import ShardReader

FORMATS = (".csv", ".npz", ".npy")


def export(directory: Path, out_path: Path, *, chunk: int = 4096) -> dict:
    """Write every row of a verified store to `out_path` (.csv, .npz or .npy, by its suffix).

    Returns what was written: {out, ids, rows, dim, format}.

    Examples
    --------
    >>> import tempfile
    >>> from xmd_cli.shards.writer import ShardWriter
    >>> store = Path(tempfile.mkdtemp())
    >>> with ShardWriter(store, {"teacher": "demo"}, dim=2) as writer:
    ...     writer.add(["b", "a"], [[3.0, 4.5], [1.0, 2.0]])
    >>> result = export(store, store / "rows.csv")
    >>> result["ids"], result["rows"], result["format"]
    (2, 2, 'csv')
    >>> print((store / "rows.csv").read_text(), end="")
    id,v0,v1
    a,1,2
    b,3,4.5
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in FORMATS:
        raise XmdError(f"--out {out_path}: unknown format {suffix or '(no suffix)'}",
                       hint="name the file .csv, .npz or .npy")
    # Every shard's rows are hashed before they are exported: export reads them all anyway, and a
    # file a user takes away should not carry a silently flipped byte.
    reader = ShardReader(directory, verify_rows=True)
    reader.verify_all()
    ids = np.asarray(reader.ids)
    counts = reader.counts(ids)
    every_frame = bool(len(counts) and counts.max() > 1)
    if suffix == ".npy" and every_frame:
        raise XmdError(f"--out {out_path}: this store keeps every frame, which .npy cannot label",
                       hint="export to .npz or .csv")
    if not out_path.parent.is_dir():
        raise XmdError(f"--out {out_path}: folder {out_path.parent} does not exist")
    tmp = out_path.with_name(f".tmp-{out_path.name}.{os.getpid()}")
    total = int(counts.sum())
    try:
        if suffix == ".csv":
            _write_csv(tmp, reader, ids, counts, every_frame, chunk)
        elif suffix == ".npz":
            _write_npz(tmp, reader, ids, counts, every_frame, chunk, total)
        else:
            _write_npy(tmp, reader, ids, chunk, total)
            _write_ids_txt(out_path.with_suffix(".ids.txt"), ids)
        os.replace(tmp, out_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"out": str(out_path), "ids": len(ids), "rows": total, "dim": reader.dim, "format": suffix[1:]}


def _chunks(reader: ShardReader, ids: np.ndarray, counts: np.ndarray, chunk: int):
    """(ids, frame numbers, float32 rows) in id order, every frame of every id."""
    for begin in range(0, len(ids), chunk):
        part = ids[begin:begin + chunk]
        part_counts = counts[begin:begin + chunk]
        if part_counts.max() == 1:
            yield part, np.zeros(len(part), np.int64), reader.get(part, pick="first")
            continue
        rows = np.concatenate([reader.frames_of(i) for i in part])
        offsets = np.repeat(np.cumsum(part_counts) - part_counts, part_counts)
        yield np.repeat(part, part_counts), np.arange(len(rows)) - offsets, rows


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


def _write_csv(path: Path, reader, ids, counts, every_frame: bool, chunk: int) -> None:
    with open(path, "w", newline="") as f:
        head = ["id"] + (["frame"] if every_frame else []) + [f"v{k}" for k in range(reader.dim)]
        f.write(",".join(head) + "\n")
        for part, frame, rows in _chunks(reader, ids, counts, chunk):
            text = io.StringIO()
            np.savetxt(text, rows, fmt="%.9g", delimiter=",")
            for sample_id, number, line in zip(part, frame, text.getvalue().splitlines()):
                prefix = _csv_field(str(sample_id)) + (f",{number}" if every_frame else "")
                f.write(f"{prefix},{line}\n")


def _write_npz(path: Path, reader, ids, counts, every_frame: bool, chunk: int, total: int) -> None:
    with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
        with archive.open("rows.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(
                f, {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
                    "shape": (total, reader.dim)})
            frames_all = []
            for _part, frame, rows in _chunks(reader, ids, counts, chunk):
                f.write(np.ascontiguousarray(rows, "<f4").tobytes())
                frames_all.append(frame)
        with archive.open("ids.npy", "w") as f:
            np.save(f, np.repeat(ids, counts) if every_frame else ids)
        if every_frame:
            with archive.open("frame.npy", "w") as f:
                np.save(f, np.concatenate(frames_all))


def _write_npy(path: Path, reader, ids, chunk: int, total: int) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
                "shape": (total, reader.dim)})
        for begin in range(0, len(ids), chunk):
            f.write(np.ascontiguousarray(reader.get(ids[begin:begin + chunk], pick="first"), "<f4").tobytes())


def _write_ids_txt(path: Path, ids: np.ndarray) -> None:
    if any("\n" in i or "\r" in i for i in ids.tolist()):
        raise XmdError(f"{path}: an id holds a line break, which a one-id-a-line file cannot keep",
                       hint="export to .npz instead")
    tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
    tmp.write_text("".join(f"{i}\n" for i in ids.tolist()))
    os.replace(tmp, path)
