"""A tiny progress protocol so library code can report progress without knowing about Rich."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total: int, description: str) -> None: ...
    def advance(self, n: int = 1) -> None: ...


class NoProgress:
    """Used when nobody is watching (tests, library calls, non-terminal output)."""

    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass
