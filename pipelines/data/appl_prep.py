"""`prep appl`: ENVI hyperspectral plant cubes → `appl.zarr`.

Layout of the artifact (zarr format 2):
    cube(sample, band, y, x)    float16 or float32 reflectance, one chunk per sample
    wavelength(band)            nm, the common band grid
    mask(sample, y, x)          uint8, 1 = plant (NDVI threshold + morphology), valid only
    valid(sample, y, x)         uint8, 0 where the header's `data ignore value` was (stored 0)
    bad_bands(sample)           bands the header's bad-band list (`bbl`) dropped
    mean(band), std(band)       over all valid pixels of all samples (running sums kept)
    sample, plant_id, date, label, source, native_bands (sample)
    attrs: dchag_artifact="appl", bands, range_nm, size, spatial, dtype, ndvi, provenance
"""

from __future__ import annotations

import time as _time
from dataclasses import asdict, dataclass
from pathlib import Path

import numcodecs
import numpy as np
import zarr

from pipelines.data.appl_reference import Reference, check_values
from pipelines.data.appl_transform import (
    cube_band_matrix,
    fit_spatial,
    ignored_pixels,
    ndvi_mask,
)
from pipelines.data.envi_read import (
    EnviCube,
    find_sources,
    open_cube,
    read_wavelength_file,
)
from pipelines.data.sensor_bands import band_widths
from pipelines.data.zarr_store import (
    atomic_store,
    check_writable_target,
    dims_array,
    open_artifact,
    store_bytes,
    store_transaction,
)
from pipelines.errors import DchagError
from pipelines.faults import fault_point
from pipelines.guard import check_no_overlap
from pipelines.locks import write_lock
from pipelines.notes import note
from pipelines.progress import NoProgress, Progress
from pipelines.provenance import provenance

META_FIELDS = ("sample", "plant_id", "date", "label", "source")
BAND_CHUNK = 64
MAX_SIZE = 8192


@dataclass
class ApplPrepConfig:
    sources: list[Path]
    out: Path
    bands: int = 500
    range_nm: tuple[float, float] = (400.0, 900.0)
    size: int = 256
    spatial: str = "resize"
    dtype: str = "float16"
    ndvi: float = 0.4
    min_plant_pixels: int = 16
    wavelengths: Path | None = None
    scale: float | None = None
    dark: Path | None = None
    white: Path | None = None
    compress: bool = False
    append: bool = False
    overwrite: bool = False

    def to_attrs(self) -> dict:
        d = asdict(self)
        for k in ("out", "wavelengths", "dark", "white"):
            d[k] = str(d[k]) if d[k] else None
        d["sources"] = [str(p) for p in self.sources]
        return d

    @property
    def target_nm(self) -> np.ndarray:
        return np.linspace(self.range_nm[0], self.range_nm[1], self.bands)


@dataclass
class ApplSummary:
    out: Path
    samples: int
    new_samples: int
    bands: int
    size: int
    bytes_in: int
    bytes_out: int
    seconds: float

    @property
    def cubes_per_s(self) -> float:
        return self.new_samples / max(self.seconds, 1e-9)

    @property
    def mb_per_s(self) -> float:
        return self.bytes_in / 1e6 / max(self.seconds, 1e-9)


