"""Regenerate the committed sample inputs exactly (deterministic, seeded).

    python sample_data/generate.py

ERA5: 8 days, 6-hourly, on a 5° source grid (so the files stay small), channel preset
`sample-14`; pressure levels in the new CDS layout, single levels in the old one.
Larger sets come from the same generator: `dchag sample era5 --days 365`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.data.channels import resolve_channels
from pipelines.sample.era5 import generate_era5

HERE = Path(__file__).resolve().parent


def main() -> None:
    era5 = HERE / "era5"
    shutil.rmtree(era5, ignore_errors=True)
    generate_era5(era5, resolve_channels("sample-14", None), start="2018-01-01", days=8,
                  step_hours=6, resolution=5.0, seed=0)


if __name__ == "__main__":
    main()
