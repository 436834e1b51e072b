"""`dchag` with every stage: what the tests and `dchag quickstart` drive in-process."""

from __future__ import annotations

from dchag_cli.root import build, command_tree

app = build()


def cli():
    """The click command tree of every stage, with readable metavars."""
    return command_tree(app)
