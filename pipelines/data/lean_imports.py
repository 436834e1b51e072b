"""Keeping libraries a stage does not use from being imported behind its back.

xarray checks, every time it turns a variable into numpy, whether it is a pydata-sparse
array — importing pydata-sparse to find out when it is installed (the `bench` extra), and
pydata-sparse imports numba: a fixed start-up cost paid by every `prep era5` process
(the command and each decoding worker) for a library the default regrid never touches.
Only xESMF's apply uses it, so it stays importable there.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

UNUSED = ("sparse",)


def block_unused() -> list[str]:
    """Make `import sparse` fail (as if not installed) in this process; returns what was
    blocked, so it can be undone."""
    blocked = [m for m in UNUSED if m not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the documented way to block
    return blocked


def unblock(blocked: list[str]) -> None:
    for name in blocked:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]
    # xarray remembers a module it could not import; let it look again
    with contextlib.suppress(ImportError, AttributeError):
        from xarray.namedarray import pycompat

        for name in blocked:
            pycompat._cached_duck_array_modules.pop(name, None)


@contextlib.contextmanager
def without_unused(needed: bool = False) -> Iterator[None]:
    """Within: the unused libraries are not imported (unless `needed`)."""
    blocked = [] if needed else block_unused()
    try:
        yield
    finally:
        unblock(blocked)