def _read_cube(cube: EnviCube, cfg: ApplPrepConfig, dark: Reference | None,
               white: Reference | None) -> tuple[np.ndarray, np.ndarray]:
    """Resample one cube to (bands, size, size) reflectance, band chunk by band chunk, and
    say which output pixels are valid: a pixel holding the header's `data ignore value` in
    any band read is masked, stored as 0, as is every output pixel it would blend into."""
    target = cfg.target_nm
    w = cube_band_matrix(cube, target)
    rows, cols = cube.shape[:2]
    out = np.empty((target.size, cfg.size, cfg.size), np.float32)
    ignored = np.zeros((rows, cols), bool)
    for b0 in range(0, target.size, BAND_CHUNK):
        wc = w[b0:b0 + BAND_CHUNK]
        needed = np.unique(wc.indices)
        raw = np.asarray(cube.memmap[:, :, needed], dtype=np.float32)  # (rows, cols, k)
        hit = ignored_pixels(raw, cube.ignore)
        ignored |= hit
        if dark is not None and white is not None:
            nm = cube.wavelengths[needed]
            d, wh = dark.values(cols, nm), white.values(cols, nm)
            raw = ((raw - d) / np.maximum(wh - d, 1e-6)).astype(np.float32)
        else:
            raw /= cube.scale
        raw[hit] = 0.0
        check_values(raw, cube)
        resampled = raw @ wc[:, needed].T.toarray().astype(np.float32)  # (rows, cols, chunk)
        out[b0:b0 + wc.shape[0]] = np.moveaxis(fit_spatial(resampled, cfg.size, cfg.spatial),
                                               -1, 0)
    if not ignored.any():
        return out, np.ones((cfg.size, cfg.size), bool)
    whole = fit_spatial((~ignored).astype(np.float32)[:, :, None], cfg.size, cfg.spatial)
    valid = whole[:, :, 0] > 1.0 - 1e-4
    if not valid.any():
        raise DchagError(f"every pixel holds the data ignore value ({cube.ignore:g}) in some "
                         "band", path=cube.source.header,
                         fix="check `data ignore value` in the header")
    out[:, ~valid] = 0.0
    return out, valid


def _create(g: zarr.Group, cfg: ApplPrepConfig) -> None:
    s = cfg.size
    comp = [numcodecs.Blosc(cname="lz4", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE)] \
        if cfg.compress else None
    dims_array(g, "cube", ["sample", "band", "y", "x"], shape=(0, cfg.bands, s, s),
               chunks=(1, cfg.bands, s, s), dtype=cfg.dtype, fill_value=None,
               compressors=comp).attrs.update({
                   "long_name": "surface reflectance", "units": "1",
                   "standard_name": "surface_bidirectional_reflectance",
                   "coordinates": "wavelength"})
    # No fill values anywhere: xarray would read real zeros as missing.
    dims_array(g, "mask", ["sample", "y", "x"], shape=(0, s, s), chunks=(1, s, s), dtype="u1",
               fill_value=None).attrs.update({"long_name": "plant pixels", "units": "1",
                                              "flag_values": [0, 1],
                                              "flag_meanings": "background plant"})
    wl = dims_array(g, "wavelength", ["band"], shape=(cfg.bands,), dtype="f8",
                    fill_value=None)
    wl[:] = cfg.target_nm
    wl.attrs.update({"units": "nm", "long_name": "band centre wavelength",
                     "standard_name": "radiation_wavelength"})
    fw = dims_array(g, "fwhm", ["band"], data=band_widths(cfg.target_nm), fill_value=None)
    fw.attrs.update({"units": "nm", "long_name": "band full width at half maximum "
                     "(the spacing the bands were resampled with)"})
    for name in META_FIELDS:  # variable-length: no path is ever cut short
        dims_array(g, name, ["sample"], shape=(0,), chunks=(4096,), dtype=str,
                   fill_value=None)
    dims_array(g, "native_bands", ["sample"], shape=(0,), chunks=(4096,), dtype="i4",
               fill_value=None)
    _create_header_arrays(g, cfg.size, 0)
    for name in ("stats_sum", "stats_sumsq", "mean", "std"):
        dims_array(g, name, ["band"], shape=(cfg.bands,), dtype="f8", fill_value=None)[:] = 0
    g.attrs["stats_count"] = 0


def _create_header_arrays(g: zarr.Group, size: int, n: int) -> None:
    """`valid` (pixels free of the data ignore value) and `bad_bands` (bands the header's
    bbl dropped) per sample; a store from before them gets them as all-valid, none bad."""
    valid = dims_array(g, "valid", ["sample", "y", "x"], shape=(n, size, size),
                       chunks=(1, size, size), dtype="u1", fill_value=None)
    valid.attrs.update({"long_name": "pixels free of the header's data ignore value",
                        "units": "1", "flag_values": [0, 1], "flag_meanings": "ignored valid"})
    bad = dims_array(g, "bad_bands", ["sample"], shape=(n,), chunks=(4096,), dtype="i4",
                     fill_value=None)
    bad.attrs["long_name"] = "bands the header's bad-band list (bbl) dropped"
    if n:  # no fill values (xarray would read them as missing): written out
        valid[:] = 1
        bad[:] = 0


