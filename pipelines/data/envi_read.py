"""Reading ENVI hyperspectral cubes (`.hdr` + binary) with `spectral`, memory-mapped.

A cube is never loaded whole: callers read band subsets from the memory map. Everything
that can be wrong with a delivery is checked up front, with the file and the fix named:
a header without its binary or the reverse, a binary shorter or longer than the header
says, missing wavelengths, an unsupported layout.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import spectral.io.envi as envi

from pipelines.errors import DchagError

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
        wavelengths = np.asarray(centers, dtype=np.float64)
        units = str(img.metadata.get("wavelength units", "nm")).lower()
        if units.startswith("micro") or units in ("um", "µm") or wavelengths.max() < 10:
            wavelengths = wavelengths * 1000.0
    if wavelengths.size != bands:
        raise DchagError(f"{wavelengths.size} wavelengths for {bands} bands", path=header,
                         fix="give exactly one wavelength per band")
    if scale is None:
        scale = float(img.metadata.get("reflectance scale factor", 1.0))
    return EnviCube(source=source, binary=binary, memmap=img.open_memmap(interleave="bip"),
                    wavelengths=wavelengths, scale=scale)


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
    for i, row in enumerate(rows, start=2):
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
        if not p.exists():
            raise DchagError("no such file or folder", path=p)
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
        key = str(_header_for(s.header).resolve())
        if key in seen:
            raise DchagError("cube given twice", path=s.header)
        seen[key] = s.header
    return out
