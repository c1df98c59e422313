"""How commands talk to people and to scripts.

Human output (tables, progress bars, notes) goes to stderr, so that with
`--json` stdout carries exactly one JSON document a script can parse. Under
torchrun (`--nproc`) only rank 0 speaks: N copies of every line (and N JSON
documents on stdout) would help nobody; errors still come from every rank.
On a terminal progress is a live bar; elsewhere (a batch job's log) it is a
line every PROGRESS_SECONDS or PROGRESS_STEP of the work, and one at the end.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

PROGRESS_SECONDS = 10.0
PROGRESS_STEP = 0.1


def is_rank_zero() -> bool:
    """False in every torchrun process but the first (RANK is set by torchrun)."""
    return os.environ.get("RANK", "0") == "0"


@dataclass
class Output:
    json_mode: bool = False
    verbosity: int = 1  # 0 quiet, 1 normal, 2 verbose

    def __post_init__(self):
        self.err = Console(stderr=True, highlight=False)
        self.speaks = is_rank_zero()

    def note(self, message: str) -> None:
        if self.verbosity >= 1 and self.speaks:
            self.err.print(message)

    def detail(self, message: str) -> None:
        if self.verbosity >= 2 and self.speaks:
            self.err.print(f"[dim]{message}[/dim]")

    def warning(self, message: str) -> None:
        """Something the user should know that stops nothing; shown unless --quiet."""
        if self.verbosity >= 1 and self.speaks:
            self.err.print(f"[bold yellow]warning:[/bold yellow] {escape(message)}", soft_wrap=True)

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)

    def table(self, title: str, rows: list[tuple], columns: tuple[str, ...] = ("", "")) -> None:
        if self.verbosity < 1 or self.json_mode or not self.speaks:
            return
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(escape(str(cell)) for cell in row))
        self.err.print(table)

    def result(self, data: dict) -> None:
        """The command's result on stdout: with --json, and with --quiet (whose tables are off,
        so the result is all it prints); as one JSON document either way."""
        if (self.json_mode or self.verbosity == 0) and self.speaks:
            sys.stdout.write(json.dumps(data, indent=1, default=str) + "\n")

    @contextmanager
    def progress(self):
        """Yields `update(stage, done, total, info="")`: one rich bar per stage, with ETA.

        `info` is free text shown after the bar (loss terms, throughput).
        """
        if self.verbosity < 1 or not self.speaks:
            yield lambda stage, done, total, info="": None
            return
        if not self.err.is_terminal:
            yield LogProgress(self.err.print)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                        console=self.err, transient=False)
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int, info: str = "") -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total, info=info)
            bars.update(tasks[stage], completed=done, total=total, info=info)

        with bars:
            yield update


class LogProgress:
    """Progress for a log file: a plain line when a stage starts, every PROGRESS_SECONDS or
    PROGRESS_STEP of its total since the last line, and when it completes."""

    def __init__(self, write, clock=time.monotonic):
        self.write, self.clock = write, clock
        self.last: dict[str, tuple[float, int]] = {}  # stage -> (time, done) of its last line
        self.started: dict[str, float] = {}

    def __call__(self, stage: str, done: int, total: int | None, info: str = "") -> None:
        now = self.clock()
        self.started.setdefault(stage, now)
        last_time, last_done = self.last.get(stage, (None, None))
        finished = total is not None and done >= total
        due = (last_time is None or now - last_time >= PROGRESS_SECONDS or finished
               or (total and (done - last_done) / total >= PROGRESS_STEP))
        if not due or (finished and last_done == done):
            return
        self.last[stage] = (now, done)
        share = f" ({100 * done / total:.0f}%)" if total else ""
        of = f"/{total}" if total is not None else ""
        self.write(f"{stage}: {done}{of}{share} {now - self.started[stage]:.0f}s" + (f" {info}" if info else ""),
                   markup=False, highlight=False, soft_wrap=True)