def _check_append(g: zarr.Group, cfg: ApplPrepConfig) -> None:
    want = {"bands": cfg.bands, "range_nm": list(cfg.range_nm), "size": cfg.size,
            "dtype": cfg.dtype}
    have = {k: g.attrs.get(k) for k in want}
    if have != want:
        raise DchagError(f"store was made with {have}, this run asks for {want}", path=cfg.out,
                         fix="append with the same --bands/--range/--size/--dtype")


def _check_config(cfg: ApplPrepConfig) -> None:
    if cfg.range_nm[0] >= cfg.range_nm[1] or cfg.bands < 2:
        raise DchagError(f"--range {cfg.range_nm} and --bands {cfg.bands} do not make a band grid")
    if not 1 <= cfg.size <= MAX_SIZE:
        raise DchagError(f"--size {cfg.size} must be between 1 and {MAX_SIZE} pixels")
    if cfg.dtype not in ("float16", "float32"):
        raise DchagError(f"--dtype {cfg.dtype!r}: choose float16 or float32")
    if cfg.spatial not in ("resize", "crop"):
        raise DchagError(f"--spatial {cfg.spatial!r}: choose resize or crop")
    if (cfg.dark is None) != (cfg.white is None):
        raise DchagError("calibration needs both --dark and --white")
    if cfg.scale is not None and not (np.isfinite(cfg.scale) and cfg.scale > 0):
        raise DchagError(f"--scale {cfg.scale} must be a positive number")
    if not -1.0 <= cfg.ndvi <= 1.0:  # NaN fails too
        raise DchagError(f"--ndvi {cfg.ndvi} must be a threshold between -1 and 1")
    if cfg.min_plant_pixels < 1:
        raise DchagError(f"--min-plant-pixels {cfg.min_plant_pixels} must be at least 1")


def prep_appl(cfg: ApplPrepConfig, progress: Progress | None = None) -> ApplSummary:
    progress = progress or NoProgress()
    started = _time.perf_counter()
    _check_config(cfg)
    if not cfg.append:
        check_writable_target(cfg.out, overwrite=cfg.overwrite, kinds=("appl",))
    elif not cfg.out.exists():
        raise DchagError("--append needs an existing store", path=cfg.out)
    with write_lock(cfg.out):
        sources = find_sources(cfg.sources)
        wl = read_wavelength_file(cfg.wavelengths) if cfg.wavelengths else None
        cubes = [open_cube(s, wl, cfg.scale) for s in sources]  # validate all before writing
        refs = [p for p in (cfg.dark, cfg.white, cfg.wavelengths) if p]
        check_no_overlap(cfg.out, [*(c.source.header for c in cubes),
                                   *(c.binary for c in cubes), *refs, *cfg.sources])
        dark = Reference(cfg.dark) if cfg.dark else None
        white = Reference(cfg.white) if cfg.white else None
        for ref in (dark, white):
            for c in cubes if ref else ():
                ref.check_covers(c)
        small = [c for c in cubes if min(c.shape[:2]) < cfg.size]
        if small and cfg.spatial == "resize":
            r, c = small[0].shape[:2]
            note(f"{len(small)} of {len(cubes)} cubes are smaller than --size {cfg.size} (e.g. "
                 f"{r}×{c}) and are upsampled: no detail is gained")
        bytes_in = sum(c.binary.stat().st_size for c in cubes)
        if cfg.append:
            with store_transaction(cfg.out) as g:
                if g.attrs.get("dchag_artifact") != "appl":
                    raise DchagError("not a dchag appl artifact", path=cfg.out)
                _check_append(g, cfg)
                existing = set(str(v) for v in g["source"][:])
                for c in cubes:
                    if str(c.source.header.resolve()) in existing:
                        raise DchagError("already in the store", path=c.source.header)
                _write(g, cubes, cfg, dark, white, progress)
                history = list(g.attrs.get("history", []))
                history.append(provenance("prep appl --append", cfg.to_attrs(),
                                          [c.binary for c in cubes]))
                g.attrs["history"] = history
        else:
            with atomic_store(cfg.out) as g:
                _create(g, cfg)
                g.attrs.update({"dchag_artifact": "appl", "bands": cfg.bands,
                                "range_nm": list(cfg.range_nm), "size": cfg.size,
                                "spatial": cfg.spatial, "dtype": cfg.dtype,
                                "ndvi": {"threshold": cfg.ndvi, "red_nm": 670, "nir_nm": 800,
                                         "min_plant_pixels": cfg.min_plant_pixels},
                                "history": []})
                _write(g, cubes, cfg, dark, white, progress)
                g.attrs["provenance"] = provenance("prep appl", cfg.to_attrs(),
                                                   [c.binary for c in cubes])
    total = open_artifact(cfg.out, "appl")["cube"].shape[0]
    return ApplSummary(out=cfg.out, samples=total, new_samples=len(cubes), bands=cfg.bands,
                       size=cfg.size, bytes_in=bytes_in, bytes_out=store_bytes(cfg.out),
                       seconds=_time.perf_counter() - started)


