"""Regenerate the committed sample inputs exactly (deterministic, seeded).

    python sample_data/generate.py

ERA5: 8 days, 6-hourly, on a 5° source grid (so the files stay small), channel preset
`sample-14`; pressure levels in the new CDS layout, single levels in the old one.
APPL: 4 plant cubes of 32×32 pixels, 252 bands (398–902 nm), one per layout (bsq, bil,
big-endian bip, float32 bip), with manifest.csv.
Larger sets come from the same generators: `dchag sample era5 --days 365`,
`dchag sample appl --n 16 --size 128`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.data.channels import resolve_channels
from pipelines.sample.appl import generate_appl
from pipelines.sample.era5 import generate_era5

HERE = Path(__file__).resolve().parent


def main() -> None:
    era5 = HERE / "era5"
    shutil.rmtree(era5, ignore_errors=True)
    generate_era5(era5, resolve_channels("sample-14", None), start="2018-01-01", days=8,
                  step_hours=6, resolution=5.0, seed=0)
    appl = HERE / "appl"
    shutil.rmtree(appl, ignore_errors=True)
    generate_appl(appl, n=4, size=32, seed=0)


if __name__ == "__main__":
    main()
