"""The `dchag` command's entry point, importing nothing heavy itself.

Ctrl-C while the command tree is still being imported (torch, xarray: a second or more)
is one line and exit 130, like Ctrl-C at any later moment; and processes spawned for ranks,
which import this module again as their main module, start faster for its being light.
"""

from __future__ import annotations

import sys

INTERRUPTED = ("interrupted (Ctrl-C): stopped while starting; nothing was written\n")


def main() -> None:
    try:
        from dchag_cli.app import main as run
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED)
        raise SystemExit(130) from None
    run()
