"""How commands talk to people and to scripts.

Human output (tables, progress bars, notes) goes to stderr, so that with
`--json` stdout carries exactly one JSON document a script can parse.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table


@dataclass
class Output:
    json_mode: bool = False
    verbosity: int = 1  # 0 quiet, 1 normal, 2 verbose

    def __post_init__(self):
        self.err = Console(stderr=True, highlight=False)

    def note(self, message: str) -> None:
        if self.verbosity >= 1:
            self.err.print(message)

    def detail(self, message: str) -> None:
        if self.verbosity >= 2:
            self.err.print(f"[dim]{message}[/dim]")

    def warning(self, message: str) -> None:
        """Something the user should know that stops nothing; shown unless --quiet."""
        if self.verbosity >= 1:
            self.err.print(f"[bold yellow]warning:[/bold yellow] {escape(message)}", soft_wrap=True)

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)

    def table(self, title: str, rows: list[tuple], columns: tuple[str, ...] = ("", "")) -> None:
        if self.verbosity < 1 or self.json_mode:
            return
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(escape(str(cell)) for cell in row))
        self.err.print(table)

    def result(self, data: dict) -> None:
        """The command's machine-readable result: printed as JSON only with --json."""
        if self.json_mode:
            sys.stdout.write(json.dumps(data, indent=1, default=str) + "\n")

    @contextmanager
    def progress(self):
        """Yields `update(stage, done, total, info="")`: one rich bar per stage, with ETA.

        `info` is free text shown after the bar (loss terms, throughput).
        """
        if self.verbosity < 1:
            yield lambda stage, done, total, info="": None
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
