"""Reading ENVI hyperspectral cubes (`.hdr` + binary) with `spectral`, memory-mapped.

A cube is never loaded whole: callers read band subsets from the memory map. Everything
that can be wrong with a delivery is checked up front, with the file and the fix named:
a header without its binary or the reverse, a binary shorter or longer than the header
says, missing wavelengths, an unsupported layout.

The header's semantics are honoured: `wavelength units` (nm, µm, mm), `fwhm` (each
band's width, used when resampling bands), `bbl` (the bad-band list: bands marked 0 are
never read) and `data ignore value` (pixels holding it are masked, not read as data).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import spectral.io.envi as envi

from pipelines.errors import DchagError
from pipelines.guard import check_input_path

BINARY_SUFFIXES = ("", ".raw", ".img", ".dat", ".bin", ".bsq", ".bil", ".bip")


@dataclass
class CubeSource:
    """One input cube and its sample metadata (from a manifest, or derived from the name)."""

    header: Path
    sample_id: str
    plant_id: str = ""
    date: str = ""
    label: str = ""


@dataclass
class EnviCube:
    source: CubeSource
    binary: Path
    memmap: np.ndarray = field(repr=False)  # (rows, cols, bands), the file's own dtype
    wavelengths: np.ndarray  # nm, one per band, in file order
    scale: float  # divide stored values by this to get reflectance
    fwhm: np.ndarray | None = None  # nm, each band's full width at half maximum
    good: np.ndarray | None = None  # bool per band: False where `bbl` marks a bad band
    ignore: float | None = None  # `data ignore value`: a pixel holding it is masked

    @property
    def good_bands(self) -> np.ndarray:
        """Indices of the bands to read (all but those the bad-band list marks)."""
        return np.flatnonzero(self.good) if self.good is not None else \
            np.arange(self.shape[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.memmap.shape  # type: ignore[return-value]


def _header_for(path: Path) -> Path:
    """Accept the header or the binary; find the partner file."""
    if path.suffix.lower() == ".hdr":
        if not path.exists():
            raise DchagError("no such header", path=path)
        return path
    for cand in (path.with_suffix(".hdr"), path.with_name(path.name + ".hdr")):
        if cand.exists():
            return cand
    raise DchagError("binary without its ENVI header (.hdr)", path=path,
                     fix="put the .hdr next to it with the same name")


def _binary_for(header: Path) -> Path:
    stem = header.with_suffix("")
    for suffix in BINARY_SUFFIXES:
        cand = stem.with_name(stem.name + suffix)
        if cand.is_file() and cand != header:
            return cand
    raise DchagError("ENVI header without its binary data file", path=header,
                     fix=f"put {stem.name}.raw (or .img/.dat/.bsq/.bil/.bip) next to it")


def read_wavelength_file(path: Path) -> np.ndarray:
    """One wavelength (nm) per line, or comma-separated."""
    try:
        text = path.read_text()
        return np.array([float(v) for v in text.replace(",", " ").split()])
    except (OSError, ValueError) as exc:
        raise DchagError(f"cannot read wavelengths ({exc})", path=path,
                         fix="write one wavelength in nm per line") from exc


def open_cube(source: CubeSource, wavelengths: np.ndarray | None = None,
              scale: float | None = None) -> EnviCube:
    header = _header_for(source.header)
    binary = _binary_for(header)
    try:
        img = envi.open(str(header), str(binary))
    except Exception as exc:  # spectral raises several exception types for bad headers
        raise DchagError(f"not a readable ENVI header ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''})", path=header) from exc
    interleave = str(img.metadata.get("interleave", "bsq")).strip().lower()
    if interleave not in ("bsq", "bil", "bip"):
        raise DchagError(f"header gives interleave = {interleave}", path=header,
                         fix="ENVI stores bands as bsq, bil or bip: correct the header")
    rows, cols, bands = img.shape
    if min(rows, cols, bands) < 1:
        raise DchagError(f"header gives an empty cube ({rows} lines × {cols} samples × "
                         f"{bands} bands)", path=header, fix="check lines/samples/bands")
    expected = rows * cols * bands * np.dtype(img.dtype).itemsize + int(img.offset)
    actual = binary.stat().st_size
    if actual < expected:
        raise DchagError(f"binary is truncated: {actual} bytes, the header's {rows}×{cols}×"
                         f"{bands} {np.dtype(img.dtype).name} needs {expected}", path=binary,
                         fix="copy the file again")
    if actual > expected:
        raise DchagError(f"binary has {actual} bytes but the header's sizes need {expected}",
                         path=binary, fix="check samples/lines/bands/data type in the header")
    if wavelengths is None:
        centers = img.bands.centers
        if not centers:
            raise DchagError("header has no wavelength list", path=header,
                             fix="add `wavelength = {…}` to the header or pass --wavelengths FILE")
        to_nm = _to_nm(img.metadata, np.asarray(centers, dtype=np.float64), header)
        wavelengths = np.asarray(centers, dtype=np.float64) * to_nm
    else:
        to_nm = 1.0  # a --wavelengths file is in nm
    if wavelengths.size != bands:
        raise DchagError(f"{wavelengths.size} wavelengths for {bands} bands", path=header,
                         fix="give exactly one wavelength per band")
    bad_nm = np.flatnonzero(~(np.isfinite(wavelengths) & (wavelengths > 0)))
    if bad_nm.size:
        raise DchagError(f"wavelength of band {bad_nm[0]} is {wavelengths[bad_nm[0]]:g} "
                         f"({bad_nm.size} not a positive number)", path=header,
                         fix="correct the header's wavelength list (or the --wavelengths "
                         "file)")
    if scale is None:
        try:
            scale = float(img.metadata.get("reflectance scale factor", 1.0))
        except ValueError:
            scale = float("nan")
    if not (np.isfinite(scale) and scale > 0):
        raise DchagError(f"reflectance scale factor {scale:g}: reflectance is the stored "
                         "number divided by a positive, finite scale", path=header,
                         fix="correct `reflectance scale factor` in the header, or pass "
                         "--scale (e.g. 10000)")
    fwhm = _per_band(img.metadata, "fwhm", bands, header)
    if fwhm is not None:
        fwhm = fwhm * to_nm
        if not (np.isfinite(fwhm).all() and (fwhm > 0).all()):
            raise DchagError("`fwhm` holds widths that are not positive", path=header,
                             fix="correct the header's fwhm, or remove it to interpolate")
    bbl = _per_band(img.metadata, "bbl", bands, header)
    good = None if bbl is None else bbl != 0
    if good is not None and good.sum() < 2:
        raise DchagError(f"the bad-band list (bbl) leaves {int(good.sum())} of {bands} bands",
                         path=header, fix="check the header's bbl (1 = good band, 0 = bad)")
    return EnviCube(source=source, binary=binary, memmap=img.open_memmap(interleave="bip"),
                    wavelengths=wavelengths, scale=scale, fwhm=fwhm, good=good,
                    ignore=_ignore_value(img.metadata, header))


_NM_PER_UNIT = {"nm": 1.0, "nanometers": 1.0, "nanometer": 1.0, "nanometres": 1.0,
                "um": 1e3, "µm": 1e3, "micrometers": 1e3, "micrometer": 1e3,
                "micrometres": 1e3, "microns": 1e3, "micron": 1e3,
                "mm": 1e6, "millimeters": 1e6, "millimeter": 1e6, "millimetres": 1e6}


def _to_nm(metadata: dict, centers: np.ndarray, header: Path) -> float:
    """The factor from the header's `wavelength units` to nm. Without units (or ENVI's
    `Unknown`), centres below 10 are taken as µm, anything else as nm."""
    units = str(metadata.get("wavelength units", "")).strip().lower()
    if units in ("", "unknown"):
        return 1e3 if centers.max() < 10 else 1.0
    if units in _NM_PER_UNIT:
        return _NM_PER_UNIT[units]
    raise DchagError(f"wavelength units {units!r} are not a length (nm, µm or mm)",
                     path=header, fix="set `wavelength units = Nanometers` in the header or "
                     "pass --wavelengths FILE (nm)")


def _per_band(metadata: dict, key: str, bands: int, header: Path) -> np.ndarray | None:
    """A per-band header list (`fwhm`, `bbl`) as floats, or None when absent."""
    if key not in metadata:
        return None
    try:
        values = np.array([float(v) for v in metadata[key]], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DchagError(f"`{key}` is not a list of numbers", path=header) from exc
    if values.size != bands:
        raise DchagError(f"`{key}` has {values.size} values for {bands} bands", path=header,
                         fix=f"give one {key} value per band, or remove `{key}`")
    return values


def _ignore_value(metadata: dict, header: Path) -> float | None:
    text = metadata.get("data ignore value")
    if text is None:
        return None
    try:
        return float(text)
    except (TypeError, ValueError) as exc:
        raise DchagError(f"`data ignore value = {text}` is not a number", path=header) from exc


def read_manifest(path: Path) -> list[CubeSource]:
    """CSV with columns path, plant_id, date and optionally label; paths relative to it."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # spreadsheets write a BOM
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise DchagError(f"cannot read manifest ({exc})", path=path) from exc
    if not rows or "path" not in rows[0]:
        raise DchagError("manifest needs a header row with a `path` column "
                         "(and plant_id, date, label)", path=path)
    out = []
    columns = len(rows[0])
    for i, row in enumerate(rows, start=2):
        if None in row or None in row.values():  # csv pads short rows, collects long ones
            given = len([v for k, v in row.items() if k is not None and v is not None]) + \
                len(row.get(None) or [])
            raise DchagError(f"line {i} has {given} value(s) for the header's {columns} "
                             "columns", path=path, fix="give every row path, plant_id, date "
                             "(and label if the header has it), or leave a value empty "
                             "with its comma")
        cube = (path.parent / row["path"]).resolve()
        if not cube.exists():
            raise DchagError(f"line {i}: {row['path']} does not exist", path=path)
        out.append(CubeSource(header=cube, sample_id=cube.stem, plant_id=row.get("plant_id", ""),
                              date=row.get("date", ""), label=row.get("label", "") or ""))
    return out


def find_sources(paths: list[Path]) -> list[CubeSource]:
    """Headers, binaries, folders (searched recursively for .hdr) and CSV manifests."""
    out: list[CubeSource] = []
    for p in paths:
        p = Path(p)
        check_input_path(p)
        if p.is_dir():
            found = sorted(p.rglob("*.hdr"))
            if not found:
                raise DchagError("folder holds no ENVI headers (*.hdr)", path=p)
            out += [CubeSource(header=h, sample_id=h.stem) for h in found]
        elif p.suffix.lower() == ".csv":
            out += read_manifest(p)
        else:
            out.append(CubeSource(header=p, sample_id=p.stem))
    seen: dict[str, Path] = {}
    for s in out:
        check_input_path(s.header)  # a manifest's rows too
        key = str(_header_for(s.header).resolve())
        if key in seen:
            raise DchagError("cube given twice", path=s.header)
        seen[key] = s.header
    return out
