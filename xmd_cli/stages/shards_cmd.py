"""`xmd shards info|verify|repair|export`: thin wrappers that print what xmd_cli.shards finds."""

from __future__ import annotations

from pathlib import Path

from xmd_cli.console import Output
from xmd_cli.errors import XmdError


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def run_info(store: Path, out: Output) -> dict:
    from xmd_cli.shards import summary

    info = summary(store)
    rows = [("ids", info["ids"]),
            ("rows", info["rows"] if info["frames"] == "mean" else f"{info['rows']} (every frame)"),
            ("dim", info["dim"]), ("dtype", info["dtype"]), ("frames", info["frames"]),
            ("shards", f"{info['shards']} (ranks {', '.join(map(str, info['ranks'])) or '-'}; "
                       f"{info['shard_rows']} rows a shard)"),
            ("size on disk", f"{_size(info['bytes'])} ({info['bytes_per_row']} B a row)"),
            ("index", info["index"]), ("fingerprint", info["fingerprint"][:16])]
    rows += [(f"  {key}", _short(value)) for key, value in sorted(info["components"].items())]
    rows += [("xmd version", info["xmd_version"]), ("created", info["created"])]
    if info["unreadable_shards"]:
        rows.append(("unreadable shards", f"{info['unreadable_shards']} (run `xmd shards verify`)"))
    if info["live_writers"]:
        rows.append(("being written", ", ".join(f"{k} (pid {v or '?'})" for k, v in info["live_writers"].items())))
    if info["leftover_temporaries"]:
        rows.append(("interrupted writes", f"{len(info['leftover_temporaries'])} temporary file(s); "
                                           "rerun the writer to resume"))
    out.table(str(store), rows, ("", "value"))
    return info


def run_verify(store: Path, out: Output) -> dict:
    from xmd_cli.shards import verify
    from xmd_cli.shards.format import list_shards, read_meta

    read_meta(store)  # a directory that is no store at all is an error, not a list of problems
    problems = verify(store)
    shards = len(list_shards(store))
    if not problems:  # the problems themselves are the command's error message
        out.note(f"{store}: {shards} shard(s), every header, row checksum and index entry is sound")
    return {"store": str(store), "shards": shards, "ok": not problems, "problems": problems}


def run_export(store: Path, out_path: Path, out: Output) -> dict:
    from xmd_cli.shards import export

    if out_path.exists() and out_path.is_dir():
        raise XmdError(f"--out {out_path}: is a folder", hint="name a file ending in .csv, .npz or .npy")
    result = export(store, out_path)
    out.note(f"exported {result['ids']} id(s), {result['rows']} row(s) of dim {result['dim']} to {out_path}")
    return result


def run_repair(store: Path, out: Output) -> dict:
    from xmd_cli.shards import repair

    report = repair(store)
    for entry in report["dropped"]:
        ids = "? ids" if entry["ids"] is None else f"{entry['ids']} id(s)"
        where = f", moved to {entry['moved_to']}" if entry.get("moved_to") else ""
        out.note(f"dropped {entry['name']} ({ids}): {entry['reason']}{where}")
    if report["shards_dropped"]:
        out.note(f"{store}: dropped {report['shards_dropped']} shard(s) and "
                 f"{'' if report['ids_dropped_exact'] else 'at least '}{report['ids_dropped']} id(s); "
                 f"index rebuilt over {report['shards_kept']} sound shard(s), {report['ids']} id(s). "
                 "Rerun the writer (xmd extract-teacher / score-quality) to recompute the dropped ids")
    else:
        out.note(f"{store}: nothing to drop; index rebuilt over {report['shards_kept']} shard(s), "
                 f"{report['ids']} id(s)")
    return report
