"""The command-line reference as Markdown, made from the command tree itself, so the docs
site never describes a flag the code does not have (`docs/gen_cli_reference.py` writes it
at build time)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from rich.text import Text

from dchag_cli.root import build, command_tree


def _plain(markup: str | None) -> str:
    """Help text as Markdown: `[cyan]dchag …[/]` examples become code, the rest of Rich's
    markup is dropped as a terminal would render it."""
    if not markup:
        return ""
    coded = re.sub(r"\[cyan\](.*?)\[/\]", lambda m: f"`{m.group(1)}`", markup, flags=re.S)
    coded = re.sub(r"\[bold\](.*?)\[/\]", lambda m: f"**{m.group(1)}**", coded, flags=re.S)
    return Text.from_markup(coded).plain


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _default(param: Any) -> str:
    shown = getattr(param, "show_default", None)
    if isinstance(shown, str):
        return shown
    if getattr(param, "required", False):
        return "required"
    value = param.default
    if value is None or value == () or callable(value):
        return ""
    if getattr(param, "is_flag", False) and param.secondary_opts:
        return param.opts[0] if value else param.secondary_opts[0]
    return str(value)


def _rows(cmd: Any) -> Iterator[str]:
    for param in cmd.params:
        if getattr(param, "hidden", False):
            continue
        names = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
        if type(param).__name__ == "TyperArgument":
            names = f"`{param.metavar or param.name.upper()}` (argument)"
        meta = "" if getattr(param, "is_flag", False) else (param.metavar or "")
        yield (f"| {names} | {_cell(meta)} | {_cell(_default(param))} | "
               f"{_cell(_plain(getattr(param, 'help', '') or ''))} |")


def _commands(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def cli_reference() -> str:
    """Every command: what it does, its usage, and each option with its default."""
    out = ["# Command-line reference", "",
           "Generated from the commands themselves; `dchag COMMAND --help` prints the same.",
           ""]
    for path, cmd in _commands(command_tree(build()), ("dchag",)):
        name = " ".join(path)
        out += [f"{'#' * min(len(path) + 1, 4)} `{name}`", "", _plain(cmd.help).strip(), ""]
        if hasattr(cmd, "commands"):
            subs = ", ".join(f"`{name} {s}`" for s in cmd.commands)
            out += [f"Commands: {subs}.", ""]
            if len(path) > 1:
                continue
        rows = list(_rows(cmd))
        if rows:
            out += ["| option | value | default | what it does |", "|---|---|---|---|",
                    *rows, ""]
    return "\n".join(out)
