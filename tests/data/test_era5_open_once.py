"""`prep era5` opens each input once: the file described is handed to the reads that
follow instead of being closed and opened again (the reopening was a third of a prep)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import xarray as xr

from pipelines.data import era5_open
from pipelines.data.era5_prep import Era5PrepConfig, prep_era5
from tests.conftest import SMALL_CHANNELS


def test_each_input_file_is_opened_once_and_none_is_left_open(era5_dir: Path, tmp_path,
                                                              monkeypatch):
    inputs = sorted(era5_dir.glob("*.nc"))
    assert len(inputs) >= 2
    opened: Counter[str] = Counter()
    real = xr.open_dataset

    def counting(path, *args, **kwargs):
        opened[str(path)] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(xr, "open_dataset", counting)
    prep_era5(Era5PrepConfig(sources=inputs, out=tmp_path / "once.zarr",
                             channels=SMALL_CHANNELS, workers=1))
    assert {p: opened[str(p)] for p in inputs} == {p: 1 for p in inputs}
    assert era5_open._KEPT == {}  # whatever no read took was closed


def test_only_a_bounded_number_of_described_files_stay_open(era5_dir: Path, monkeypatch):
    from pipelines.data.era5_read import open_era5

    monkeypatch.setattr(era5_open, "KEEP_AT_MOST", 1)
    first, second = sorted(era5_dir.glob("*.nc"))[:2]
    try:
        a = open_era5(first, keep_open=True)
        open_era5(second, keep_open=True)  # no room: closed as before
        assert list(era5_open._KEPT) == [(str(first), a.member)]
        taken = era5_open.take_kept(first, a.member)
        assert taken is not None
        taken.close()
        assert era5_open.take_kept(second, None) is None
    finally:
        era5_open.release_kept()
