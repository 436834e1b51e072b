"""Rich output shared by all commands: errors, progress bars, summary tables.

Progress and messages go to stderr, so stdout stays clean for piping; bars are shown only
on a terminal, so logs of batch jobs are not flooded with redraws.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pipelines.errors import DchagError
from pipelines.notes import logger as note_logger

# Redirected to a file (a batch job's log), output is never cut to a terminal's 80 columns.
_FILE_WIDTH = 240
err = Console(stderr=True, highlight=False,
              width=None if sys.stderr.isatty() else _FILE_WIDTH)
out = Console(highlight=False, width=None if sys.stdout.isatty() else _FILE_WIDTH)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn `DchagError` (and the file system's own errors) into one red line on stderr
    and exit code 1; Ctrl-C into one line and exit code 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        show_notes()
        try:
            return fn(*args, **kwargs)
        except DchagError as exc:
            err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # permissions, a vanished file, a full disk: not a bug
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(f"[bold red]error:[/] {where}{exc.strerror or exc}", soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/] (Ctrl-C); nothing half-written was kept",
                      soft_wrap=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


class _NoteHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[yellow]note:[/] {record.getMessage()}", soft_wrap=True, markup=True)


def show_notes() -> None:
    """Print the library's notes (`pipelines.notes.note`) as yellow lines on stderr."""
    if not any(isinstance(h, _NoteHandler) for h in note_logger.handlers):
        note_logger.addHandler(_NoteHandler())


class RichProgress:
    """`pipelines.progress.Progress` drawn with Rich, silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err,
            disable=not err.is_terminal, transient=False,
        )
        self._task: Any = None

    def __enter__(self) -> RichProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)

    def start(self, total: int, description: str) -> None:
        self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)


def key_value_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for k, v in rows:
        table.add_row(k, v)
    return table


def human_bytes(n: float) -> str:
    """Binary units, labelled as such (1 GiB = 2³⁰ bytes)."""
    if n != n:  # NaN: not measured
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
