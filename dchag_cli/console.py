"""Rich output shared by all commands: errors, progress bars, summary tables.

Progress and messages go to stderr, so stdout stays clean for piping; bars are shown only
on a terminal, so logs of batch jobs are not flooded with redraws.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from pipelines.errors import DchagError, Interrupted
from pipelines.notes import logger as note_logger

# Redirected to a file (a batch job's log), output is never cut to a terminal's 80 columns.
_FILE_WIDTH = 240
err = Console(stderr=True, highlight=False,
              width=None if sys.stderr.isatty() else _FILE_WIDTH)
out = Console(highlight=False, width=None if sys.stdout.isatty() else _FILE_WIDTH)

F = TypeVar("F", bound=Callable[..., Any])


def reflow(doc: str | None) -> str | None:
    """A docstring as `--help` should show it: lines of a paragraph joined (the terminal
    wraps them), paragraphs kept apart."""
    if not doc:
        return doc
    paragraphs = [" ".join(line.strip() for line in block.splitlines() if line.strip())
                  for block in inspect.cleandoc(doc).split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


# How a value looks in --help, by option name, then by type: never `<list[Path]>`.
METAVARS = {"lead": "LEADS", "period": "PERIOD", "img": "HxW", "crop": "HxW",
            "channels": "NAMES", "out_channels": "NAMES", "region": "S:N,W:E",
            "train_years": "Y0:Y1", "range_nm": "NM:NM", "presets": "NAMES",
            "variants": "NAMES", "trees": "N,…", "tp": "N", "dp": "N", "channel_impl": "NAME",
            "logger": "NAME",
            "aggregation": "NAME", "convention": "NAME", "preset": "NAME", "variant": "NAME",
            "method": "NAME", "backend": "NAME", "precision": "NAME", "mode": "NAME",
            "samples": "val|all", "spatial": "resize|crop", "dtype": "NAME",
            "task": "mae|forecast", "drop_channels": "NAMES"}
_BY_TYPE = {bool: "", int: "N", float: "X", str: "TEXT"}


def _help_without_needless_negations(command: Any) -> None:
    """`--no-overwrite` beside a flag that is off by default says nothing and takes a
    column: at 80 columns the help then cut flag names short (`--allow-out-of-r…`). Such
    negations are left out of the help; the command still accepts them."""
    if not hasattr(command, "format_help"):
        return
    format_help = command.format_help

    def without(ctx: Any, formatter: Any, format_help: Callable = format_help) -> Any:
        hidden = [(p, p.secondary_opts) for p in getattr(command, "params", [])
                  if getattr(p, "is_flag", False) and p.default is False and p.secondary_opts]
        for p, _ in hidden:
            p.secondary_opts = []
        try:
            return format_help(ctx, formatter)
        finally:
            for p, opts in hidden:
                p.secondary_opts = opts

    command.format_help = without


def readable_metavars(command: Any) -> None:
    """Give every parameter of the command tree a plain metavar (flags none), where
    Typer would print `<list[Path]>` or `<bool>`."""
    for sub in getattr(command, "commands", {}).values():
        readable_metavars(sub)
    make_help = command.get_help_option

    def help_option(ctx: Any, make_help: Callable = make_help) -> Any:
        option = make_help(ctx)
        if option is not None:  # created on demand, after the loop below has run
            option.metavar = ""
        return option

    command.get_help_option = help_option
    _help_without_needless_negations(command)
    for param in getattr(command, "params", []):
        desc = getattr(param, "type_descriptor", None)
        annotation = getattr(desc, "annotation", None)
        if getattr(param, "is_flag", False) or annotation is bool:
            param.metavar = ""
        elif param.name in METAVARS and annotation not in (int, float):  # a count: N
            param.metavar = METAVARS[param.name]
        elif desc is not None and desc.is_path:
            param.metavar = "PATH"
        else:
            base = getattr(annotation, "__args__", (annotation,))[0] if desc and desc.is_list \
                else annotation
            param.metavar = _BY_TYPE.get(base, "TEXT")
        if type(param).__name__ == "TyperArgument":  # usage adds "..." to lists itself
            param.metavar = param.name.upper()
            param.display_type_rich = lambda ctx, label=param.metavar: None
        elif getattr(desc, "is_list", False) and param.metavar and not \
                param.metavar.endswith("..."):
            param.metavar += "..."


def user_errors(fn: F) -> F:
    """Turn `DchagError` (and the file system's own errors) into one red line on stderr
    and exit code 1; Ctrl-C into one line and exit code 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        show_notes()
        try:
            return fn(*args, **kwargs)
        except DchagError as exc:
            # escaped: a message may hold brackets (`pip install 'dchag[sample]'`, paths)
            err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # permissions, a vanished file, a full disk: not a bug
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(f"[bold red]error:[/] {escape(where + str(exc.strerror or exc))}",
                      soft_wrap=True)
            raise typer.Exit(1) from None
        except (KeyboardInterrupt, Interrupted) as exc:
            signum = getattr(exc, "signum", 2)
            name = "Ctrl-C" if signum == 2 else f"signal {signum}"
            said = getattr(exc, "message", None) or ("stopped; finished outputs and "
                                                     "checkpoints are intact, nothing "
                                                     "half-written is kept")
            err.print(f"[bold red]interrupted[/] ({name}): {escape(said)}", soft_wrap=True)
            raise typer.Exit(128 + signum) from None

    wrapper.__doc__ = reflow(fn.__doc__)
    return wrapper  # type: ignore[return-value]


class _NoteHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[yellow]note:[/] {escape(record.getMessage())}", soft_wrap=True,
                  markup=True)


