"""Errors a user can act on.

Every failure caused by the user's input (a bad file, a missing variable, a wrong shape)
is raised as `DchagError` with one line that names the file and says what to do. The CLI
prints that line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class DchagError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None):
        parts = [f"{path}: {message}" if path is not None else message]
        if fix:
            parts.append(fix)
        super().__init__(" — ".join(parts))


class Interrupted(BaseException):
    """The job was stopped by a signal (Ctrl-C, a scheduler's SIGTERM): not an error of the
    input; the CLI exits with 128 + the signal number and one line."""

    def __init__(self, signum: int, message: str | None = None):
        self.signum = signum
        self.message = message  # what the one line says, where more is known
        super().__init__(signum)