def _write(g: zarr.Group, cubes: list[EnviCube], cfg: ApplPrepConfig, dark: Reference | None,
           white: Reference | None, progress: Progress) -> None:
    """Append cubes one by one to a fresh store or a transaction's clone."""
    if "valid" not in g:
        _create_header_arrays(g, cfg.size, g["cube"].shape[0])
    # Keep these handles: after a resize, g[name] may still report the consolidated shape.
    arrays = {name: g[name] for name in ("cube", "mask", "native_bands", "valid",
                                         "bad_bands", *META_FIELDS)}
    n_old = arrays["cube"].shape[0]
    total, total_sq = g["stats_sum"][:], g["stats_sumsq"][:]
    count = int(g.attrs["stats_count"])
    progress.start(len(cubes), f"resampling {len(cubes)} cubes to {cfg.bands} bands × "
                   f"{cfg.size}²")
    for a in arrays.values():
        a.resize((n_old + len(cubes), *a.shape[1:]))
    for i, cube in enumerate(cubes):
        data, valid = _read_cube(cube, cfg, dark, white)
        stored = data.astype(cfg.dtype)
        arrays["cube"][n_old + i] = stored
        mask = ndvi_mask(data, cfg.target_nm, cfg.ndvi, cfg.min_plant_pixels)
        arrays["mask"][n_old + i] = (mask if mask is not None
                                     else np.ones(data.shape[1:], bool)) & valid
        arrays["valid"][n_old + i] = valid
        dropped = cube.shape[2] - cube.good_bands.size
        arrays["bad_bands"][n_old + i] = dropped
        if dropped:
            note(f"{cube.source.header.name}: {dropped} bad bands (bbl) left out")
        if not valid.all():
            note(f"{cube.source.header.name}: {int((~valid).sum())} of {valid.size} output "
                 "pixels masked (data ignore value)")
        s = cube.source
        for name, value in zip(META_FIELDS, (s.sample_id, s.plant_id, s.date, s.label,
                                             str(s.header.resolve())), strict=True):
            _set_string(arrays[name], n_old + i, value)
        arrays["native_bands"][n_old + i] = cube.shape[2]
        x = stored.astype(np.float64)[:, valid]  # (bands, valid pixels)
        total += x.sum(axis=1)
        total_sq += (x * x).sum(axis=1)
        count += x.shape[1]
        fault_point("prep:block-written")
        progress.advance()
    mean = total / count
    g["stats_sum"][:], g["stats_sumsq"][:] = total, total_sq
    g["mean"][:] = mean
    g["std"][:] = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    g.attrs["stats_count"] = count


def _set_string(arr: zarr.Array, i: int, value: str) -> None:
    """Stores written before variable-length strings had fixed-width ones: refuse a value
    that would be cut short rather than store it truncated."""
    width = np.dtype(arr.dtype).itemsize // 4 if np.dtype(arr.dtype).kind == "U" else None
    if width is not None and len(value) > width:
        raise DchagError(f"{value!r} is longer than the {width} characters this older store "
                         "keeps", fix="prepare a new store (it keeps strings of any length)")
    arr[i:i + 1] = np.array([value], dtype=object if width is None else arr.dtype)
