"""The `dchag` command's entry point, importing nothing heavy itself.

Ctrl-C while the command tree is still being imported (torch, xarray: a second or more)
is one line and exit 130, like Ctrl-C at any later moment. Only the stage the command line
names is imported (`root.py`).
"""

from __future__ import annotations

import sys

INTERRUPTED = ("interrupted (Ctrl-C): stopped while starting; nothing was written\n")


def main() -> None:
    try:
        from dchag_cli.root import command_for

        command = command_for(sys.argv[1:])
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED)
        raise SystemExit(130) from None
    command(args=sys.argv[1:], prog_name="dchag")
