"""Synthetic hyperspectral plant cubes in ENVI format, with physically realistic spectra.

Each image is a top view of a potted plant: a rosette of elliptical leaves over a pot rim
and soil. Leaf pixels take reflectance from the PROSPECT-D leaf optical model (through the
`prosail` package, which carries its measured absorption coefficients), with chlorophyll,
carotenoid, water, dry matter and structure varying per leaf; soil pixels mix prosail's
dry and wet soil spectra; the pot is a dull grey plastic. Illumination varies smoothly
(shading towards leaf tips) and the sensor adds shot and read noise. The green peak near
550 nm and the red edge near 700 nm are therefore where real leaves put them.

Cubes are written like a VNIR line scanner delivers them: uint16 reflectance ×10000
(`reflectance scale factor = 10000`) or float32, bsq/bil/bip, either byte order, with
wavelengths in the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import spectral.io.envi as envi

from pipelines.errors import DchagError
from pipelines.extras import require

LIB_NM = np.arange(400, 2501)  # prosail's 1 nm grid


def require_prosail():
    """prosail (with numba and llvmlite, ~210 MB) is an optional extra: only synthetic
    hyperspectral cubes need it."""
    return require("prosail", "synthetic hyperspectral cubes (PROSPECT-D leaf spectra)",
                   "sample")


@dataclass(frozen=True)
class Sensor:
    first_nm: float = 398.0
    last_nm: float = 902.0
    bands: int = 252

    @property
    def wavelengths(self) -> np.ndarray:
        return np.linspace(self.first_nm, self.last_nm, self.bands)


def leaf_reflectance(rng: np.random.Generator, wavelengths: np.ndarray) -> np.ndarray:
    """PROSPECT-D reflectance of one leaf with plausible random biochemistry."""
    _, refl, _ = require_prosail().run_prospect(
        n=rng.uniform(1.3, 2.0), cab=rng.uniform(20, 65), car=rng.uniform(5, 14),
        cbrown=rng.uniform(0.0, 0.15), cw=rng.uniform(0.006, 0.02), cm=rng.uniform(0.004, 0.012),
        ant=rng.uniform(0.0, 3.0), prospect_version="D")
    return np.interp(wavelengths, LIB_NM, refl)


def soil_reflectance(wetness: np.ndarray, wavelengths: np.ndarray) -> np.ndarray:
    """Per-pixel mix of prosail's dry and wet soil spectra: (…, bands)."""
    soil = require_prosail().spectral_lib.soil
    dry = np.interp(wavelengths, LIB_NM, soil.rsoil1)
    wet = np.interp(wavelengths, LIB_NM, soil.rsoil2)
    w = wetness[..., None]
    return (1 - w) * dry + w * wet


def plant_scene(size: int, sensor: Sensor, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance (size, size, bands) and the true plant mask (size, size)."""
    wl = sensor.wavelengths
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    r = np.hypot(yy, xx)
    # Soil with smooth wetness patches inside a grey pot rim; grey bench outside the pot.
    wet = 0.5 + 0.35 * np.sin(9 * xx + rng.uniform(0, 6)) * np.cos(7 * yy + rng.uniform(0, 6))
    cube = soil_reflectance(np.clip(wet, 0, 1), wl)
    pot = np.clip(0.08 + 0.00004 * (wl - 400), 0, 1)
    rim = (r > 0.40) & (r < 0.46)
    cube[rim] = pot * 1.3
    cube[r >= 0.46] = pot * 0.8
    mask = np.zeros((size, size), dtype=bool)
    n_leaves = rng.integers(4, 9)
    for angle in np.sort(rng.uniform(0, 2 * np.pi, n_leaves)):
        length, width = rng.uniform(0.24, 0.40), rng.uniform(0.08, 0.13)
        cy, cx = np.sin(angle) * length * 0.55, np.cos(angle) * length * 0.55
        u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        leaf = (u / (length / 2)) ** 2 + (v / (width / 2)) ** 2 <= 1
        light = 1.0 - 0.35 * np.clip(np.abs(u) / (length / 2), 0, 1)  # shading towards tips
        cube[leaf] = leaf_reflectance(rng, wl)[None, :] * light[leaf][:, None]
        mask |= leaf
    return cube, mask


def add_sensor_noise(cube: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shot noise (∝ √signal) plus read noise, in reflectance units."""
    noisy = cube + rng.normal(0, 1, cube.shape) * (0.004 * np.sqrt(np.clip(cube, 0, None))
                                                    + 0.002)
    return np.clip(noisy, 0.0, 1.2)


def write_envi(path: Path, cube: np.ndarray, wavelengths: np.ndarray, interleave: str,
               dtype: str, byteorder: int) -> Path:
    """Write (rows, cols, bands) reflectance as an ENVI cube; uint16 is scaled by 10000."""
    hdr = path.with_suffix(".hdr")
    meta = {"wavelength": [f"{w:.2f}" for w in wavelengths], "wavelength units": "Nanometers",
            "sensor type": "synthetic VNIR line scanner", "description": "dchag synthetic plant"}
    if dtype == "uint16":
        data = np.round(cube * 10000).astype(np.uint16)
        meta["reflectance scale factor"] = 10000
    elif dtype == "float32":
        data = cube.astype(np.float32)
    else:
        raise DchagError(f"unsupported ENVI sample dtype {dtype!r}")
    envi.save_image(str(hdr), data, interleave=interleave, byteorder=byteorder, metadata=meta,
                    force=True, ext=".raw")
    return hdr


LAYOUTS = [("bsq", "uint16", 0), ("bil", "uint16", 0), ("bip", "uint16", 1), ("bip", "float32", 0)]


def generate_appl(out: Path, n: int, size: int, seed: int, sensor: Sensor | None = None
                  ) -> list[Path]:
    """`n` plant cubes plus `manifest.csv` (path, plant_id, date, label), cycling layouts."""
    if n < 1 or size < 8:
        raise DchagError("--n must be ≥ 1 and --size ≥ 8")
    require_prosail()  # before anything is written
    sensor = sensor or Sensor()
    out.mkdir(parents=True, exist_ok=True)
    rows = ["path,plant_id,date,label"]
    paths = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        cube, _ = plant_scene(size, sensor, rng)
        interleave, dtype, order = LAYOUTS[i % len(LAYOUTS)]
        hdr = write_envi(out / f"plant_{i:03d}.hdr", add_sensor_noise(cube, rng),
                         sensor.wavelengths, interleave, dtype, order)
        paths.append(hdr)
        date = str(np.datetime64("2024-05-01") + np.timedelta64(i // 4, "D"))
        rows.append(f"{hdr.name},P{i % 4:02d},{date},{'drought' if i % 2 else 'control'}")
    (out / "manifest.csv").write_text("\n".join(rows) + "\n")
    return paths
