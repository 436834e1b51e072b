"""Notes for the user from library code: things worth knowing that are not errors.

Library code calls `note("…")`; the CLI prints each as a yellow `note:` line on stderr
(and batch logs keep them as plain text). Nothing is printed when no handler is set up,
so importing the library stays silent.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("dchag")
logger.addHandler(logging.NullHandler())
logger.propagate = False


def note(message: str) -> None:
    logger.warning(message)
