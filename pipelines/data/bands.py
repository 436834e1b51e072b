"""Hyperspectral bands by name: how runs and stores call a band (`700.0nm`), and choosing
bands by name or by wavelength range (`450-700`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.errors import DchagError


def band_names(wavelengths: np.ndarray) -> list[str]:
    """How runs name hyperspectral bands: `700.0nm`."""
    return [f"{w:.1f}nm" for w in wavelengths]


def select_bands(names: list[str], wavelengths: np.ndarray, spec: list[str], path: Path,
                 flag: str = "--channels") -> list[int]:
    """Bands by name (`700.0nm`) or by wavelength range (`450-700`)."""
    picked: list[int] = []
    for item in spec:
        if "-" in item:
            try:
                lo, hi = (float(v) for v in item.removesuffix("nm").split("-"))
            except ValueError:
                raise DchagError(f"{flag} {item!r} is not a wavelength range", path=path,
                                 fix="write a range like 450-700 (nm)") from None
            found = [i for i, w in enumerate(wavelengths) if lo <= w <= hi]
        else:
            found = [names.index(item)] if item in names else []
        if not found:
            raise DchagError(f"{flag}: no band matches {item!r}", path=path,
                             fix=f"bands span {wavelengths[0]:.0f}–{wavelengths[-1]:.0f} nm; "
                             "give ranges like 450-700")
        picked += [i for i in found if i not in picked]
    return sorted(picked)
