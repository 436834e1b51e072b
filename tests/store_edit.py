"""Stores edited as another producer might have written them, for tests of what
inference must not care about."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import zarr


def permuted_copy(src: Path, dst: Path, dim: str, perm: np.ndarray,
                  list_attrs: tuple[str, ...] = ()) -> Path:
    """A copy of `src` with every array's `dim` axis (and the root attributes named in
    `list_attrs`, lists along `dim`) in the order `perm`: the same data, reordered."""
    shutil.copytree(src, dst)
    g = zarr.open_group(str(dst), mode="r+")
    for _, arr in g.arrays():
        dims = list(arr.attrs.get("_ARRAY_DIMENSIONS", []))
        if dim in dims:
            arr[...] = np.take(arr[...], perm, axis=dims.index(dim))
    for key in list_attrs:
        g.attrs[key] = [g.attrs[key][i] for i in perm]
    return dst
