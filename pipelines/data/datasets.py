"""Reading samples of zarr artifacts for training, and normalising them on the device.

Samples leave the loader in their stored dtype (float16 cubes stay float16) and are
normalised on the device by `Normalizer`: on a CPU-bound loader, converting and scaling
hundreds of bands per sample costs more than reading them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import zarr
from torch import Tensor
from torch.utils.data import get_worker_info


class SampleReader:
    """Samples of an artifact's main array (`cube` or `data`), one whole chunk each.

    Every artifact stores one sample per chunk, so the fastest read is the whole chunk,
    selecting channels in memory afterwards: asking zarr for a 500-band list reads the
    same chunk but goes through its general selection path, ~12× slower. An uncompressed
    zarr-v2 chunk is read straight from its file into the batch (no zarr at all)."""

    def __init__(self, path: Path, array: str, channel_index: list[int]):
        self.path, self.array = Path(path), array
        arr = zarr.open_group(str(self.path), mode="r")[array]
        self.channel_index = list(channel_index)
        self.all_channels = self.channel_index == list(range(arr.shape[1]))
        self.sample_shape = tuple(arr.shape[1:])
        self.dtype = np.dtype(arr.dtype)
        self._direct = _raw_chunk_layout(self.path / array, arr)
        self._arr: zarr.Array | None = None  # opened lazily, once per loader worker

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arr": None}

    def _open(self) -> zarr.Array:
        if self._arr is None:
            self._arr = zarr.open_group(str(self.path), mode="r")[self.array]
        return self._arr

    def _chunk(self, k: int, out: np.ndarray | None = None) -> np.ndarray:
        if self._direct is not None:
            buf = np.empty(self.sample_shape, self.dtype) if out is None else out
            with open(self.path / self.array / f"{k}.0.0.0", "rb") as fh:
                fh.readinto(memoryview(buf).cast("B"))
            return buf
        return self._open()[k]

    def read(self, k: int) -> np.ndarray:
        """Sample k: (channels, y, x) of the chosen channels, stored dtype."""
        data = self._chunk(k)
        return data if self.all_channels else data[self.channel_index]

    def read_into(self, k: int, out: np.ndarray, row: int = 0, col: int = 0) -> None:
        """Sample k cropped at (row, col) to `out`'s (channels, h, w) — read straight into
        `out` when the sample is taken whole."""
        h, w = out.shape[-2:]
        whole = (h, w) == self.sample_shape[-2:] and self.all_channels
        if whole and self._direct is not None and out.flags.c_contiguous:
            self._chunk(k, out)
            return
        out[...] = self.read(k)[:, row:row + h, col:col + w]


def batch_buffer(shape: tuple[int, ...], dtype: np.dtype) -> tuple[Tensor, np.ndarray]:
    """A batch to read samples into: in shared memory inside a loader worker, so handing
    it to the training process copies nothing."""
    if get_worker_info() is not None:
        # Allocated in shared memory directly: `empty().share_memory_()` would fill a
        # private buffer and copy it over, which halves the loader's rate at 500 bands.
        torch_dtype = _TORCH_DTYPES[np.dtype(dtype)]
        nbytes = int(np.prod(shape)) * torch_dtype.itemsize
        out = torch.empty(0, dtype=torch_dtype).set_(
            torch.UntypedStorage._new_shared(nbytes), 0, shape)
        return out, out.numpy()
    view = np.empty(shape, dtype)
    return torch.from_numpy(view), view


_TORCH_DTYPES = {np.dtype("float16"): torch.float16, np.dtype("float32"): torch.float32,
                 np.dtype("float64"): torch.float64}


def _raw_chunk_layout(folder: Path, array: zarr.Array) -> tuple[np.dtype, tuple] | None:
    """(dtype, sample shape) when each sample is one raw file: a local zarr-v2 array with one
    chunk per sample, no compressor, no filters, C order. Reading that file directly is
    ~3× faster than zarr's general read path; anything else goes through zarr."""
    meta = folder / ".zarray"
    if not meta.is_file():
        return None
    spec = json.loads(meta.read_text())
    one_chunk = spec["chunks"][0] == 1 and list(spec["chunks"][1:]) == spec["shape"][1:]
    if (spec.get("compressor") is None and not spec.get("filters") and spec["order"] == "C"
            and one_chunk and spec.get("dimension_separator", ".") == "."):
        return np.dtype(spec["dtype"]), tuple(array.shape[1:])
    return None


class Normalizer(torch.nn.Module):
    """(x − mean) / std per channel, in float32, on whatever device x is on."""

    def __init__(self, mean: Tensor, std: Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float().view(-1, 1, 1), persistent=False)
        self.register_buffer("std", std.float().clamp(min=1e-8).view(-1, 1, 1),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x.float() - self.mean) / self.std