def show_notes() -> None:
    """Print the library's notes (`pipelines.notes.note`) as yellow lines on stderr."""
    if not any(isinstance(h, _NoteHandler) for h in note_logger.handlers):
        note_logger.addHandler(_NoteHandler())


class RichProgress:
    """`pipelines.progress.Progress` drawn as a Rich bar on a terminal and as plain lines
    otherwise (a batch job's log): one line every `log_every` units of work (0: about every
    5%, and never more than a minute apart), so `> log 2>&1` shows a job is alive."""

    def __init__(self, log_every: int = 0) -> None:
        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err,
            disable=not err.is_terminal, transient=False,
        )
        self._task: Any = None
        self._plain = None if err.is_terminal else PlainLines(log_every)

    def __enter__(self) -> RichProgress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(*exc)

    def start(self, total: int, description: str) -> None:
        self._task = self._bar.add_task(description, total=total)
        if self._plain is not None:
            self._plain.start(total, description)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)
        if self._plain is not None:
            self._plain.advance(n)


def log_every_option(unit: str) -> Any:
    """`--log-every N` of the long commands other than training (whose steps it counts)."""
    return typer.Option(0, "--log-every", min=0, show_default="0 = about every 5%",
                        help=f"When output is not a terminal (a batch job's log): a progress "
                        f"line every N {unit}; at least one a minute.")


class PlainLines:
    """Progress as one flushed line per `every` units: what a log file can hold."""

    MAX_SILENCE_S = 60.0

    def __init__(self, every: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.total, self.done, self.description = 0, 0, ""
        self._t0 = self._last_line = 0.0
        self._next = self._first = self._step = 0

    def start(self, total: int, description: str, done: int = 0) -> None:
        self.total, self.done, self.description = total, done, description
        self._first = done
        self._t0 = self._last_line = self.clock()
        self._step = self.every or max(1, total // 20)
        self._next = done + self._step

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def update(self, done: int, extra: str = "") -> None:
        self.done = done
        now = self.clock()
        due = (done >= self._next or done >= self.total
               or now - self._last_line >= self.MAX_SILENCE_S)
        if not due and not extra:
            return
        self._next = done + self._step
        self._last_line = now
        elapsed = now - self._t0
        line = [f"{self.description}: {done}/{self.total}"]
        if self.total:
            line.append(f"({100 * done / self.total:.0f}%)")
        if extra:
            line.append(extra)
        line.append(f"elapsed {format_seconds(elapsed)}")
        if self._first < done < self.total and elapsed > 0:
            eta = elapsed / (done - self._first) * (self.total - done)
            line.append(f"ETA {format_seconds(eta)}")
        err.print("  ".join(line), soft_wrap=True, markup=False, highlight=False)
        err.file.flush()


def format_seconds(seconds: float) -> str:
    """`42s`, `3m05s`, `2h07m`: short enough for a log line."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


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
