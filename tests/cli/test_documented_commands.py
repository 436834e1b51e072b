"""Every `dchag …` command the README, the docs and the `--help` examples show names a
real command, with options that command has and presets that exist: a user copies them
as written."""

from __future__ import annotations

import contextlib
import re
import shlex
from pathlib import Path

import pytest
import typer

from dchag_cli.app import app
from pipelines.data.channels import PRESETS as CHANNEL_PRESETS
from pipelines.model.config import PRESETS

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PRESET_FLAGS = ("--preset", "--presets")
# where the training stages write by default, or a model file standing in for a run
RUN_DEFAULTS = ("runs/pretrain", "runs/forecast")
DATA_STAGES = ("prep", "sample")  # their --preset names channels, not a model


def _fenced(text: str) -> list[str]:
    """`dchag` lines of the shell blocks, continuation lines joined."""
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip().removeprefix("$ ")
            lines += _commands(line)
    return lines


def _commands(line: str) -> list[str]:
    """The `dchag` commands of one shell line (`a && b`, `a | b`, `a; b`)."""
    return [part.strip() for part in re.split(r"&&|\|\||;|\|", line)
            if part.strip().startswith("dchag ")]


def _inline(text: str) -> list[str]:
    return [c for m in re.findall(r"`(dchag [^`]+)`", text) if "\n" not in m
            for c in _commands(m)]


def _help_examples(cmd, prefix: str = "dchag") -> list[tuple[str, str]]:
    found = [(prefix, m) for m in re.findall(r"\[cyan\](dchag [^\[]+)\[/\]",
                                               (cmd.help or "").replace("\n", " "))]
    for name, sub in getattr(cmd, "commands", {}).items():
        found += _help_examples(sub, f"{prefix} {name}")
    return found


def _check(line: str, root) -> list[str]:
    """What is wrong with one command line (empty: nothing)."""
    try:
        words = shlex.split(line.replace("…", ""))[1:]
    except ValueError as exc:
        return [f"unparsable ({exc})"]
    cmd, path = root, ["dchag"]
    while words and _is_group(cmd) and not words[0].startswith("-"):
        if words[0] not in cmd.commands:
            return [f"no command `{' '.join(path)} {words[0]}`"]
        cmd = cmd.commands[words[0]]
        path.append(words.pop(0))
    if _is_group(cmd):
        return [] if not words or words[0] == "--help" else [f"`{' '.join(path)}` takes a "
                                                             "subcommand"]
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    problems = []
    for i, word in enumerate(words):
        flag = word.split("=")[0]
        if flag.startswith("-") and not re.fullmatch(r"-[\d.]+", flag) and flag not in known:
            problems.append(f"`{' '.join(path)}` has no option {flag}")
        value = words[i + 1] if i + 1 < len(words) else ""
        presets = CHANNEL_PRESETS if path[1] in DATA_STAGES else PRESETS
        if flag in PRESET_FLAGS and value and not value.isupper():
            problems += [f"no preset {p!r}" for p in value.split(",") if p not in presets]
    return problems


ROOT_CMD = typer.main.get_command(app)


def _is_group(cmd) -> bool:  # typer runs on its own copy of click: no isinstance
    return hasattr(cmd, "commands")


def _documented() -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        text = page.read_text()
        out += [(page.name, line) for line in (*_fenced(text), *_inline(text))]
    return out


def test_the_pages_show_commands_at_all():
    """The checks below cannot pass vacuously: the README shows the design card's three."""
    lines = [line for page, line in _documented() if page == "README.md"]
    for wanted in ("dchag prep era5", "dchag pretrain", "dchag eval forecast"):
        assert any(line.startswith(wanted) for line in lines), wanted
    assert len(_help_examples(ROOT_CMD)) >= 20


@pytest.mark.parametrize("where,line", _documented())
def test_every_documented_command_exists_with_its_options(where, line):
    assert _check(line, ROOT_CMD) == [], f"{where}: {line}"


@pytest.mark.parametrize("where,line", _help_examples(ROOT_CMD))
def test_every_help_example_runs_as_written(where, line):
    assert _check(line, ROOT_CMD) == [], f"{where} --help: {line}"
    for flag in ("--run", "--recon", "--init"):
        if flag in line.split():
            value = line.split()[line.split().index(flag) + 1]
            assert value.startswith(RUN_DEFAULTS) or value.endswith(".safetensors"), \
                f"{where} --help: {value} is not where a training stage writes by default"


def test_the_checker_catches_what_it_is_for():
    assert _check("dchag prep era5 --preset climax", ROOT_CMD) == ["no preset 'climax'"]
    assert _check("dchag evaluate forecast", ROOT_CMD) == ["no command `dchag evaluate`"]
    assert _check("dchag plan --budget-min 3", ROOT_CMD) == \
        ["`dchag plan` has no option --budget-min"]
    assert _check("dchag prep era5 --preset climax-48 --period 2017:2018", ROOT_CMD) == []


def _leaves(cmd, path: tuple[str, ...] = ()):
    if _is_group(cmd):
        for name, sub in cmd.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, cmd


def test_every_flag_name_is_shown_whole_at_80_columns(monkeypatch, capsys):
    """A flag cut to `--allow-out-of-r…` cannot be copied from the help."""
    from dchag_cli.root import build, command_tree

    monkeypatch.setenv("COLUMNS", "80")
    tree = command_tree(build())
    cut = []
    for path, cmd in _leaves(tree):
        with contextlib.suppress(SystemExit):
            tree.main([*path, "--help"], prog_name="dchag", standalone_mode=False)
        shown = capsys.readouterr().out
        assert max(map(len, shown.splitlines())) <= 80, path
        cut += [f"dchag {' '.join(path)} {opt}" for p in cmd.params for opt in p.opts
                if opt.startswith("--") and not getattr(p, "hidden", False)
                and opt not in shown]
    assert cut == []


def test_the_readme_is_a_first_screen_that_works_in_a_new_shell():
    """Set-up first, the environment activated before any `dchag` line (in a new shell the
    command is not found otherwise), and a quickstart line that runs after `make
    quickstart` has written its folder."""
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 200
    head = "\n".join(lines[:40])
    assert "make quickstart" in head and "make test" in head
    first_dchag = next(i for i, line in enumerate(lines) if line.startswith("dchag "))
    assert any("source .venv/bin/activate" in line for line in lines[:first_dchag])
    made = re.search(r"dchag quickstart --out (\S+)", (ROOT / "Makefile").read_text())
    assert made is not None
    again = [c for c in (*_fenced(text), *_inline(text)) if c.startswith("dchag quickstart")
             and f"--out {made.group(1)}" in c]
    assert again and all("--overwrite" in c for c in again)
